"""Metric throughput: pytorch-fid Inception pool3 features and SSIM, images/s with compile time apart.

  python bench/bench_metrics.py --size=256 --inception_batches=1,8,32 --ssim_batches=1,32 --repeats=3

Seeded random weights (no downloads; speed does not depend on the values). Prints a Markdown table
for BENCHMARKS.md. The FID's 2048x2048 ``scipy.linalg.sqrtm`` is timed once with ``--sqrtm``.
"""
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from timing import time_compiled

from dds_jax.eval import metrics
from dds_jax.models import inception

FLAGS = flags.FLAGS
flags.DEFINE_integer("size", 256, "Input image side (Inception resizes to 299).")
flags.DEFINE_string("inception_batches", "1,8,32", "Comma-separated Inception batch sizes.")
flags.DEFINE_string("ssim_batches", "1,32", "Comma-separated SSIM batch sizes.")
flags.DEFINE_integer("repeats", 3, "Timed calls per configuration (after one warm-up).")
flags.DEFINE_integer("seed", 0, "Seed of the random weights and images.")
flags.DEFINE_bool("sqrtm", True, "Also time the Fréchet distance of two 2048-d feature sets.")


def bench_inception(params, batch, size, repeats, rng):
    module = inception.FIDInceptionV3()
    x = jnp.asarray(rng.uniform(size=(batch, size, size, 3)).astype(np.float32))
    return time_compiled(lambda p, im: module.apply({"params": p}, im), (params, x), repeats)


def bench_ssim(batch, size, repeats, rng):
    x = jnp.asarray(rng.uniform(size=(batch, size, size, 3)).astype(np.float32))
    y = jnp.clip(x + 0.05, 0.0, 1.0)
    return time_compiled(lambda a, b: metrics.ssim(a, b, size_average=False), (x, y), repeats)


def bench_frechet(dim, n, rng):
    a, b = rng.normal(size=(n, dim)), rng.normal(size=(n, dim)) + 0.1
    t0 = time.perf_counter()
    metrics.fid_from_features(a, b)
    return time.perf_counter() - t0


def main(argv):
    del argv
    rng = np.random.default_rng(FLAGS.seed)
    params = jax.device_put(inception.init_params(jax.random.PRNGKey(FLAGS.seed)))
    dev = jax.devices()[0]
    print(f"# metrics {FLAGS.size}x{FLAGS.size}, device {dev.platform} ({dev.device_kind}), "
          f"{platform.processor() or platform.machine()}, jax {jax.__version__}")
    print("| metric | batch | compile s | s / call | images/s |")
    print("|---|---|---|---|---|")
    rows = [("inception pool3", b, bench_inception, (params,)) for b in _ints(FLAGS.inception_batches)]
    rows += [("ssim", b, bench_ssim, ()) for b in _ints(FLAGS.ssim_batches)]
    for name, batch, fn, extra in rows:
        c, t = fn(*extra, batch, FLAGS.size, FLAGS.repeats, rng)
        print(f"| {name} | {batch} | {c:.1f} | {t:.3f} | {batch / t:.2f} |", flush=True)
    if FLAGS.sqrtm:
        s = bench_frechet(inception.FEATURE_DIM, 2 * inception.FEATURE_DIM, rng)
        print(f"\nFréchet distance (cov + sqrtm), 2 x {2 * inception.FEATURE_DIM} x "
              f"{inception.FEATURE_DIM} float64 features: {s:.1f} s")


def _ints(csv):
    return [int(b) for b in csv.split(",") if b]


if __name__ == "__main__":
    app.run(main)
