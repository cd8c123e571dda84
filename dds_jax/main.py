"""Dual-Domain Synthesis from an experiment config.

  python -m dds_jax.main --config=configs/demo.py
  python -m dds_jax.main --config=configs/cars.py --config.num_seeds=100 --config.batch_size=16
  python -m dds_jax.main --config=configs/cars.py --config.output_dir=runs/cars --config.resume=True

The logic lives in dds_jax.pipeline; see dds_jax/config.py for every field. Bad input prints one line
``error: ...`` and exits 2; Ctrl-C prints the command that resumes the run and exits 130.
"""
import os
import shlex
import sys

from absl import app, flags
from ml_collections import config_flags

from dds_jax import config as config_lib
from dds_jax import pipeline

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).",
                                          lock_config=True)
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() first (multi-host runs; "
                  "each host then runs its own seeds on its local devices, see README).")
flags.mark_flags_as_required(["config"])


def resume_command(argv) -> str:
    """The command line that continues this run: the same arguments with ``--config.resume=True``."""
    args = [a for a in argv[1:] if not a.startswith("--config.resume")]
    return " ".join(["python -m dds_jax.main"] + [shlex.quote(a) for a in args] + ["--config.resume=True"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if flags.FLAGS.distributed:
        import jax
        jax.distributed.initialize()
    try:
        out = pipeline.run_dds(_CONFIG.value)
    except KeyboardInterrupt:
        print(f"\ninterrupted; resume with: {resume_command(sys.argv)}", file=sys.stderr)
        # Every file is written atomically, so nothing is half-written; leave without interpreter
        # teardown, which can segfault while XLA still runs the interrupted step on its threads.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"DDS results in {out} (contact sheets, per-seed images, run.json)")


if __name__ == "__main__":
    app.run(main, flags_parser=config_lib.parse_flags)
