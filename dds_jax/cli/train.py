"""Train a StyleGAN2 from scratch in JAX (rosinality ``train.py``): the demo's base generator, or any
small domain on a CPU/GPU.

  python -m dds_jax.cli.train --data=render:photo --size=32 --out=runs/faces32 --steps=4000
  python -m dds_jax.cli.train --data=path/to/images --size=64 --channels=4:256,8:256,16:128,32:64,64:32 --out=...
  python -m dds_jax.cli.train --out=runs/faces32 --resume          # continue an interrupted run

``--data=render:photo`` / ``render:sketch`` draws endless procedural faces (``dds_jax.render``); a folder
is read once, centre-cropped and resized. Writes OUT/generator (a dds-jax model every command accepts),
OUT/discriminator, OUT/state (for --resume), OUT/samples/*.png and OUT/metrics.jsonl.
"""
from absl import flags

from dds_jax.cli import common
from dds_jax.gan import run as gan_run
from dds_jax.gan import flags as train_flags
from dds_jax.gan import trainer
from dds_jax.models import stylegan2 as sg

FLAGS = flags.FLAGS


def define_flags():
    train_flags.define_training_flags(trainer.TrainConfig(), steps=10000, checkpoint_every=1000, sample_every=500)
    flags.adopt_module_key_flags(train_flags)       # --help lists the training flags too
    flags.DEFINE_string("data", "render:photo", "render:photo, render:sketch, or a folder of images.")
    flags.DEFINE_integer("size", 32, "Image resolution (power of two).")
    flags.DEFINE_integer("style_dim", 64, "Latent / style dimension.")
    flags.DEFINE_integer("n_mlp", 4, "Mapping-network layers.")
    flags.DEFINE_string("channels", "4:128,8:128,16:64,32:32",
                        "Channels per resolution, res:ch comma-separated (rosinality's table when empty).")


def parse_channels(text: str, size: int):
    """'4:128,8:128' -> ((4, 128), (8, 128)); empty -> rosinality's default table."""
    if not text.strip():
        return tuple(sorted(sg.default_channels(size).items()))
    try:
        pairs = [tuple(int(v) for v in item.split(":")) for item in text.split(",") if item.strip()]
    except ValueError as e:
        raise ValueError(f"--channels must look like 4:128,8:128,...; got {text!r}") from e
    return tuple(sorted((r, c) for r, c in pairs if r <= size))


def main(argv):
    del argv
    g_config = sg.GeneratorConfig(size=FLAGS.size, style_dim=FLAGS.style_dim, n_mlp=FLAGS.n_mlp,
                                  channels=parse_channels(FLAGS.channels, FLAGS.size))
    state = gan_run.run_training(FLAGS.out, g_config, train_flags.train_config(adapt=False), FLAGS.steps,
                                 FLAGS.data, FLAGS.seed, FLAGS.resume, FLAGS.overwrite,
                                 **train_flags.loop_options())
    print(f"trained {int(state.step)} iterations; generator in {FLAGS.out}/generator")


def resume_command(argv) -> str:
    return common.resume_command(argv, "python -m dds_jax.cli.train", "--resume")


def run():
    common.run(main, define_flags, resume=resume_command)


if __name__ == "__main__":
    run()
