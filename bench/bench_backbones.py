"""Perceptual backbone throughput: images/s of ``backbones.extract`` per backbone, compile time apart.

  python bench/bench_backbones.py --size=256 --batches=1,8 --repeats=3

Seeded random weights (``backbones.random_params``; speed does not depend on the values), images in
[-1, 1]. Prints a Markdown table for BENCHMARKS.md.
"""
import os
import platform
import sys

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from timing import time_compiled

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dds_jax.models import backbones  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("size", 256, "Input image side.")
flags.DEFINE_string("batches", "1,8", "Comma-separated batch sizes.")
flags.DEFINE_string("backbones", ",".join(backbones.names()), "Comma-separated backbone names.")
flags.DEFINE_integer("repeats", 3, "Timed calls per configuration (after one warm-up).")
flags.DEFINE_integer("seed", 0, "Seed of the random weights and images.")


def bench(name, batch, size, repeats, seed):
    params = jax.device_put(backbones.random_params(name, seed))
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(batch, size, size, 3)).astype(np.float32)
    return time_compiled(lambda p, im: backbones.extract(name, p, im), (params, jnp.asarray(x)), repeats)


def main(argv):
    del argv
    dev = jax.devices()[0]
    print(f"# perceptual backbones {FLAGS.size}x{FLAGS.size}, device {dev.platform} ({dev.device_kind}), "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__}")
    print("| backbone | layers | batch | compile s | s / call | images/s |")
    print("|---|---|---|---|---|---|")
    for name in [n for n in FLAGS.backbones.split(",") if n]:
        layers = ", ".join(backbones.get_backbone(name).layer_names)
        for batch in [int(b) for b in FLAGS.batches.split(",") if b]:
            c, t = bench(name, batch, FLAGS.size, FLAGS.repeats, FLAGS.seed)
            print(f"| {name} | {layers} | {batch} | {c:.1f} | {t:.3f} | {batch / t:.1f} |", flush=True)


if __name__ == "__main__":
    app.run(main)
