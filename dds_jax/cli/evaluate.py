"""Table 1 of the paper for finished DDS runs: FID (with a converted pytorch-fid Inception), SSIM, PSNR.

  python -m dds_jax.cli.evaluate --run=runs/demo --inception_ckpt=ckpt/inception
  python -m dds_jax.cli.evaluate --run=runs/m1 --label=M1 --run=runs/m2 --label=M2 --out=results/

Writes table1.md, table1.csv, table1.json and fid_per_iteration.png (Fig. 7); see dds_jax.eval.evaluate.
"""
from absl import flags

from dds_jax.cli import common
from dds_jax.eval import evaluate

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_multi_string("run", [], "A finished DDS run directory (repeatable: one per mask).")
    flags.DEFINE_multi_string("label", [], "A label per --run (e.g. M1, M2); default: the directory name.")
    flags.DEFINE_string("inception_ckpt", None,
                        "Converted pytorch-fid Inception (convert/torch_to_flax.py --kind=inception). "
                        "Without it FID is left out.")
    flags.DEFINE_string("out", None, "Where to write table1.{md,csv,json} and plots (default: the first run).")
    flags.DEFINE_bool("fid_curve", True, "Plot FID of the snapshots per iteration (Fig. 7), when FID is on.")
    flags.DEFINE_integer("batch_size", 16, "Inception batch size.")


def main(argv):
    del argv
    rows, out_dir = evaluate.run_evaluation(FLAGS.run, FLAGS.label, FLAGS.inception_ckpt, FLAGS.out,
                                            FLAGS.fid_curve, FLAGS.batch_size)
    print(evaluate.table_markdown(rows))
    print(f"wrote {out_dir}/table1.md, table1.csv, table1.json")


def run():
    common.run(main, define_flags)


if __name__ == "__main__":
    run()
