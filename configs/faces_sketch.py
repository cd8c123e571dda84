"""Natural faces (FFHQ) <-> sketches, eyes/nose/mouth or hair mask, VGG16 (paper Sec. 5.1, Table 1).

  python -m dds_jax.main --config=configs/faces_sketch.py
  python -m dds_jax.main --config=configs/faces_sketch.py:hair --config.num_seeds=100

The config argument after ':' picks the part: eyes_nose_mouth (default) or hair.
"""
from dds_jax.dds.config import base_config


def get_config(part="eyes_nose_mouth"):
    if part not in ("eyes_nose_mouth", "hair"):
        raise ValueError(f"part must be eyes_nose_mouth or hair, got {part!r}")
    c = base_config()
    # Objective: the two generators blended layer by layer under the part mask (docs/objectives.md; the
    # benchmark's default). mode="paper" is Eqs. 1-6 exactly, whose optimum with paired latents is x_t;
    # a pair of another architecture falls back to "outer" with a one-line warning.
    c.mode = "blend"
    # Models.
    c.source_ckpt = "ckpt/sketch"
    c.target_ckpt = "ckpt/ffhq"
    c.segmenter_ckpt = f"ckpt/seg_{part}"
    c.backbone = "vgg16"
    c.backbone_ckpt = "ckpt/vgg16"
    # Output.
    c.output_dir = f"runs/faces_sketch_{part}"
    return c
