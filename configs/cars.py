"""LSUN cars <-> abandoned cars, bonnet + lights mask, AlexNet perceptual loss (paper Sec. 5.2, Fig. 10).

  python -m dds_jax.main --config=configs/cars.py
  python -m dds_jax.main --config=configs/cars.py --config.num_seeds=100 --config.batch_size=16

AlexNet works better than VGG for cars and horses (paper Appendix A, Fig. 15).
"""
from dds_jax.dds.config import base_config


def get_config():
    c = base_config()
    # Objective: the two generators blended layer by layer under the part mask (docs/objectives.md; the
    # benchmark's default). mode="paper" is Eqs. 1-6 exactly, whose optimum with paired latents is x_t;
    # a pair of another architecture falls back to "outer" with a one-line warning.
    c.mode = "blend"
    # Models.
    c.source_ckpt = "ckpt/car_abandoned"
    c.target_ckpt = "ckpt/car"
    c.segmenter_ckpt = "ckpt/seg_car_bonnet_lights"
    c.backbone = "alexnet"
    c.backbone_ckpt = "ckpt/alexnet"
    # Output.
    c.output_dir = "runs/cars"
    return c
