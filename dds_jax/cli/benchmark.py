"""The dual-domain benchmark against the renderer's ground truth (see dds_jax.eval.benchmark).

  python -m dds_jax.cli.benchmark --out=runs/benchmark                       # the shipped demo pair
  python -m dds_jax.cli.benchmark --config=configs/benchmark.py --config.n=8 --out=runs/benchmark

This file is also the default ``--config`` (its :func:`get_config`).
"""
import ml_collections
from absl import app, flags
from ml_collections import config_flags

from dds_jax.cli import common
from dds_jax.eval import benchmark

FLAGS = flags.FLAGS


def get_config() -> ml_collections.ConfigDict:
    """The default ``--config``: the shipped demo pair (see configs/benchmark.py)."""
    return benchmark.default_config()


def define_flags():
    config_flags.DEFINE_config_file("config", __file__, "Benchmark config file (default: the shipped "
                                    "demo pair); override fields with --config.n=8 ...", lock_config=True)
    flags.DEFINE_string("out", None, "Output folder.", required=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    report = benchmark.run_benchmark(FLAGS.config, FLAGS.out)
    print(benchmark.markdown_table(report))
    print(f"benchmark written to {FLAGS.out} (benchmark.json, benchmark.md, contact_sheet.png)")


def run():
    common.run(main, define_flags)


if __name__ == "__main__":
    run()
