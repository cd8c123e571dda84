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
import pathlib
import sys
import typing

import ml_collections

from dds_jax.dds import optimize as opt

MODES, LATENT_SPACES, DIRECTIONS = opt.MODES, opt.LATENT_SPACES, opt.CHOICES["direction"]
DDS_FIELDS = tuple(f.name for f in dataclasses.fields(opt.DDSConfig))
# The fields outside DDSConfig that change a run's results: a resumed run must keep them (with
# DDS_FIELDS); the others (output paths, batch size, checkpoint cadence, gif) may change.
RUN_RESULT_FIELDS = ("source_ckpt", "target_ckpt", "segmenter_ckpt", "parts", "backbone_ckpt",
                     "target_seed_offset", "init_seed", "chunk", "snapshot_every")
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

    # --- Models (directories written by convert/torch_to_flax.py or dds_jax.segment train).
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
    from dds_jax import cli_utils
    if c.num_seeds > 0:
        return list(range(c.first_seed, c.first_seed + c.num_seeds))
    try:
        return cli_utils.parse_seeds(c.seeds)
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
    select_seeds(config)
    try:
        dds_config(config).resolved()
    except (ValueError, TypeError) as e:
        raise ValueError(f"config: {e}") from None


# --------------------------------------------------------------------------------------------------
# Command line: --config=FILE[:arg] and --config.<field>=value, with one-line errors
# --------------------------------------------------------------------------------------------------
def _config_args(argv, flag: str):
    """(config file arguments, override field names) found in ``argv``."""
    files, fields = [], []
    for i, a in enumerate(argv[1:], 1):
        if a == f"--{flag}" and i + 1 < len(argv):
            files.append(argv[i + 1])
        elif a.startswith(f"--{flag}="):
            files.append(a.split("=", 1)[1])
        elif a.startswith(f"--{flag}."):
            fields.append(a[len(flag) + 3:].split("=", 1)[0].split(".", 1)[0])
    return files, fields


def parse_flags(argv, flag: str = "config"):
    """absl ``flags_parser`` for a CLI with a ``--config`` file flag: unknown fields (listing the valid
    ones), a missing config file and unparsable values print ONE line and exit 2 (no traceback)."""
    from absl import flags

    def fail(msg):
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)

    files, fields = _config_args(argv, flag)
    for f in files:
        path = f.split(":", 1)[0]
        if not pathlib.Path(path).is_file():
            fail(f"config file not found: {path} (--{flag}={f}); pass one of configs/*.py")
    valid = set(base_config().keys())
    unknown = sorted(set(n for n in fields if n not in valid))
    if unknown:
        fail(unknown_field_message(unknown, valid))
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(str(e).splitlines()[0])
    except Exception as e:         # a config file that fails to load or to take an override
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        fail(f"--{flag}: {type(e).__name__}: {lines[-1].strip() if lines else ''}")
