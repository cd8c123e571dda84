"""Offline demo on the trained tiny models shipped in the package: runs in minutes on a 2-core CPU.

  python -m dds_jax.main --config=configs/demo.py                    # the sketch's hair on a photo face
  python -m dds_jax.main --config=configs/demo.py:eyes_nose_mouth    # the sketch's eyes, nose and mouth

A 64x64 dual-domain pair made by the package itself (``python -m dds_jax.demo_models --size=64``): ``photo``,
a StyleGAN2 trained on procedural cartoon faces, and ``sketch``, that generator adapted to 10 line drawings
with few-shot cross-domain adaptation (same latent space). As in the paper's faces <-> sketches experiment
(Sec. 5.1), the source is the sketch domain and the target the photo domain. The config argument after ':'
picks the part: hair (default) or eyes_nose_mouth (the paper's M1 mask, Table 1). The one-shot segmenter
was trained on 4 rendered faces, each as a photo and as a sketch, with their true part masks (its IoU:
docs/demo_models.md).
"""
from dds_jax.dds.config import base_config

PARTS = {"hair": "hair", "eyes_nose_mouth": "eyes,nose,mouth"}


def get_config(part="hair"):
    if part not in PARTS:
        raise ValueError(f"configs/demo.py:{part}: the part must be one of {', '.join(PARTS)}")
    c = base_config()
    # Models shipped with the package.
    c.source_ckpt = "demo:sketch"
    c.target_ckpt = "demo:photo"
    c.segmenter_ckpt = "demo:segmenter"
    c.parts = PARTS[part]
    c.backbone = "generator"        # no torchvision weights needed (paper Appendix D)
    # The benchmark's default objective (python -m dds_jax.cli.benchmark, docs/objectives.md): the sketch
    # generator inside the part and the photo generator outside it, mixed layer by layer under the mask,
    # their two latents optimised (region-mean terms) from the inputs' own. mode='paper' returns x_t here.
    c.mode = "blend"
    # Inputs.
    c.seeds = "0-7"
    # Optimisation: fewer iterations than the paper's 1000.
    c.iterations = 200
    c.chunk = 25
    c.snapshot_every = 25
    c.checkpoint_every = 50
    c.batch_size = 8
    # Output.
    c.output_dir = "runs/demo" if part == "hair" else f"runs/demo_{part}"
    return c
