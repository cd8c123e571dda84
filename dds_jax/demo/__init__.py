"""The offline demo: ``models`` builds the shipped pair + segmenter end to end (``python -m
dds_jax.cli.demo_models``), ``metrics`` measures a pair's diversity and correspondence. The models
themselves are in ``dds_jax/assets/demo``."""
