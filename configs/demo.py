"""Offline demo on the tiny models shipped in the package: runs in minutes on a 2-core CPU.

  python -m dds_jax.main --config=configs/demo.py

The demo generators are small (32x32) StyleGAN2s with deterministic random weights: the target shares
the source's mapping network and coarse layers (so the two share a latent space and layout) and differs
in its fine layers (colour/texture "domain"). The segmenter was trained one-shot on a synthetic blob
label. The images are not faces: the demo shows the machinery (masks, crossover, optimisation, GIF,
contact sheet), not the paper's visual results; see README for real checkpoints.
"""
from dds_jax.config import base_config


def get_config():
    c = base_config()
    # Models shipped with the package.
    c.source_ckpt = "demo:source"
    c.target_ckpt = "demo:target"
    c.segmenter_ckpt = "demo:segmenter"
    c.backbone = "generator"        # no torchvision weights needed (paper Appendix D)
    # Inputs.
    c.seeds = "0-3"
    # Optimisation: fewer iterations than the paper's 1000.
    c.iterations = 200
    c.chunk = 25
    c.snapshot_every = 25
    c.checkpoint_every = 50
    c.batch_size = 4
    # Output.
    c.output_dir = "runs/demo"
    return c
