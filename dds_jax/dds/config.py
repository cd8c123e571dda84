"""The DDS experiment configuration: every field, its default, and validation.

Experiment files in ``configs/`` start from :func:`base_config` and change what differs; every field
can be overridden on the command line (``--config.num_seeds=100``). A field that is not listed here is
an error that lists the valid ones.

One source of truth: the optimisation options are the fields of :class:`DDSConfig` (same names,
defaults and docs; ``None`` = the objective's default, :mod:`dds_jax.dds.objectives`), copied into the
ConfigDict by :func:`base_config`, turned back into a ``DDSConfig`` by :func:`dds_config`, and all
compared by the resume check (:data:`RESUME_FIELDS`). Adding an option is one edit: a field of ``DDSConfig``.
"""
import dataclasses
import difflib
import math
import typing
from typing import Optional, Tuple

import ml_collections

from dds_jax import ops
from dds_jax.dds import blend as blend_lib
from dds_jax.dds import objectives
from dds_jax.models import stylegan2 as sg

MODES = objectives.MODES
LATENT_SPACES = ("z", "w", "w+")
DIRECTIONS = ("s2t", "t2s", "both")
DIRECTION_ALIASES = {"d1": "t2s", "d2": "s2t"}   # released DDS_main loops (reference mode)
INITS = ("random", "mean", "input")   # input: the W+ latent(s) of the input image(s)
# The allowed values of DDSConfig's choice fields (validate checks the ConfigDict with the same).
CHOICES = {"mode": MODES + tuple(objectives.ALIASES), "direction": DIRECTIONS + tuple(DIRECTION_ALIASES),
           "latent_space": LATENT_SPACES, "init": INITS, "precision": tuple(ops.PRECISIONS), "remat": sg.REMAT,
           "blend_pool": blend_lib.POOLS}


def check_choices(values: dict, prefix: str = "DDSConfig.") -> None:
    """ValueError naming the first field of ``values`` whose value is not one of :data:`CHOICES`
    (None = the objective's default, allowed except for mode and direction)."""
    for field, allowed in CHOICES.items():
        v = values.get(field)
        if field in values and (v is not None or field in ("mode", "direction")) and v not in allowed:
            raise ValueError(f"{prefix}{field} = {v!r}; one of {allowed}")


@dataclasses.dataclass(frozen=True)
class DDSConfig:
    """Options of one DDS run; ``None`` fields take the objective's default (see ``resolved``).

    mode: the objective (:mod:`dds_jax.dds.objectives`): ``paper`` (Eqs. 1-6, two generators, ẑ random
      in Z), ``reference`` (the released ``DDS_main.py`` loop: the SOURCE generator only, W+ latent from
      the mean latent, weights 2/1/3, fresh noise inputs re-normalised after every step), ``outer`` /
      ``inner`` (x̂ = the generator of the domain outside the part / of the part's domain, fixed noise,
      every term on x̂ itself), ``blend`` / ``blend_forward`` (the two generators blended layer by layer
      under the part mask, :mod:`dds_jax.dds.blend`; optimised, or one forward pass).
    direction: ``s2t`` (source parts into the target image), ``t2s``, or ``both`` (two problems per
      seed). Reference mode: ``t2s`` = the released first loop D1 (``cross_over_source``), ``s2t`` = D2
      (``cross_over_target``); aliases ``d1``/``d2``.
    latent_space: ``z`` | ``w`` | ``w+``; init: ``random`` (paper footnote 3) | ``mean`` | ``input``.
    Loss = α(λ_p L_p,s + MSE_s) + β(λ_p L_p,t + MSE_t) + γ L_c (λ_p = ``perceptual_weight``):
      paper α, β, γ, λ_p = 0.9, 1, 0.5, 1; reference 1, 1, 3, 2.
    backbone: a registry name (vgg16, alexnet, ...) or ``generator`` (Appendix D);
      perceptual_size: images and masks go through ``Upsample(scale_factor=perceptual_size/R)`` before
      the backbone, as the released ``caluclate_loss`` (256; None = native resolution).
    Adam: lr (the objective's default), b1, b2, eps (torch defaults). truncation_*: of the INPUT images x_s, x_t.
    blend_start / blend_feather: the blend's first mixed resolution and the mask's feathering (pixels
    of each layer); blend_fix_outer: optimise only the part's latent w_in (w_out stays the input's);
    blend_paste: outside the (feathered) part, x̂ is the outside input image itself (a local edit);
    blend_union: the blended region is y_s ∪ y_t (else the part's own mask: y_s for s2t);
    blend_pool: how the mask reaches the coarse layers (``max``: every cell touching the part; ``area``).
    """
    mode: str = "paper"
    direction: str = "s2t"
    latent_space: Optional[str] = None
    init: Optional[str] = None
    paired: bool = True
    backbone: str = "vgg16"
    imagenet_normalize: bool = False
    perceptual_size: Optional[int] = 256
    alpha: Optional[float] = None
    beta: Optional[float] = None
    gamma: Optional[float] = None
    perceptual_weight: Optional[float] = None
    lr: Optional[float] = None       # None = the objective's (0.01, the released one; blend 0.03)
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    iterations: Optional[int] = None
    truncation_source: Optional[float] = None
    truncation_target: Optional[float] = None
    truncation_mean: int = 4096       # z's averaged for a truncation latent when none is given
    n_mean_latent: int = 10000        # z's averaged for init='mean' (released n_mean_latent)
    # Accelerators: float32 (parity, the default), tf32 or bf16 convolutions (ops.PRECISIONS); remat
    # recomputes generator activations in the backward pass instead of storing them (memory per seed;
    # sg.REMAT, None = the objective's default: "synthesis" for paper, else "none").
    precision: str = "float32"
    remat: Optional[str] = None
    blend_start: Optional[int] = None
    blend_feather: Optional[float] = None
    blend_fix_outer: Optional[bool] = None
    blend_paste: Optional[bool] = None
    blend_union: Optional[bool] = None
    blend_pool: Optional[str] = None

    def __post_init__(self):
        check_choices({f: getattr(self, f) for f in CHOICES})
        object.__setattr__(self, "direction", DIRECTION_ALIASES.get(self.direction, self.direction))
        object.__setattr__(self, "mode", objectives.ALIASES.get(self.mode, self.mode))

    @property
    def objective(self) -> objectives.Objective:
        return objectives.get(self.mode)

    def resolved(self) -> "DDSConfig":
        """A copy with every ``None`` field set to the objective's default."""
        fill = {k: v for k, v in self.objective.defaults.items() if getattr(self, k) is None}
        return dataclasses.replace(self, **fill) if fill else self

    @property
    def weights(self) -> Tuple[float, float, float, float]:
        c = self.resolved()
        return (float(c.alpha), float(c.beta), float(c.gamma), float(c.perceptual_weight))


DDS_FIELDS = tuple(f.name for f in dataclasses.fields(DDSConfig))
# The fields outside DDSConfig that change a run's results: a resumed run must keep them (with
# DDS_FIELDS, and its seeds: run.json and the contact sheets describe one seed list); the others
# (output paths, batch size, checkpoint cadence, gif) may change.
RUN_RESULT_FIELDS = ("source_ckpt", "target_ckpt", "segmenter_ckpt", "parts", "backbone_ckpt",
                     "seeds", "num_seeds", "first_seed", "target_seed_offset", "init_seed", "chunk",
                     "snapshot_every", "source_images", "target_images", "source_masks", "target_masks",
                     "align_images", "invert_steps", "invert_lr")
RESUME_FIELDS = DDS_FIELDS + RUN_RESULT_FIELDS


def _field_type(annotation):
    """``Optional[float]`` -> float (the type a command-line override is parsed as)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation


def _dds_defaults():
    hints = typing.get_type_hints(DDSConfig)
    for f in dataclasses.fields(DDSConfig):
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
    c.align_images = True         # two different folders: each source image is first moved into its
                                  # target's frame (dds_jax/dds/align.py: the similarity of the two
                                  # foregrounds), so its part lands on the target's head, not where it was
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


def dds_config(c) -> DDSConfig:
    """The :class:`DDSConfig` of a ConfigDict (or of a run.json ``config`` dict: fields it lacks take
    DDSConfig's defaults)."""
    return DDSConfig(**{k: c[k] for k in DDS_FIELDS if k in c})


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
    check_choices({k: config[k] for k in CHOICES}, prefix="config.")
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
