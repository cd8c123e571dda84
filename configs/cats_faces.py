"""Unpaired cats (LSUN cat StyleGAN2) <-> human faces, eyes mask (paper Sec. 5.3, Fig. 12).

  python -m dds_jax.main --config=configs/cats_faces.py --config.seeds=0-31

The two generators are NOT adapted from one another, so x_s and x_t come from different seeds
(unpaired); DDS only works where the masks roughly align, so expect to pick seeds.
"""
from dds_jax.dds.config import base_config


def get_config():
    c = base_config()
    # Objective: the two generators blended layer by layer under the part mask (docs/objectives.md; the
    # benchmark's default). mode="paper" is Eqs. 1-6 exactly, whose optimum with paired latents is x_t;
    # a pair of another architecture falls back to "outer" with a one-line warning.
    c.mode = "blend"
    # Models.
    c.source_ckpt = "ckpt/cat"
    c.target_ckpt = "ckpt/ffhq"
    c.segmenter_ckpt = "ckpt/seg_eyes"
    c.backbone = "vgg16"
    c.backbone_ckpt = "ckpt/vgg16"
    # Inputs: unpaired latents.
    c.paired = False
    c.target_seed_offset = 1000
    # Output.
    c.output_dir = "runs/cats_faces"
    return c
