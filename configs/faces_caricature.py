"""Natural faces (FFHQ) <-> caricatures, eyes/nose/mouth mask, VGG16 perceptual loss (paper Sec. 5.1).

  python -m dds_jax.main --config=configs/faces_caricature.py
  python -m dds_jax.main --config=configs/faces_caricature.py --config.direction=both --config.num_seeds=100

Models: rosinality FFHQ 256 `g_ema` and the few-shot-gan-adaptation caricature model, converted with
convert/torch_to_flax.py --kind=stylegan2; torchvision vgg16-397923af.pth with --kind=vgg16; a
segmenter trained with `python -m dds_jax.cli.segment train` on one labelled FFHQ sample.
"""
from dds_jax.dds.config import base_config


def get_config():
    c = base_config()
    # Objective: the two generators blended layer by layer under the part mask (docs/objectives.md; the
    # benchmark's default). mode="paper" is Eqs. 1-6 exactly, whose optimum with paired latents is x_t;
    # a pair of another architecture falls back to "outer" with a one-line warning.
    c.mode = "blend"
    # Models.
    c.source_ckpt = "ckpt/caricature"
    c.target_ckpt = "ckpt/ffhq"
    c.segmenter_ckpt = "ckpt/seg_eyes_nose_mouth"
    c.backbone = "vgg16"
    c.backbone_ckpt = "ckpt/vgg16"
    # Output.
    c.output_dir = "runs/faces_caricature"
    return c
