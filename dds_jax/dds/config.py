"""The DDS experiment configuration: every field, its default, and validation.

Experiment files in ``configs/`` start from :func:`base_config` and change what differs; every field
can be overridden on the command line (``--config.num_seeds=100``). A field that is not listed here is
an error that lists the valid ones.

One source of truth: the optimisation options are the fields of :class:`dds_jax.dds.optimize.DDSConfig`
(same names, defaults and docs; ``None`` = the mode's default), copied into the ConfigDict by
:func:`base_config`, turned back into a ``DDSConfig`` by :func:`dds_config`, and all compared by the
resume check (:data:`RESUME_FIELDS`). Adding an option is one edit: a field of ``DDSConfig``.
"""
import dataclasses
import difflib
import math
import typing

import ml_collections

from dds_jax.dds import optimize as opt

MODES, LATENT_SPACES, DIRECTIONS = opt.MODES, opt.LATENT_SPACES, opt.CHOICES["direction"]
DDS_FIELDS = tuple(f.name for f in dataclasses.fields(opt.DDSConfig))
# The fields outside DDSConfig that change a run's results: a resumed run must keep them (with
# DDS_FIELDS, and its seeds: run.json and the contact sheets describe one seed list); the others
# (output paths, batch size, checkpoint cadence, gif) may change.
RUN_RESULT_FIELDS = ("source_ckpt", "target_ckpt", "segmenter_ckpt", "parts", "backbone_ckpt",
                     "seeds", "num_seeds", "first_seed", "target_seed_offset", "init_seed", "chunk",
                     "snapshot_every", "source_images", "target_images", "source_masks", "target_masks",
                     "invert_steps", "invert_lr")
RESUME_FIELDS = DDS_FIELDS + RUN_RESULT_FIELDS


def _field_type(annotation):
    """``Optional[float]`` -> float (the type a command-line override is parsed as)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation


def _dds_defaults():
    hints = typing.get_type_hints(opt.DDSConfig)
    for f in dataclasses.fields(opt.DDSConfig):
        # a FieldReference keeps the type when the default is None (``--config.alpha=0.5`` still parses)
        yield f.name, ml_collections.FieldReference(f.default, field_type=_field_type(hints[f.name]))


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()

    # --- Models (directories written by convert/torch_to_flax.py or dds_jax.cli.segment train).
    # 'demo:<name>' names the tiny models shipped inside the package.
    c.source_ckpt = ""            # G_s, the source-domain generator (D_s)
    c.target_ckpt = ""            # G_t, the target-domain generator (D_t), same latent space
    c.segmenter_ckpt = ""         # one-shot FewShotCNN, used on both domains (paper Sec. 3.2)
    c.parts = ""                  # segmenter classes merged into the part mask, e.g. "1,2,3"; "" = all but 0
    c.backbone_ckpt = ""          # converted torchvision weights (not needed for backbone=generator)

    # --- Inputs x_s, x_t (paper Sec. 3.3).
    c.seeds = "0-7"               # a range '0-7' or a list '1,5,9'
    c.num_seeds = 0               # > 0: use seeds first_seed .. first_seed + num_seeds - 1 instead
    c.first_seed = 0
    c.target_seed_offset = 1000   # paired=False: z_t from seed + target_seed_offset
    c.init_seed = 0               # PRNG seed of the random initial latent ẑ (paper footnote 3)

    # --- Or the user's own images instead of seeds (dds_jax/dds/image_inputs.py): each is inverted into
    # its generator (W+); one folder alone gives the other domain from the same latent, two folders
    # pair images by file name. Problem i = the i-th image by name (RUN/<direction>/seed_<i>).
    c.source_images = ""          # folder of source-domain images (the part comes from these)
    c.target_images = ""          # folder of target-domain images (the same folder twice: both domains)
    c.source_masks = ""           # folders of painted part masks (PNG per image, same name, white = part);
    c.target_masks = ""           # "" = the segmenter on the inversions
    c.invert_steps = 500          # Adam steps of each W+ inversion (pixel MSE)
    c.invert_lr = 0.05

    # --- Optimisation: every field of dds_jax.dds.optimize.DDSConfig, with its default (see its
    # docstring): mode, direction, latent_space, init, paired, backbone, imagenet_normalize,
    # perceptual_size, alpha, beta, gamma, perceptual_weight, lr, b1, b2, eps, iterations,
    # truncation_source, truncation_target, truncation_mean, n_mean_latent. None = the mode's default
    # (paper: Eqs. 1-6, z, α, β, γ = 0.9, 1, 0.5, λ_p 1, 1000 iterations; reference: the released
    # DDS_main.py loop, w+, 1, 1, 3, λ_p 2, 1002 iterations, input truncation 0.7 / 1).
    for name, ref in _dds_defaults():
        c[name] = ref

    # --- Execution.
    c.batch_size = 8              # seeds optimised together (one vmapped, sharded step)
    c.chunk = 50                  # iterations per compiled lax.scan call
    c.snapshot_every = 50         # x̂ snapshots for the GIF and the FID-per-iteration curve (0 = none)
    c.checkpoint_every = 100      # orbax checkpoint of the optimiser state (resume)

    # --- Output.
    c.output_dir = "runs/dds"
    c.resume = False              # continue an interrupted run without redoing finished seeds
    c.gif = True
    return c


def dds_config(c) -> opt.DDSConfig:
    """The :class:`DDSConfig` of a ConfigDict (or of a run.json ``config`` dict: fields it lacks take
    DDSConfig's defaults)."""
    return opt.DDSConfig(**{k: c[k] for k in DDS_FIELDS if k in c})


def select_seeds(c) -> list:
    """The problem indices of a run: seeds, or with own images 0 .. N-1 (one per image)."""
    from dds_jax import files
    from dds_jax.dds import image_inputs
    if image_inputs.uses_images(c):
        return list(range(len(image_inputs.names(c))))
    if c.num_seeds > 0:
        return list(range(c.first_seed, c.first_seed + c.num_seeds))
    try:
        return files.parse_seeds(c.seeds)
    except ValueError as e:
        raise ValueError(f"config.seeds: {e}") from None


def unknown_field_message(names, valid=None) -> str:
    valid = sorted(valid or base_config().keys())
    hints = [f"did you mean {m[0]!r} for {n!r}?" for n in names
             for m in [difflib.get_close_matches(n, valid, n=1)] if m]
    return (f"unknown config field(s) {', '.join(map(repr, names))}; " + (" ".join(hints) + " " if hints else "")
            + f"valid fields: {', '.join(valid)}")


def validate(config: ml_collections.ConfigDict) -> None:
    """Unknown fields and out-of-range values -> ValueError naming the field (and the valid ones)."""
    valid = set(base_config().keys())
    unknown = sorted(set(config.keys()) - valid)
    if unknown:
        raise ValueError(unknown_field_message(unknown, valid))
    for field, value in config.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"config.{field}: {value} is not a finite number; pass a finite value")
    opt.check_choices({k: config[k] for k in opt.CHOICES}, prefix="config.")
    for field in ("iterations", "batch_size", "chunk"):
        if config[field] is not None and int(config[field]) < 1:
            raise ValueError(f"config.{field} must be >= 1, got {config[field]}")
    for field in ("source_ckpt", "target_ckpt", "segmenter_ckpt"):
        if not config[field]:
            raise ValueError(f"config.{field} is empty: point it at a converted model directory")
    if config.backbone != "generator" and not config.backbone_ckpt:
        raise ValueError(f"config.backbone_ckpt is empty: backbone {config.backbone!r} needs converted "
                         "torchvision weights (convert/torch_to_flax.py), or use backbone='generator'")
    if (config.source_masks or config.target_masks) and not (config.source_images or config.target_images):
        raise ValueError("config.source_masks / target_masks go with config.source_images / target_images")
    if int(config.invert_steps) < 1:
        raise ValueError(f"config.invert_steps must be >= 1, got {config.invert_steps}")
    select_seeds(config)
    try:
        dds_config(config).resolved()
    except (ValueError, TypeError) as e:
        raise ValueError(f"config: {e}") from None
