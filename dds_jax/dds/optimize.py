"""Batched DDS latent optimisation (paper Algorithm 1) for many seeds in one compiled function.

One call of the function made by :func:`make_run_chunk` runs ``chunk`` iterations for every problem of
the batch: generators + backbone + losses + gradient + optax Adam update are ONE ``jax.jit`` function,
vmapped over the seed axis, iterated with ``lax.scan``; the seed axis is sharded over a
``jax.sharding.Mesh`` (axis name ``'seeds'``). Model weights are explicit arguments of the jitted
function (never closed-over constants), the optimiser state is donated.

Typical use (the CLI does the same with checkpoints between chunks)::

    models = DDSModels.create(gen_s, gen_t, "vgg16", vgg_params)
    inputs = prepare_inputs(models, zs, cfg, key, seg_fn=segment)     # x_s, x_t, y_s, y_t, x_c
    inputs, n = pad_seeds(inputs, mesh.size)
    state = init_state(models, inputs, cfg, key, mesh=mesh)
    run = make_run_chunk(models, cfg, chunk=50, snapshot_every=50, mesh=mesh)
    for _ in range(cfg.iterations // 50):
        state, out = run(state, inputs)          # out.losses[name]: [50, B]; out.snapshots [1, B, H, W, 3]
    images = final_images(models, state, inputs, cfg)["result"]

Problems vs seeds: ``direction='both'`` puts the s2t and the t2s problem of each seed on the seed axis
(``Inputs.seed`` maps a problem to its seed, ``Inputs.t2s`` says which direction it is).
"""
import dataclasses
import functools
from typing import Callable, Dict, NamedTuple, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from dds_jax import generation, ops
from dds_jax.dds import blend as blend_lib
from dds_jax.dds import losses, objectives
from dds_jax.dds.config import (CHOICES, DIRECTION_ALIASES, DIRECTIONS, INITS, LATENT_SPACES, MODES,  # noqa: F401
                                DDSConfig, check_choices)
from dds_jax.dds.perceptual import GENERATOR, backbone_features, check_backbone
from dds_jax.models import stylegan2 as sg

SEEDS = "seeds"


@dataclasses.dataclass(frozen=True, eq=False)
class DDSModels:
    """The networks of a run: static architecture + ``params`` (a pytree passed to the jitted step).

    params = {"g_s": G_s variables, "g_t": G_t variables, "backbone": backbone params or None};
    latent_avgs: the checkpoints' ``latent_avg`` (w_avg_s, w_avg_t; None where a checkpoint has none),
    the truncation centre of the inputs.
    """
    config_s: sg.GeneratorConfig
    config_t: sg.GeneratorConfig
    backbone: str
    params: dict
    latent_avgs: tuple = (None, None)
    precision: str = "float32"            # how the generators compute: set from DDSConfig.precision /
    remat: str = "none"                   # remat by the compiled step (make_run_chunk, final_images)

    @classmethod
    def create(cls, gen_s: sg.LoadedGenerator, gen_t: sg.LoadedGenerator, backbone: str = "vgg16",
               backbone_params=None) -> "DDSModels":
        a, b = gen_s.config, gen_t.config
        for what in ("size", "style_dim", "n_latent"):
            if getattr(a, what) != getattr(b, what):
                raise ValueError(f"source and target generators differ in {what}: {getattr(a, what)} vs "
                                 f"{getattr(b, what)}; DDS needs two generators with the same latent "
                                 "space and resolution")
        check_backbone(backbone)
        if backbone != GENERATOR and backbone_params is None:
            raise ValueError(f"backbone {backbone!r} needs its converted weights (backbone_params)")
        params = {"g_s": gen_s.variables, "g_t": gen_t.variables,
                  "backbone": None if backbone == GENERATOR else backbone_params}
        return cls(a, b, backbone, params, (gen_s.latent_avg, gen_t.latent_avg))

    @property
    def gen_s(self) -> sg.Generator:
        return sg.Generator(self.config_s, remat=self.remat, precision=self.precision)

    @property
    def gen_t(self) -> sg.Generator:
        return sg.Generator(self.config_t, remat=self.remat, precision=self.precision)

    @property
    def statics(self):
        """Hashable architecture key (for caching compiled functions)."""
        return (self.config_s, self.config_t, self.backbone)


# --------------------------------------------------------------------------------------------------
# Pytrees: inputs, state, chunk output (every leaf has the problem axis first)
# --------------------------------------------------------------------------------------------------
class Inputs(NamedTuple):
    """Per-problem inputs, NHWC float32. ``w_s``/``w_t``: W+ latents that generated x_s/x_t (needed by
    the generator backbone; None for given images). ``t2s``: direction of the problem; ``seed``: index
    of its seed in the caller's list; ``valid``: False for padding."""
    x_s: jnp.ndarray
    x_t: jnp.ndarray
    y_s: jnp.ndarray
    y_t: jnp.ndarray
    x_c: jnp.ndarray
    t2s: jnp.ndarray
    seed: jnp.ndarray
    valid: jnp.ndarray
    w_s: Optional[jnp.ndarray] = None
    w_t: Optional[jnp.ndarray] = None


class State(NamedTuple):
    """Optimisation state per problem: the latent ẑ ([D] or [n_latent, D]), its Adam state, the noise
    inputs (reference mode; () in paper mode), iterations done, ``alive`` (False once a non-finite loss
    or gradient stopped the problem; False from the start for padding) and the iteration it stopped at."""
    latent: jnp.ndarray
    opt_state: optax.OptState
    noises: Tuple[jnp.ndarray, ...]
    step: jnp.ndarray
    alive: jnp.ndarray
    stopped_at: jnp.ndarray


class ChunkOutput(NamedTuple):
    """losses[name] [chunk, B] (names: :data:`losses.TERMS`, at the latent BEFORE each update);
    snapshots [chunk // k, B, H, W, 3]: x̂ at iterations ``snapshot_steps`` [chunk // k, B] (the first of
    each group of k); grads [chunk, B, *latent] when asked for."""
    losses: Dict[str, jnp.ndarray]
    snapshots: Optional[jnp.ndarray] = None
    snapshot_steps: Optional[jnp.ndarray] = None
    grads: Optional[jnp.ndarray] = None


def optimizer(cfg: DDSConfig) -> optax.GradientTransformation:
    """torch ``optim.Adam(lr)`` (constant lr, no weight decay): same update formula as optax.adam."""
    return optax.adam(cfg.lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)


def mask_is_empty(mask) -> np.ndarray:
    """[B] bool: masks [B, H, W, 1] with no foreground pixel (> 0.5). The caller warns and drops them."""
    m = np.asarray(mask)
    return ~np.any(m > 0.5, axis=tuple(range(1, m.ndim)))


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------
def _direction_flags(direction: str, n: int):
    """(t2s flags, seed indices) of the problems of n seeds."""
    seeds = np.arange(n, dtype=np.int32)
    if direction == "both":
        return np.r_[np.zeros(n, bool), np.ones(n, bool)], np.r_[seeds, seeds]
    return np.full(n, direction == "t2s"), seeds


def inputs_from_images(x_s, x_t, y_s, y_t, cfg: DDSConfig, w_s=None, w_t=None) -> Inputs:
    """Problems from given images [B, H, W, 3] and binary masks [B, H, W, 1] (x_c per Eq. 1)."""
    cfg = cfg.resolved()
    x_s, x_t, y_s, y_t = (jnp.asarray(a, jnp.float32) for a in (x_s, x_t, y_s, y_t))
    if x_s.shape != x_t.shape or y_s.shape != y_t.shape or y_s.shape[:3] != x_s.shape[:3]:
        raise ValueError(f"image/mask shapes disagree: x_s {x_s.shape}, x_t {x_t.shape}, "
                         f"y_s {y_s.shape}, y_t {y_t.shape}")
    t2s, seed = _direction_flags(cfg.direction, x_s.shape[0])
    take = lambda a: None if a is None else jnp.asarray(a)[jnp.asarray(seed)]
    x_s, x_t, y_s, y_t, w_s, w_t = map(take, (x_s, x_t, y_s, y_t, w_s, w_t))
    flags = jnp.asarray(t2s)[:, None, None, None]
    x_c = losses.crossover(x_s, x_t, y_s, y_t, flags)
    return Inputs(x_s, x_t, y_s, y_t, x_c, jnp.asarray(t2s), jnp.asarray(seed),
                  jnp.ones(len(seed), bool), w_s, w_t)


def prepare_inputs(models: DDSModels, zs, cfg: DDSConfig, key=None, seg_fn=None, masks=None,
                   trunc_latents=None) -> Inputs:
    """x_s = G_s(z_s), x_t = G_t(z_t) (noise buffers, the configured truncation), their masks, x_c.

    zs: [B, style_dim] (paired: one z* for both) or a pair (z_s, z_t) (unpaired, Fig. 11-12).
    Masks: ``masks=(y_s, y_t)`` given, or ``seg_fn(images, features) -> [B, H, W, 1]`` binary masks
    (a pair of functions for two segmenters). trunc_latents: (w_avg_s, w_avg_t) for truncation < 1;
    else the checkpoint's ``latent_avg``, else the mean of ``truncation_mean`` random w's from ``key``.
    """
    cfg = cfg.resolved()
    z_s, z_t = zs if isinstance(zs, (tuple, list)) else (zs, zs)
    key = jax.random.PRNGKey(0) if key is None else key
    k_s, k_t = jax.random.split(key)
    avg = trunc_latents or (None, None)
    out = []
    for cfg_g, name, z, t, k, a, ckpt_avg in (
            (models.config_s, "g_s", z_s, cfg.truncation_source, k_s, avg[0], models.latent_avgs[0]),
            (models.config_t, "g_t", z_t, cfg.truncation_target, k_t, avg[1], models.latent_avgs[1])):
        variables = models.params[name]
        if a is None:
            a = (jnp.zeros((cfg_g.style_dim,), jnp.float32) if t >= 1 else
                 generation.truncation_latent(cfg_g, variables, ckpt_avg, k, cfg.truncation_mean))
        out.append(generation.forward_fn(cfg_g)(variables, jnp.asarray(z, jnp.float32), jnp.float32(t), a, k))
    (w_s, x_s, f_s), (w_t, x_t, f_t) = out
    if masks is not None:
        y_s, y_t = masks
    elif seg_fn is not None:
        seg_s, seg_t = seg_fn if isinstance(seg_fn, (tuple, list)) else (seg_fn, seg_fn)
        y_s, y_t = seg_s(x_s, f_s), seg_t(x_t, f_t)
    else:
        raise ValueError("prepare_inputs needs masks=(y_s, y_t) or a seg_fn")
    return inputs_from_images(x_s, x_t, y_s, y_t, cfg, w_s, w_t)


# --------------------------------------------------------------------------------------------------
# Seed axis: padding and sharding
# --------------------------------------------------------------------------------------------------
def seed_mesh(devices: Optional[Sequence] = None) -> Mesh:
    """A 1-D mesh (axis ``'seeds'``) over ``devices`` (default: all local devices)."""
    return Mesh(np.asarray(jax.local_devices() if devices is None else list(devices)), (SEEDS,))


def pad_seeds(inputs: Inputs, multiple: int) -> Tuple[Inputs, int]:
    """Pad the problem axis to a multiple of ``multiple`` with copies of the last problem marked
    ``valid=False`` (their state starts dead: they never update). Returns (inputs, real count)."""
    n = int(inputs.x_s.shape[0])
    extra = -n % multiple
    if extra == 0:
        return inputs, n
    idx = jnp.r_[jnp.arange(n), jnp.full(extra, n - 1)]
    padded = jax.tree_util.tree_map(lambda a: a[idx], inputs)
    return padded._replace(valid=padded.valid.at[n:].set(False)), n


def shard_seeds(tree, mesh: Optional[Mesh]):
    """device_put every leaf with its leading (problem) axis split over the mesh."""
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, P(SEEDS)))


def unpad(tree, n: int, axis: int = 0):
    """The first n problems of every leaf (``axis`` = the problem axis: 1 for ChunkOutput)."""
    return jax.tree_util.tree_map(lambda a: lax.slice_in_dim(a, 0, n, axis=axis), tree)


# --------------------------------------------------------------------------------------------------
# Per-problem computation (vmapped below)
# --------------------------------------------------------------------------------------------------
_synth, _select = objectives.synth, objectives.select


def _image_features(models: DDSModels, cfg: DDSConfig, params, img):
    return backbone_features(models.backbone, params["backbone"], losses.perceptual_resize(img, cfg.perceptual_size),
                             cfg.imagenet_normalize, ops.precision_spec(models.precision).conv)


def _masks_for(feats, mask, cfg: DDSConfig, generator_backbone: bool):
    if not generator_backbone:
        mask = losses.perceptual_resize(mask, cfg.perceptual_size)
    return losses.layer_masks(mask, [f.shape[1:3] for f in feats])


def make_targets(models: DDSModels, cfg: DDSConfig, params, inp: Inputs) -> dict:
    """The constants of one problem's loss: masks per layer, masked input features F_j(x)·λ_j, masked
    input pixels x·m and x_c. Computed once per chunk (the released code recomputes F_j(x) every step)."""
    one = lambda a: a[None]
    x_s, x_t, y_s, y_t = map(one, (inp.x_s, inp.x_t, inp.y_s, inp.y_t))
    roles = cfg.objective.roles                                            # Eq. 2 masks and roles
    x_a, m_a, x_b, m_b = losses.roles(x_s, x_t, y_s, y_t, roles, inp.t2s)
    gen = models.backbone == GENERATOR
    if gen:
        if inp.w_s is None or inp.w_t is None:
            raise ValueError("backbone='generator' needs the inputs' latents (use prepare_inputs, or pass "
                             "w_s/w_t to inputs_from_images)")
        _, f_s = _synth(models.gen_s, params["g_s"], inp.w_s, "w+")
        _, f_t = _synth(models.gen_t, params["g_t"], inp.w_t, "w+")
        if roles == "paper":
            f_a, f_b = _select(inp.t2s, f_t, f_s), _select(inp.t2s, f_s, f_t)
        else:
            f_a, f_b = f_s, f_t
    else:
        f_a, f_b = _image_features(models, cfg, params, x_a), _image_features(models, cfg, params, x_b)
    masks_a, masks_b = _masks_for(f_a, m_a, cfg, gen), _masks_for(f_b, m_b, cfg, gen)
    return {"m_a": m_a, "m_b": m_b, "pix_a": x_a * m_a, "pix_b": x_b * m_b, "x_c": inp.x_c[None],
            "masks_a": masks_a, "masks_b": masks_b,
            "feat_a": losses.masked_targets(f_a, masks_a), "feat_b": losses.masked_targets(f_b, masks_b)}


def role_images(models: DDSModels, cfg: DDSConfig, params, latent, noises, inp: Inputs):
    """(I_a, features_a, I_b, features_b) of ``latent`` for one problem: the images the terms compare in
    the source role (a) and the target role (b); I_b is x̂. The objective's renderer decides
    (:mod:`dds_jax.dds.objectives`); one-image objectives return the same object twice, so its
    features are computed once."""
    return cfg.objective.render(models, cfg, params, latent, noises, inp)


def problem_loss(latent, models: DDSModels, cfg: DDSConfig, params, noises, inp: Inputs, tgt):
    """(loss, (terms, x̂ [H, W, 3])) of one problem at ``latent`` (images from :func:`role_images`)."""
    img_a, feats_a, img_b, feats_b = role_images(models, cfg, params, latent, noises, inp)
    return _role_loss(models, cfg, params, tgt, img_a, feats_a, img_b, feats_b)


def _role_loss(models: DDSModels, cfg: DDSConfig, params, tgt, img_a, feats_a, img_b, feats_b):
    """:func:`problem_loss` from the role images (and the generator features, for that backbone)."""
    if models.backbone != GENERATOR:
        feats_a = _image_features(models, cfg, params, img_a)
        feats_b = feats_a if img_b is img_a else _image_features(models, cfg, params, img_b)
    obj = cfg.objective
    # the weights are an argument of a compiled step (params["loss_weights"], see make_run_chunk)
    weights = params["loss_weights"] if "loss_weights" in params else cfg.weights
    terms = losses.dds_terms(img_a, img_b, feats_a, feats_b, tgt, weights, crossover=obj.crossover,
                             region_mean=obj.region_mean)
    return terms["loss"], (terms, img_b[0])


def _after(x, *trees):
    """``x``, made to depend on every leaf of ``trees`` (adds 0 * their sum; exact for finite values, and
    a non-finite gradient is rejected by the step anyway). XLA cannot reorder across a data dependency."""
    dep = sum(jnp.sum(leaf) for t in trees for leaf in jax.tree_util.tree_leaves(t))
    return x + (0.0 * dep).astype(x.dtype)


def sequential_paper_grad(latent, models: DDSModels, cfg: DDSConfig, params, inp: Inputs, tgt):
    """``value_and_grad(problem_loss)`` of paper mode with one generator's intermediates alive at a time
    (``remat="synthesis"``): both generators run forward only, the loss gives the cotangents of their
    outputs, then G_s is re-run and differentiated, and only after it G_t. Same gradient (float
    summation order aside), one more forward pass of each generator."""
    plain_s = sg.Generator(models.config_s, precision=models.precision)   # no module remat: re-run by hand
    plain_t = sg.Generator(models.config_t, precision=models.precision)
    synth_s = lambda l: _synth(plain_s, params["g_s"], l, cfg.latent_space)
    synth_t = lambda l: _synth(plain_t, params["g_t"], l, cfg.latent_space)

    def loss_of(outs):
        (i_s, f_s), (i_t, f_t) = outs
        t2s = inp.t2s
        return _role_loss(models, cfg, params, tgt, _select(t2s, i_t, i_s), _select(t2s, f_t, f_s),
                          _select(t2s, i_s, i_t), _select(t2s, f_s, f_t))

    (loss, aux), (ct_s, ct_t) = jax.value_and_grad(loss_of, has_aux=True)((synth_s(latent), synth_t(latent)))
    grad_s = jax.vjp(synth_s, _after(latent, ct_s, ct_t))[1](ct_s)[0]
    grad_t = jax.vjp(synth_t, _after(latent, grad_s))[1](ct_t)[0]
    return (loss, aux), grad_s + grad_t


def normalize_noise(noise):
    """Released ``noise_normalize_``: (n - mean) / std with the UNBIASED std (torch default)."""
    n = noise.size
    mean = jnp.mean(noise)
    std = jnp.sqrt(jnp.sum(jnp.square(noise - mean)) / (n - 1))
    return (noise - mean) / std


def _problem_step(models: DDSModels, cfg: DDSConfig, opt, params, st: State, inp: Inputs, tgt):
    """One Adam iteration of one problem; a non-finite loss/gradient stops it (no update, alive=False)."""
    if cfg.objective.two_generators_sequential and models.remat == "synthesis":
        (loss, (terms, img)), grad = sequential_paper_grad(st.latent, models, cfg, params, inp, tgt)
    else:
        (loss, (terms, img)), grad = jax.value_and_grad(problem_loss, has_aux=True)(
            st.latent, models, cfg, params, st.noises, inp, tgt)
    if cfg.objective.latent_pair and cfg.blend_fix_outer:
        grad = grad.at[1].set(0.0)            # w_out stays the outside input's own latent
    updates, opt_state = opt.update(grad, st.opt_state, st.latent)
    latent = optax.apply_updates(st.latent, updates)
    noises = tuple(normalize_noise(n) for n in st.noises)
    ok = st.alive & jnp.isfinite(loss) & jnp.all(jnp.isfinite(grad))
    latent, opt_state, noises = _select(ok, (latent, opt_state, noises), (st.latent, st.opt_state, st.noises))
    stopped_at = jnp.where(st.alive & ~ok, st.step, st.stopped_at)
    return State(latent, opt_state, noises, st.step + 1, ok, stopped_at), terms, img, grad


# --------------------------------------------------------------------------------------------------
# State and the compiled chunk
# --------------------------------------------------------------------------------------------------
def initial_latents(models: DDSModels, cfg: DDSConfig, key, n: int, inputs: Optional[Inputs] = None):
    """[n, D] (z, w) or [n, n_latent, D] (w+); [n, 2, n_latent, D] for a two-latent objective (blend:
    (w_in, w_out), the latents of the part's generator and of the outside generator).
    random: z ~ N(0, I) (mapped through G_s for w/w+); mean: 0 in Z, else the mean of G_s.style over
    ``n_mean_latent`` z's (released init), repeated; input: the W+ latent of each problem's target-role
    input (``inputs.w_t`` for s2t, ``w_s`` for t2s; averaged over layers in W), so x̂ starts as the input
    image it must keep outside the part (blend: each generator starts from its own input's latent)."""
    cfg = cfg.resolved()
    pair = cfg.objective.latent_pair
    if pair and cfg.latent_space != "w+":
        raise ValueError(f"mode {cfg.mode!r} optimises one W+ latent per generator: use latent_space 'w+'")
    g, v = models.gen_s, models.params["g_s"]
    d = models.config_s.style_dim
    if cfg.init == "input":
        if inputs is None or inputs.w_s is None or inputs.w_t is None:
            raise ValueError("init='input' needs the inputs' W+ latents (prepare_inputs, or w_s/w_t of "
                             "inputs_from_images)")
        if cfg.latent_space == "z":
            raise ValueError("init='input' starts from the inputs' W+ latents: use latent_space 'w' or 'w+'")
        flag = jnp.asarray(inputs.t2s)[:, None, None]
        w_s, w_t = jnp.asarray(inputs.w_s)[:n], jnp.asarray(inputs.w_t)[:n]
        outer = jnp.where(flag[:n], w_s, w_t)
        if pair:
            return jnp.stack([jnp.where(flag[:n], w_t, w_s), outer], axis=1)
        return outer if cfg.latent_space == "w+" else jnp.mean(outer, axis=1)
    if cfg.init == "random":
        z = jax.random.normal(key, (n, d))
        if cfg.latent_space == "z":
            return z
        w = g.apply(v, z, method=sg.Generator.style)
    else:
        if cfg.latent_space == "z":
            return jnp.zeros((n, d))
        w = jnp.broadcast_to(sg.mean_latent(g, v, key, cfg.n_mean_latent), (n, d))
    if cfg.latent_space == "w+":
        w = sg.to_wplus(w, models.config_s.n_latent)
        return jnp.stack([w, w], axis=1) if pair else w
    return w


def init_state(models: DDSModels, inputs: Inputs, cfg: DDSConfig, key, latent0=None, noises0=None,
               mesh: Optional[Mesh] = None) -> State:
    """Initial state for every problem of ``inputs`` (padding starts dead). latent0 / noises0 override
    the initial latents / the reference-mode noise inputs ([B, r, r, 1] per layer, fresh N(0,1) by
    default as the released ``make_noise().normal_()``)."""
    cfg = cfg.resolved()
    b = int(inputs.x_s.shape[0])
    k_lat, k_noise = jax.random.split(key)
    # fresh buffers (jnp.array copies): the state is donated to the chunk function
    latent = jnp.array(initial_latents(models, cfg, k_lat, b, inputs) if latent0 is None else latent0,
                       jnp.float32)
    if cfg.objective.fresh_noise:
        if noises0 is None:
            shapes = models.config_s.noise_shapes()
            keys = jax.random.split(k_noise, len(shapes))
            noises0 = [jax.random.normal(k, (b,) + s[1:]) for k, s in zip(keys, shapes)]
        noises = tuple(jnp.array(n, jnp.float32) for n in noises0)
    else:
        noises = ()
    state = State(latent, jax.vmap(optimizer(cfg).init)(latent), noises, jnp.zeros(b, jnp.int32),
                  jnp.array(inputs.valid, bool), jnp.full(b, -1, jnp.int32))
    return shard_seeds(state, mesh)


class RunChunk:
    """``run(state, inputs) -> (state, ChunkOutput)``: ``chunk`` iterations for every problem, one
    compiled call. ``jitted(params, state, inputs)`` is the underlying jax.jit function (``lower`` it
    for cost / memory analysis); the state argument is donated."""

    def __init__(self, jitted, params):
        self.jitted, self.params = jitted, params

    def __call__(self, state: State, inputs: Inputs):
        return self.jitted(self.params, state, inputs)

    def lower(self, state: State, inputs: Inputs):
        return self.jitted.lower(self.params, state, inputs)


def make_run_chunk(models: DDSModels, cfg: DDSConfig, chunk: int, snapshot_every: int = 0,
                   mesh: Optional[Mesh] = None, with_grads: bool = False) -> RunChunk:
    """The jitted, vmapped, scanned optimisation of ``chunk`` iterations (see module docstring).

    snapshot_every=k > 0 (must divide chunk): x̂ at the first iteration of each group of k (global
    iterations ≡ step0 mod k, before that iteration's update). with_grads: also return every gradient.
    mesh: shard the problem axis over it (inputs/state must have a multiple of mesh.size problems).
    The compiled function depends only on the architectures and options (:func:`program_config`), not
    on the network weights, the loss weights (``params["loss_weights"]``) or the iteration count: it is
    cached, so later batches of seeds, other models of the same shapes and other weightings reuse it.
    """
    cfg = cfg.resolved()
    k = int(snapshot_every or 0)
    if chunk < 1 or (k and chunk % k):
        raise ValueError(f"chunk ({chunk}) must be >= 1 and a multiple of snapshot_every ({k})")
    jitted = _chunk_fn(models.statics, program_config(cfg), int(chunk), k, mesh, bool(with_grads))
    params = dict(models.params, loss_weights=jnp.asarray(cfg.weights, jnp.float32))
    if mesh is not None:
        params = jax.device_put(params, NamedSharding(mesh, P()))
    return RunChunk(jitted, params)


def program_config(cfg: DDSConfig) -> DDSConfig:
    """``cfg`` resolved, with the fields no compiled program reads cleared: the key of the program caches.
    Runs that differ only in their iteration count (the chunk is its own argument) or in the loss
    weights α, β, γ, λ_p (an argument of the step: a sweep, Fig. 8) share one program."""
    return dataclasses.replace(cfg.resolved(), iterations=None, alpha=None, beta=None, gamma=None,
                               perceptual_weight=None)


@functools.lru_cache(maxsize=32)
def _chunk_fn(statics, cfg: DDSConfig, chunk: int, k: int, mesh: Optional[Mesh], with_grads: bool):
    config_s, config_t, backbone = statics
    models = DDSModels(config_s, config_t, backbone, {}, precision=cfg.precision, remat=cfg.resolved().remat)
    opt = optimizer(cfg)
    step = jax.vmap(functools.partial(_problem_step, models, cfg, opt), in_axes=(None, 0, 0, 0))
    targets = jax.vmap(functools.partial(make_targets, models, cfg), in_axes=(None, 0))
    size = config_s.size

    def run(params, state, inputs):
        tgt = targets(params, inputs)

        def one(carry, j):
            st, snap = carry
            st, terms, img, grad = step(params, st, inputs, tgt)
            if k:
                snap = jnp.where(j == 0, img, snap)
            return (st, snap), (terms, grad if with_grads else None)

        b = state.step.shape[0]
        if k:
            def group(st, _):
                blank = jnp.zeros((b, size, size, 3), jnp.float32)
                (st, snap), ys = lax.scan(one, (st, blank), jnp.arange(k))
                return st, (ys, snap)
            new, (ys, snaps) = lax.scan(group, state, None, length=chunk // k)
            ys = jax.tree_util.tree_map(lambda a: a.reshape((chunk,) + a.shape[2:]), ys)
            snap_steps = state.step[None] + k * jnp.arange(chunk // k, dtype=jnp.int32)[:, None]
        else:
            (new, _), ys = lax.scan(one, (state, None), jnp.arange(chunk))
            snaps = snap_steps = None
        terms, grads = ys
        return new, ChunkOutput(terms, snaps, snap_steps, grads)

    if mesh is None:
        return jax.jit(run, donate_argnums=(1,))
    rep, seeds = NamedSharding(mesh, P()), NamedSharding(mesh, P(SEEDS))
    return jax.jit(run, donate_argnums=(1,), in_shardings=(rep, seeds, seeds),
                   out_shardings=(seeds, NamedSharding(mesh, P(None, SEEDS))))


@functools.lru_cache(maxsize=None)
def _render_fn(statics, cfg: DDSConfig):
    config_s, config_t, backbone = statics
    models = DDSModels(config_s, config_t, backbone, {}, precision=cfg.precision, remat=cfg.resolved().remat)

    @jax.jit
    def render(params, state: State, inputs: Inputs):
        def one(latent, noises, inp):
            img_a, _, img_b, _ = role_images(models, cfg, params, latent, noises, inp)
            return {"result": img_b[0]} if img_a is img_b else {"result": img_b[0], "other": img_a[0]}
        return jax.vmap(one)(state.latent, state.noises, inputs)
    return render


def final_images(models: DDSModels, state: State, inputs: Inputs, cfg: DDSConfig) -> Dict[str, jnp.ndarray]:
    """x̂ of the current latents: ``result`` [B, H, W, 3] (paper: G_t(ẑ) for s2t, G_s(ẑ) for t2s;
    reference: G_s(ẑ, noise=noises), what DDS_main saves; outer / inner: the one generator's image; blend: the blended image)
    and, in paper mode, ``other`` = the
    source-role generator's image of the same ẑ."""
    return _render_fn(models.statics, program_config(cfg))(models.params, state, inputs)


def failed_problems(state: State, inputs: Inputs):
    """[(problem index, seed index, 't2s'|'s2t', iteration)] of the real problems stopped by a
    non-finite loss or gradient."""
    alive, valid = np.asarray(state.alive), np.asarray(inputs.valid)
    seed, t2s, at = np.asarray(inputs.seed), np.asarray(inputs.t2s), np.asarray(state.stopped_at)
    return [(int(i), int(seed[i]), "t2s" if t2s[i] else "s2t", int(at[i]))
            for i in np.flatnonzero(valid & ~alive)]


# --------------------------------------------------------------------------------------------------
# Convenience driver
# --------------------------------------------------------------------------------------------------
class RunResult(NamedTuple):
    state: State
    losses: Dict[str, np.ndarray]        # name -> [iterations, n]
    snapshots: Optional[np.ndarray]      # [n_snapshots, n, H, W, 3]
    images: Dict[str, np.ndarray]        # final_images, [n, H, W, 3]
    failed: list                         # failed_problems


def iterate_chunks(models: DDSModels, cfg: DDSConfig, state: State, inputs: Inputs, n: int, *, done: int = 0,
                   chunk: int = 50, snapshot_every: int = 0, mesh: Optional[Mesh] = None):
    """The one chunk driver (the pipeline and :func:`run_dds`): run iterations ``done`` .. ``cfg.iterations``
    in compiled chunks of ``chunk`` (a shorter last one); yields ``(iterations done, state, ChunkOutput
    of the n real problems on the host)``. Snapshots every ``snapshot_every`` iterations when it divides
    the chunk (none in a shorter last chunk). 0 iterations (``blend_forward``) yields nothing."""
    total = int(cfg.resolved().iterations)
    chunk = max(1, min(int(chunk), total))
    k = int(snapshot_every) if snapshot_every and chunk % snapshot_every == 0 else 0
    run = make_run_chunk(models, cfg, chunk, k, mesh) if done < total else None
    while done < total:
        if total - done < chunk:    # a shorter final chunk (one more compile)
            chunk = total - done
            run = make_run_chunk(models, cfg, chunk, 0, mesh)
        state, out = run(state, inputs)
        done += chunk
        yield done, state, jax.device_get(unpad(out, n, axis=1))


def run_dds(models: DDSModels, inputs: Inputs, cfg: DDSConfig, key, chunk: int = 50,
            snapshot_every: int = 0, mesh: Optional[Mesh] = None,
            callback: Optional[Callable[[int, State, ChunkOutput], None]] = None) -> RunResult:
    """Pad to the mesh, shard, optimise ``cfg.iterations`` iterations in chunks, un-pad."""
    cfg = cfg.resolved()
    multiple = 1 if mesh is None else mesh.size
    inputs, n = pad_seeds(inputs, multiple)
    inputs = shard_seeds(inputs, mesh)
    state = init_state(models, inputs, cfg, key, mesh=mesh)
    outs = []
    for done, state, out in iterate_chunks(models, cfg, state, inputs, n, chunk=chunk,
                                           snapshot_every=snapshot_every, mesh=mesh):
        if callback is not None:
            callback(done, state, out)
        outs.append(out)
    loss = {name: np.concatenate([o.losses[name] for o in outs]) for name in (outs[0].losses if outs else ())}
    snaps = [o.snapshots for o in outs if o.snapshots is not None]
    images = jax.device_get(unpad(final_images(models, state, inputs, cfg), n))
    return RunResult(unpad(state, n), loss, np.concatenate(snaps) if snaps else None, images,
                     failed_problems(state, inputs))
