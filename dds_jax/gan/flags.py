"""Flags of ``python -m dds_jax.cli.train`` and ``python -m dds_jax.cli.adapt``, derived from the fields of
:class:`trainer.TrainConfig` (one flag per field: same name, type and default), so a new hyper-parameter
is one edit there. Defined only by the program that runs, so two programs never collide in one process."""
import dataclasses

from absl import flags

from dds_jax.gan import trainer

FLAGS = flags.FLAGS

ADAPT_FIELDS = ("kl_weight", "feat_const_batch", "subspace_freq", "subspace_std", "n_anchors",
                "cdc_temperature", "freeze_mapping", "freeze_res", "structure_weight", "structure_res",
                "structure_temperature", "edge_weight", "edge_temperature")
HELP = {
    "batch": "Images per iteration.",
    "lr": "Adam learning rate (before the lazy-regularisation correction).",
    "r1": "R1 weight (lazy, every --d_reg_every iterations).",
    "path_regularize": "Path-length weight (0 disables).",
    "path_batch_shrink": "The path-length batch is --batch divided by this.",
    "d_reg_every": "Lazy R1 interval.",
    "g_reg_every": "Lazy path-length interval.",
    "mixing": "Style-mixing probability.",
    "ema_decay": "Generator EMA decay per iteration.",
    "augment": "DiffAugment policy: comma-separated subset of color,translation,cutout ('' = off).",
    "flip": "Random horizontal flips of the real images.",
    "kl_weight": "Weight of the cross-domain distance-consistency (CDC) loss.",
    "feat_const_batch": "Latents compared by the CDC loss.",
    "subspace_freq": "Every N-th iteration samples near the anchors with an image-level D loss.",
    "subspace_std": "Std-dev of the anchor regions.",
    "n_anchors": "Number of anchor latents (the released n_train).",
    "cdc_temperature": "Softmax temperature of the CDC similarity distributions (1 = released).",
    "freeze_mapping": "Keep the source's mapping network.",
    "freeze_res": "Keep the source's synthesis layers up to this resolution (0 = train all).",
    "structure_weight": "Weight of the spatial structure (self-correlation) consistency loss (0 = off).",
    "structure_res": "The structure loss compares the layers up to this resolution.",
    "structure_temperature": "Softmax temperature of the structure loss's self-correlations.",
    "edge_weight": "Weight of the contrastive edge/line correspondence loss (line-drawing targets; 0 = off).",
    "edge_temperature": "Softmax temperature of the edge/line correspondence loss.",
}
_DEFINE = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float, str: flags.DEFINE_string}


def config_fields(adapt: bool):
    """The TrainConfig fields a program exposes (``adapt`` itself is the program's choice)."""
    return [f for f in dataclasses.fields(trainer.TrainConfig)
            if f.name != "adapt" and (adapt or f.name not in ADAPT_FIELDS)]


def define_training_flags(defaults: trainer.TrainConfig, steps: int, checkpoint_every: int,
                          sample_every: int) -> None:
    for f in config_fields(defaults.adapt):
        kind = type(getattr(defaults, f.name))
        _DEFINE[kind](f.name, getattr(defaults, f.name), HELP.get(f.name, f"TrainConfig.{f.name}."))
    flags.DEFINE_string("out", None, "Output folder (generator/, discriminator/, state/, samples/).")
    flags.DEFINE_integer("steps", steps, "Training iterations in total (a resumed run continues to this).")
    flags.DEFINE_integer("seed", 0, "Seed of the initial weights, latents, noise and data order.")
    flags.DEFINE_integer("checkpoint_every", checkpoint_every, "Save state + models every N iterations.")
    flags.DEFINE_integer("sample_every", sample_every, "Write a sample grid every N iterations.")
    flags.DEFINE_bool("resume", False, "Continue the run in --out from its last checkpoint.")
    flags.DEFINE_bool("overwrite", False, "Discard a run already in --out and start again.")
    flags.DEFINE_bool("progress", True, "Show a progress bar.")
    flags.mark_flag_as_required("out")


def train_config(adapt: bool) -> trainer.TrainConfig:
    """The TrainConfig the flags describe."""
    values = {f.name: FLAGS[f.name].value for f in config_fields(adapt)}
    return trainer.TrainConfig.few_shot(**values) if adapt else trainer.TrainConfig(**values)


def loop_options() -> dict:
    return dict(checkpoint_every=FLAGS.checkpoint_every, sample_every=FLAGS.sample_every,
                progress=FLAGS.progress)
