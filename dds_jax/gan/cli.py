"""Flags shared by ``python -m dds_jax.train`` and ``python -m dds_jax.adapt`` (defined only by the entry
point that runs, so two CLIs never collide in one process)."""
from absl import flags

from dds_jax.gan import trainer

FLAGS = flags.FLAGS


def define_training_flags(defaults: trainer.TrainConfig, steps: int, checkpoint_every: int,
                          sample_every: int) -> None:
    flags.DEFINE_string("out", None, "Output folder (generator/, discriminator/, state/, samples/).")
    flags.DEFINE_integer("steps", steps, "Training iterations in total (a resumed run continues to this).")
    flags.DEFINE_integer("batch", defaults.batch, "Images per iteration.")
    flags.DEFINE_float("lr", defaults.lr, "Adam learning rate (before the lazy-regularisation correction).")
    flags.DEFINE_float("r1", defaults.r1, "R1 weight (lazy, every --d_reg_every iterations).")
    flags.DEFINE_float("path_regularize", defaults.path_regularize, "Path-length weight (0 disables).")
    flags.DEFINE_integer("d_reg_every", defaults.d_reg_every, "Lazy R1 interval.")
    flags.DEFINE_integer("g_reg_every", defaults.g_reg_every, "Lazy path-length interval.")
    flags.DEFINE_float("mixing", defaults.mixing, "Style-mixing probability.")
    flags.DEFINE_float("ema_decay", defaults.ema_decay, "Generator EMA decay per iteration.")
    flags.DEFINE_string("augment", defaults.augment,
                        "DiffAugment policy: comma-separated subset of color,translation,cutout ('' = off).")
    flags.DEFINE_bool("flip", defaults.flip, "Random horizontal flips of the real images.")
    flags.DEFINE_integer("seed", 0, "Seed of the initial weights, latents, noise and data order.")
    flags.DEFINE_integer("checkpoint_every", checkpoint_every, "Save state + models every N iterations.")
    flags.DEFINE_integer("sample_every", sample_every, "Write a sample grid every N iterations.")
    flags.DEFINE_bool("resume", False, "Continue the run in --out from its last checkpoint.")
    flags.DEFINE_bool("overwrite", False, "Discard a run already in --out and start again.")
    flags.DEFINE_bool("progress", True, "Show a progress bar.")
    flags.mark_flag_as_required("out")


def common_overrides() -> dict:
    """TrainConfig fields taken from the shared flags."""
    return dict(batch=FLAGS.batch, lr=FLAGS.lr, r1=FLAGS.r1, path_regularize=FLAGS.path_regularize,
                d_reg_every=FLAGS.d_reg_every, g_reg_every=FLAGS.g_reg_every, mixing=FLAGS.mixing,
                ema_decay=FLAGS.ema_decay, augment=FLAGS.augment, flip=FLAGS.flip)


def loop_options() -> dict:
    return dict(checkpoint_every=FLAGS.checkpoint_every, sample_every=FLAGS.sample_every,
                progress=FLAGS.progress)
