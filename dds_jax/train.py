"""Train a StyleGAN2 from scratch in JAX (rosinality ``train.py``): the demo's base generator, or any
small domain on a CPU/GPU.

  python -m dds_jax.train --data=render:photo --size=32 --out=runs/faces32 --steps=4000
  python -m dds_jax.train --data=path/to/images --size=64 --channels=4:256,8:256,16:128,32:64,64:32 --out=...
  python -m dds_jax.train --out=runs/faces32 --resume          # continue an interrupted run

``--data=render:photo`` / ``render:sketch`` draws endless procedural faces (``dds_jax.render``); a folder
is read once, centre-cropped and resized. Writes OUT/generator (a dds-jax model every command accepts),
OUT/discriminator, OUT/state (for --resume), OUT/samples/*.png and OUT/metrics.jsonl.
"""
import sys

import jax
from absl import app, flags, logging

from dds_jax.gan import cli, data, trainer
from dds_jax.gan import run as gan_run
from dds_jax.models import stylegan2 as sg

FLAGS = flags.FLAGS


def define_flags():
    cli.define_training_flags(trainer.TrainConfig(), steps=10000, checkpoint_every=1000, sample_every=500)
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


def data_source(spec: str, batch: int, size: int, seed: int):
    if spec.startswith("render:"):
        return data.render_batches(spec.split(":", 1)[1], batch, size, seed)
    return data.folder_batches(data.load_image_folder(spec, size), batch, seed)


def run_training(out, g_config: sg.GeneratorConfig, cfg: trainer.TrainConfig, steps: int, data_spec: str,
                 seed: int = 0, resume: bool = False, overwrite: bool = False, **loop):
    """Train (or resume) a generator from scratch; returns the final state."""
    d_config = trainer.default_d_config(g_config)
    spec = gan_run.RunSpec("train", g_config, d_config, cfg, steps, seed=seed, data=data_spec)
    batch_at = data_source(data_spec, cfg.batch, g_config.size, seed)
    restore = gan_run.prepare_out(out, spec, resume, overwrite)
    models = trainer.Models(g_config, d_config)
    key = jax.random.PRNGKey(seed)
    state = trainer.init_state(models, cfg, key)
    buffers = sg.init_variables(g_config, jax.random.fold_in(key, 7))["buffers"]
    if restore:
        state = gan_run.restore_state(out, state)
        logging.info("resuming %s at iteration %d", out, int(state.step))
    return gan_run.fit(out, spec, state, buffers, batch_at, **loop)


def main(argv):
    del argv
    try:
        g_config = sg.GeneratorConfig(size=FLAGS.size, style_dim=FLAGS.style_dim, n_mlp=FLAGS.n_mlp,
                                      channels=parse_channels(FLAGS.channels, FLAGS.size))
        cfg = trainer.TrainConfig(**cli.common_overrides())
        state = run_training(FLAGS.out, g_config, cfg, FLAGS.steps, FLAGS.data, FLAGS.seed, FLAGS.resume,
                             FLAGS.overwrite, **cli.loop_options())
    except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"trained {int(state.step)} iterations; generator in {FLAGS.out}/generator")


if __name__ == "__main__":
    define_flags()
    app.run(main)
