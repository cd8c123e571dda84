"""Make the offline demo's models end to end (see dds_jax.demo.models for the stages).

  python -m dds_jax.cli.demo_models --work=runs/demo64                 # train, adapt, label, evaluate, export
  python -m dds_jax.cli.demo_models --work=runs/demo64 --out=dds_jax/assets/demo   # replace the shipped ones
  python -m dds_jax.cli.demo_models --photo=dds_jax/assets/demo/photo ...   # keep a photo generator, redo the rest
  python -m dds_jax.cli.demo_models --photo=dds_jax/assets/demo/photo --sketch=dds_jax/assets/demo/sketch ...
                                                                       # keep both: redo the segmenter and the report
  python -m dds_jax.cli.demo_models --size=32 --work=runs/demo32       # the 32x32 pair shipped before issue 34
"""
import json
import pathlib

from absl import flags, logging

from dds_jax.cli import common
from dds_jax.demo import models as demo_models

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("work", "runs/demo_models", "Working folder (training runs, resumable).")
    flags.DEFINE_string("out", None, "Where the final models go (default: WORK/export); pass the package's "
                        "dds_jax/assets/demo to replace the shipped models.")
    flags.DEFINE_enum("size", str(demo_models.SHIPPED.g.size), [str(s) for s in demo_models.RECIPES],
                      "The pair's resolution: 64 = the shipped pair (issue 34); 32 = the pair shipped before.")
    flags.DEFINE_integer("base_steps", None, "Iterations of the photo generator (default: the recipe's, "
                         "11000 at 32, 16000 at 64).")
    flags.DEFINE_integer("adapt_steps", None, "Iterations of the sketch adaptation (default: the recipe's, 1600).")
    flags.DEFINE_integer("seg_epochs", 100, "Epochs of the one-shot segmenter.")
    flags.DEFINE_integer("invert_steps", demo_models.INVERT_STEPS, "Adam steps of each W+ inversion.")
    flags.DEFINE_integer("n_eval", 64, "Held-out rendered faces per domain for the IoU; seeds of the pair measures.")
    flags.DEFINE_string("photo", None, "An existing photo generator to adapt from (skips training one), "
                        "e.g. dds_jax/assets/demo/photo.")
    flags.DEFINE_string("sketch", None, "With --photo: an existing sketch generator adapted from it (skips the "
                        "adaptation; the segmenter and the report are made again), e.g. dds_jax/assets/demo/sketch.")


def main(argv):
    del argv
    out = demo_models.output_folder(FLAGS.work, FLAGS.out)
    for name in ("photo", "sketch"):
        value = getattr(FLAGS, name)
        if value and not (pathlib.Path(value) / "model.json").is_file():
            raise ValueError(f"--{name}={value}: no model.json there; pass a dds-jax generator folder, "
                             f"e.g. dds_jax/assets/demo/{name}")
    report = demo_models.build(FLAGS.work, out, FLAGS.base_steps, FLAGS.adapt_steps, FLAGS.seg_epochs,
                               FLAGS.invert_steps, FLAGS.n_eval, FLAGS.photo, size=int(FLAGS.size),
                               sketch_source=FLAGS.sketch)
    logging.info("report: %s", report)
    print(json.dumps(report["segmenter_iou"], indent=1))
    print(f"demo models written to {out}")


def run():
    common.run(main, define_flags)


if __name__ == "__main__":
    run()
