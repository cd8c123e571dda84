"""Write a data set of procedural faces (dds_jax.render): images, true part masks and parts.json.

  python -m dds_jax.cli.render --out=data/sketch10 --n=10 --style=sketch --grid=docs/sketch10.png
"""
from absl import flags

from dds_jax import render
from dds_jax.cli import common

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("out", None, "Output folder (images, masks/, parts.json).", required=True)
    flags.DEFINE_integer("n", 10, "Number of faces.")
    flags.DEFINE_integer("size", 32, "Image size (pixels).")
    flags.DEFINE_enum("style", "photo", list(render.STYLES), "Drawing style.")
    flags.DEFINE_integer("seed", 0, "Data-set seed.")
    flags.DEFINE_string("grid", None, "Also write a contact sheet of the images to this PNG.")
    flags.DEFINE_integer("grid_cols", 8, "Columns of the contact sheet.")


def main(argv):
    del argv
    render.write_dataset(FLAGS.out, FLAGS.seed, FLAGS.n, FLAGS.size, FLAGS.style, FLAGS.grid, FLAGS.grid_cols)
    print(f"{FLAGS.n} {FLAGS.style} faces ({FLAGS.size}x{FLAGS.size}) written to {FLAGS.out}"
          + (f"; contact sheet {FLAGS.grid}" if FLAGS.grid else ""))


def run():
    common.run(main, define_flags)


if __name__ == "__main__":
    run()
