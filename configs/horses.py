"""LSUN horses <-> sketch horses, head mask, AlexNet perceptual loss (paper Sec. 5.2, Fig. 9).

  python -m dds_jax.main --config=configs/horses.py

The sketch-horse generator is adapted from the LSUN horse StyleGAN2 with 10 sketches (Appendix E).
"""
from dds_jax.dds.config import base_config


def get_config():
    c = base_config()
    # Objective: the two generators blended layer by layer under the part mask (docs/objectives.md; the
    # benchmark's default). mode="paper" is Eqs. 1-6 exactly, whose optimum with paired latents is x_t;
    # a pair of another architecture falls back to "outer" with a one-line warning.
    c.mode = "blend"
    # Models.
    c.source_ckpt = "ckpt/horse_sketch"
    c.target_ckpt = "ckpt/horse"
    c.segmenter_ckpt = "ckpt/seg_horse_head"
    c.backbone = "alexnet"
    c.backbone_ckpt = "ckpt/alexnet"
    # Output.
    c.output_dir = "runs/horses"
    return c
