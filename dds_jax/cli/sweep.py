"""The alpha/beta/gamma sweep of the paper (Fig. 8): one DDS run per value, FID (or PSNR) per run.

  python -m dds_jax.cli.sweep --config=configs/demo.py --params=alpha,beta --values=0,0.5,1 --out=runs/sweep
"""
from absl import app, flags
from ml_collections import config_flags

from dds_jax.cli import common
from dds_jax.eval import sweep

FLAGS = flags.FLAGS
_CONFIG = None


def define_flags():
    global _CONFIG
    _CONFIG = config_flags.DEFINE_config_file("config", None, common.config_help())
    flags.DEFINE_list("params", list(sweep.PARAMS), "Which weights to sweep (alpha, beta, gamma).")
    flags.DEFINE_list("values", ["0", "0.25", "0.5", "0.75", "1"], "Values given to each swept weight.")
    flags.DEFINE_string("inception_ckpt", None, "Converted pytorch-fid Inception; without it the plot shows PSNR.")
    flags.DEFINE_string("out", "runs/sweep", "Directory for the runs, sweep.json and sweep.png.")
    flags.DEFINE_integer("batch_size", 16, "Inception batch size.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _CONFIG.value is None:
        raise app.UsageError("--config is required")
    _, out = sweep.run_sweep(_CONFIG.value, FLAGS.params, FLAGS.values, FLAGS.out, FLAGS.inception_ckpt,
                             FLAGS.batch_size)
    print(f"wrote {out}/sweep.json and {out}/sweep.png")


def run():
    common.run(main, define_flags, common.parse_config_flags)


if __name__ == "__main__":
    run()
