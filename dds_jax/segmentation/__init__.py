"""The one-shot part segmenter in use (paper Sec. 3.2): ``oneshot`` (load, masks, one-shot training,
prediction), ``labels`` (painted label PNGs and their colours), ``workflow`` (sample -> label -> train ->
predict, behind ``python -m dds_jax.cli.segment`` and the studio). The network is ``models.segmenter``."""
