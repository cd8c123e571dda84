"""Dual-Domain Synthesis from an experiment config.

  python -m dds_jax.main --config=configs/demo.py
  python -m dds_jax.main --config=configs/cars.py --config.num_seeds=100 --config.batch_size=16
  python -m dds_jax.main --config=configs/cars.py --config.output_dir=runs/cars --config.resume=True

The logic lives in dds_jax.dds.pipeline; see dds_jax/dds/config.py for every field. Bad input prints one
line ``error: ...`` and exits 2; Ctrl-C prints the command that resumes the run and exits 130.
"""
from absl import app, flags
from ml_collections import config_flags

from dds_jax.cli import common
from dds_jax.dds import pipeline

FLAGS = flags.FLAGS


def define_flags():
    global _CONFIG
    _CONFIG = config_flags.DEFINE_config_file("config", None, common.config_help(), lock_config=True)
    flags.DEFINE_bool("distributed", False, "Multi-process run (jax.distributed): every process runs its "
                      "share of the seeds on its local devices, all write into one run directory (see README).")
    flags.DEFINE_string("coordinator_address", None, "--distributed: host:port of process 0 (default: "
                        "detected from the cluster environment, e.g. SLURM).")
    flags.DEFINE_integer("num_processes", None, "--distributed: number of processes (default: detected).")
    flags.DEFINE_integer("process_id", None, "--distributed: this process's index (default: detected).")
    flags.mark_flags_as_required(["config"])


def resume_command(argv) -> str:
    """The command line that continues this run: the same arguments with ``--config.resume=True``."""
    return common.resume_command(argv, "python -m dds_jax.main", "--config.resume=True")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if FLAGS.distributed:
        import jax
        jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    out = pipeline.run_dds(_CONFIG.value)
    if FLAGS.distributed:
        import jax
        if jax.process_index() > 0:
            print(f"process {jax.process_index()}: my seeds are in {out}; process 0 merges run.json")
            return
    print(f"DDS results in {out} (contact sheets, per-seed images, run.json)")


def run():
    common.run(main, define_flags, common.parse_config_flags, resume=resume_command)


if __name__ == "__main__":
    run()
