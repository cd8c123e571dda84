"""The DDS experiment configuration: every field, its default, and validation.

Experiment files in ``configs/`` start from :func:`base_config` and change what differs; every field
can be overridden on the command line (``--config.num_seeds=100``). A field that is not listed here is
an error that lists the valid ones.
"""
import ml_collections

MODES = ("paper", "reference")
LATENT_SPACES = ("z", "w", "w+")
DIRECTIONS = ("s2t", "t2s", "both", "d1", "d2")  # d1/d2: the released loops (reference mode)


def _unset(field_type):
    """A field that is None by default and still accepts a typed command-line override."""
    return ml_collections.FieldReference(None, field_type=field_type)


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()

    # --- Models (directories written by convert/torch_to_flax.py or dds_jax.segment train).
    # 'demo:<name>' names the tiny models shipped inside the package.
    c.source_ckpt = ""            # G_s, the source-domain generator (D_s)
    c.target_ckpt = ""            # G_t, the target-domain generator (D_t), same latent space
    c.segmenter_ckpt = ""         # one-shot FewShotCNN, used on both domains (paper Sec. 3.2)
    c.parts = ""                  # segmenter classes merged into the part mask, e.g. "1,2,3"; "" = all but 0
    c.backbone = "vgg16"          # perceptual loss net: vgg16 | alexnet | squeezenet | resnet18 | generator
    c.backbone_ckpt = ""          # converted torchvision weights (not needed for backbone=generator)
    c.imagenet_normalize = False  # the released code feeds [-1, 1] images to VGG as they are

    # --- Inputs x_s, x_t (paper Sec. 3.3).
    c.seeds = "0-7"               # a range '0-7' or a list '1,5,9'
    c.num_seeds = 0               # > 0: use seeds first_seed .. first_seed + num_seeds - 1 instead
    c.first_seed = 0
    c.paired = True               # one z* for both generators; False: z_t from seed + target_seed_offset
    c.target_seed_offset = 1000
    # Truncation of the input images (1 = none); None = the mode's default: paper 1 / 1, reference
    # 0.7 / 1 (as DDS_main.py makes x_s and x_t).
    c.truncation_source = _unset(float)
    c.truncation_target = _unset(float)
    c.truncation_mean = 4096      # z's averaged for the truncation latent when a checkpoint has none
    c.direction = "s2t"           # s2t: source parts into the target image; t2s: swapped; both

    # --- Optimisation (paper Sec. 4: Adam, lr 0.01, 1000 iterations, α, β, γ = 0.9, 1, 0.5).
    c.mode = "paper"              # paper: Eqs. 1-6; reference: the released DDS_main.py loop
    # Fields left None take the mode's default (paper: z, 0.9, 1, 0.5, λ_p 1; reference: w+, 1, 1, 3, 2).
    c.latent_space = _unset(str)  # z | w | w+
    c.alpha = _unset(float)       # weight of L_s (Eq. 6)
    c.beta = _unset(float)        # weight of L_t
    c.gamma = _unset(float)       # weight of L_c
    c.perceptual_weight = _unset(float)  # λ_p in front of L_p (the released code uses 2)
    c.lr = 0.01
    c.iterations = 1000
    c.init_seed = 0               # PRNG seed of the random initial latent ẑ (paper footnote 3)

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


def validate(config: ml_collections.ConfigDict) -> None:
    """Unknown fields and out-of-range values -> ValueError naming the field (and the valid ones)."""
    valid = set(base_config().keys())
    unknown = sorted(set(config.keys()) - valid)
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown}; valid fields: {', '.join(sorted(valid))}")
    for field, allowed in (("mode", MODES), ("latent_space", LATENT_SPACES), ("direction", DIRECTIONS)):
        if config[field] is not None and config[field] not in allowed:
            raise ValueError(f"config.{field} = {config[field]!r}; one of {allowed}")
    for field in ("iterations", "batch_size", "chunk"):
        if int(config[field]) < 1:
            raise ValueError(f"config.{field} must be >= 1, got {config[field]}")
    for field in ("source_ckpt", "target_ckpt", "segmenter_ckpt"):
        if not config[field]:
            raise ValueError(f"config.{field} is empty: point it at a converted model directory")
    if config.backbone != "generator" and not config.backbone_ckpt:
        raise ValueError(f"config.backbone_ckpt is empty: backbone {config.backbone!r} needs converted "
                         "torchvision weights (convert/torch_to_flax.py), or use backbone='generator'")
