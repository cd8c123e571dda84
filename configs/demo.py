"""Offline demo on the trained tiny models shipped in the package: runs in minutes on a 2-core CPU.

  python -m dds_jax.main --config=configs/demo.py

A 32x32 dual-domain pair made by the package itself (``python -m dds_jax.cli.demo_models``): ``photo``, a
StyleGAN2 trained on procedural cartoon faces, and ``sketch``, that generator adapted to 10 line drawings
with few-shot cross-domain adaptation (same latent space). As in the paper's faces <-> sketches experiment
(Sec. 5.1), the source is the sketch domain and the target the photo domain; the part is the hair (the
``faces_sketch:hair`` variant): the result is a photo face with the sketch's hair. The one-shot segmenter
was trained on one rendered face with its true part mask; it finds hair/skin reliably but not the tiny
eyes/nose/mouth at 32x32 (IoU in README), hence the hair.
"""
from dds_jax.dds.config import base_config


def get_config():
    c = base_config()
    # Models shipped with the package.
    c.source_ckpt = "demo:sketch"
    c.target_ckpt = "demo:photo"
    c.segmenter_ckpt = "demo:segmenter"
    c.parts = "hair"
    c.backbone = "generator"        # no torchvision weights needed (paper Appendix D)
    # The benchmark's default objective (python -m dds_jax.cli.benchmark, docs/objectives.md): the sketch
    # generator inside the hair and the photo generator outside it, mixed layer by layer under the mask,
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
    c.output_dir = "runs/demo"
    return c
