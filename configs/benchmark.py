"""The ground-truth dual-domain benchmark on the shipped demo pair (the CLI's default config).

  python -m dds_jax.cli.benchmark --out=runs/benchmark --config=configs/benchmark.py
  python -m dds_jax.cli.benchmark --out=runs/benchmark_quick --config=configs/benchmark.py --config.n=8

Renders ``n`` faces in the sketch (source) and photo (target) styles, inverts them into demo:sketch and
demo:photo, and scores x_t, x_c and every DDS method against the true dual-domain image (sketch hair
on the photo face). Another pair: point source_ckpt / target_ckpt / segmenter_ckpt at its models and
source_style / target_style at the renderer styles its domains were trained on.
"""
from dds_jax.eval.benchmark import default_config


def get_config():
    c = default_config()
    c.n = 32
    c.part = "hair"
    return c
