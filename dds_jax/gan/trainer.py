"""StyleGAN2 training (rosinality ``train.py``) and few-shot adaptation (Ojha et al. 2021), as one pure,
jitted training step on a small state pytree.

One call of the step function is one iteration of the original loop:

1. D step: non-saturating logistic loss on real vs ``G(z)`` (style mixing with probability ``mixing``);
   every ``d_reg_every`` iterations a second D update with lazy R1 (``r1 / 2 * R1 * d_reg_every``).
2. G step: non-saturating loss (+ the cross-domain distance-consistency loss when adapting); every
   ``g_reg_every`` iterations a second G update with the path-length penalty
   (``path_regularize * g_reg_every * PL`` on a batch shrunk by ``path_batch_shrink``).
3. ``g_ema = decay * g_ema + (1 - decay) * g``.

Adam uses the lazy-regularisation correction of StyleGAN2: lr x c and betas (0 ** c, 0.99 ** c) with
c = reg_every / (reg_every + 1). Which regulariser runs, and (when adapting) whether this iteration
samples near the anchors with an image-level D loss or anywhere with a patch-level D loss
(``i % subspace_freq == 0``), follows from the step counter inside the jitted function (``lax.cond``),
so a resumed run is the same computation as an uninterrupted one. All randomness comes from
``fold_in(state.key, step)``.

Few-shot adaptation as released (few-shot-gan-adaptation ``train.py``): the generator and the frozen
source start from the same weights; ``n_anchors`` anchor z's are drawn once; CDC compares, for a batch
of ``feat_const_batch`` z's, each anchor's softmax-normalised cosine similarities to the others at a
random layer (index 1 .. num_layers-1) in source and target, KL x ``kl_weight``. One deliberate
difference: source and target see the same noise inputs in the CDC term (the original draws fresh
noise for each), so the loss compares the weights, not two noise draws.
"""
import dataclasses
import functools
import math
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from dds_jax.gan import augment as aug
from dds_jax.gan import losses
from dds_jax.models import discriminator as disc
from dds_jax.models import stylegan2 as sg


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; defaults are rosinality's ``train.py`` (from scratch)."""
    batch: int = 16
    lr: float = 0.002
    r1: float = 10.0
    path_regularize: float = 2.0
    path_batch_shrink: int = 2
    d_reg_every: int = 16
    g_reg_every: int = 4
    mixing: float = 0.9
    ema_decay: float = 0.5 ** (32 / (10 * 1000))    # rosinality's `accum`
    augment: str = ""                                # DiffAugment policy, e.g. "color,translation,cutout"
    flip: bool = True                                # random horizontal flips of the real images
    # Few-shot cross-domain adaptation (Ojha et al. 2021); adapt=False trains from scratch.
    adapt: bool = False
    kl_weight: float = 1000.0
    feat_const_batch: int = 4
    subspace_freq: int = 4
    subspace_std: float = 0.1
    n_anchors: int = 10
    cdc_temperature: float = 1.0     # softmax temperature of the CDC similarity distributions (1 = released)
    freeze_mapping: bool = False     # keep the mapping network at the source's weights
    freeze_res: int = 0              # keep the synthesis layers up to this resolution (const, convs) frozen
    # Spatial structure consistency (losses.structure_loss, RSSA-style; 0 = off, the released recipe):
    structure_weight: float = 0.0
    structure_res: int = 32          # layers up to this resolution (cost grows as (res^2)^2)
    structure_temperature: float = 0.1
    # Edge/line correspondence of the CDC latents (losses.edge_line_loss; 0 = off, the released recipe):
    # for a line-drawing target domain, the adapted image's lines lie on the source image's edges.
    edge_weight: float = 0.0
    edge_temperature: float = 0.1

    def __post_init__(self):
        aug.parse_policy(self.augment)
        if self.batch < 1 or self.d_reg_every < 1 or self.g_reg_every < 1 or self.subspace_freq < 1:
            raise ValueError("batch, d_reg_every, g_reg_every and subspace_freq must be >= 1")
        if self.cdc_temperature <= 0 or self.structure_temperature <= 0 or self.edge_temperature <= 0:
            raise ValueError("cdc_temperature, structure_temperature and edge_temperature must be > 0")
        if self.adapt and self.feat_const_batch < 2:
            raise ValueError("the CDC loss compares samples: feat_const_batch must be >= 2")

    @classmethod
    def few_shot(cls, **overrides) -> "TrainConfig":
        """few-shot-gan-adaptation's defaults (batch 4, kl_wt 1000, subspace_freq 4, std 0.1)."""
        base = dict(batch=4, adapt=True, kl_weight=1000.0, feat_const_batch=4, subspace_freq=4,
                    subspace_std=0.1, n_anchors=10)
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class TrainState(flax.struct.PyTreeNode):
    step: Any                 # int32 scalar: iterations done
    key: Any                  # base PRNG key; iteration i uses fold_in(key, i)
    g: Any                    # generator params
    d: Any                    # discriminator params (with the patch head when adapting)
    g_ema: Any
    g_opt: Any
    d_opt: Any
    mean_path_length: Any     # running mean of the path lengths
    anchors: Any              # [n_anchors, style_dim] anchor z's (adaptation) or [1, style_dim] unused


def lazy_adam(lr: float, reg_every: int) -> optax.GradientTransformation:
    """Adam with StyleGAN2's lazy-regularisation correction (betas (0, 0.99) before correction)."""
    c = reg_every / (reg_every + 1)
    return optax.adam(lr * c, b1=0.0 ** c, b2=0.99 ** c, eps=1e-8)


def frozen_g_param(path, cfg: TrainConfig) -> bool:
    """Whether the generator parameter at ``path`` (a tuple of names) stays at its initial weights:
    the mapping network with ``freeze_mapping``; the constant input and the styled convolutions of the
    synthesis up to ``freeze_res`` (``conv1`` at 4, ``convs_{2l}`` / ``convs_{2l+1}`` at 2 ** (l + 3)).
    The ToRGB layers always train (they only map features to colours)."""
    names = [str(getattr(k, "key", getattr(k, "name", k))) for k in path]
    if not names:
        return False
    if names[0] == "mapping":
        return cfg.freeze_mapping
    if names[0] != "synthesis" or len(names) < 2 or cfg.freeze_res < 4:
        return False
    layer = names[1]
    if layer in ("const", "conv1"):
        return True
    if layer.startswith("convs_"):
        return 2 ** (int(layer.split("_")[1]) // 2 + 3) <= cfg.freeze_res
    return False


def g_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """The generator's lazy Adam; the frozen parameters (``frozen_g_param``) get no update."""
    tx = lazy_adam(cfg.lr, cfg.g_reg_every)
    if not (cfg.freeze_mapping or cfg.freeze_res >= 4):
        return tx

    def labels(params):
        return jax.tree_util.tree_map_with_path(
            lambda path, _: "frozen" if frozen_g_param(path, cfg) else "train", params)
    return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)


@dataclasses.dataclass(frozen=True)
class Models:
    g_config: sg.GeneratorConfig
    d_config: disc.DiscriminatorConfig

    @property
    def generator(self) -> sg.Generator:
        return sg.Generator(self.g_config)

    @property
    def discriminator(self) -> disc.Discriminator:
        return disc.Discriminator(self.d_config)


def init_state(models: Models, cfg: TrainConfig, key, g_params=None, d_params=None) -> TrainState:
    """A fresh state. ``g_params`` / ``d_params`` start from given weights (adaptation starts from the
    source's); otherwise rosinality's random init. When adapting, the D gets a patch head if it has none."""
    k_g, k_d, k_head, k_anchor, k_train = jax.random.split(key, 5)
    if g_params is None:
        g_params = sg.init_variables(models.g_config, k_g)["params"]
    if d_params is None:
        d_params = disc.init_params(models.d_config, k_d)
    elif cfg.adapt:
        d_params = disc.with_patch_head(models.d_config, d_params, k_head)
    g_params = jax.tree_util.tree_map(jnp.asarray, g_params)
    d_params = jax.tree_util.tree_map(jnp.asarray, d_params)
    n_anchors = cfg.n_anchors if cfg.adapt else 1
    anchors = jax.random.normal(k_anchor, (n_anchors, models.g_config.style_dim))
    g_tx, d_tx = g_optimizer(cfg), lazy_adam(cfg.lr, cfg.d_reg_every)
    state = TrainState(step=jnp.zeros((), jnp.int32), key=k_train, g=g_params, d=d_params,
                       g_ema=g_params, g_opt=g_tx.init(g_params), d_opt=d_tx.init(d_params),
                       mean_path_length=jnp.zeros((), jnp.float32), anchors=anchors)
    # Fresh, strongly typed buffers: weak-typed init constants would change type after one step (a
    # recompilation), and shared leaves (g / g_ema) cannot both be donated.
    return jax.tree_util.tree_map(lambda x: jnp.asarray(np.array(x)), state)


# --------------------------------------------------------------------------------------------------
# Latent sampling
# --------------------------------------------------------------------------------------------------
def mixed_wplus(generator: sg.Generator, variables, key, batch: int, mixing: float):
    """rosinality ``mixing_noise``: with probability ``mixing`` two z's mixed at one random
    ``inject_index`` in [1, n_latent - 1] for the batch, else one z. Returns W+ [N, n_latent, D]."""
    cfg = generator.config
    k1, k2, k_mix, k_idx = jax.random.split(key, 4)
    w1 = generator.apply(variables, jax.random.normal(k1, (batch, cfg.style_dim)), method=sg.Generator.style)
    w2 = generator.apply(variables, jax.random.normal(k2, (batch, cfg.style_dim)), method=sg.Generator.style)
    mix = jax.random.uniform(k_mix) < mixing
    inject = jax.random.randint(k_idx, (), 1, cfg.n_latent)
    second = mix & (jnp.arange(cfg.n_latent) >= inject)                          # [L]
    return jnp.where(second[None, :, None], w2[:, None, :], w1[:, None, :])


def anchor_wplus(generator: sg.Generator, variables, key, batch: int, anchors, std: float):
    """Few-shot ``get_subspace``: a random anchor z per sample plus N(0, std^2) noise, one w for all layers."""
    k_pick, k_noise = jax.random.split(key)
    z = anchors[jax.random.randint(k_pick, (batch,), 0, anchors.shape[0])]
    z = z + std * jax.random.normal(k_noise, z.shape)
    w = generator.apply(variables, z, method=sg.Generator.style)
    return sg.to_wplus(w, generator.config.n_latent)


# --------------------------------------------------------------------------------------------------
# The step
# --------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def make_train_step(models: Models, cfg: TrainConfig):
    """The jitted ``(state, real, g_buffers, source_variables) -> (state, metrics)``.

    ``real``: [batch, H, W, 3] in [-1, 1]. ``g_buffers``: the generator's noise buffers (only their
    structure matters: training draws fresh noise). ``source_variables``: the frozen source generator's
    variables for the CDC term (``None`` when training from scratch). The state is donated."""
    G, D = models.generator, models.discriminator
    policy = aug.parse_policy(cfg.augment)
    g_tx, d_tx = g_optimizer(cfg), lazy_adam(cfg.lr, cfg.d_reg_every)
    n_latent = models.g_config.n_latent

    def augment(x, key):
        return aug.diff_augment(x, key, policy) if policy else x

    def d_logits(d, x, patch):
        """Image-level logits, or patch-level ones (traced flag, adaptation only)."""
        if not cfg.adapt:
            return D.apply({"params": d}, x)
        return lax.cond(patch, lambda: D.apply({"params": d}, x, patch=True).mean(axis=(1, 2)),
                        lambda: D.apply({"params": d}, x))

    def d_adv(d, real, fake, patch):
        """Logistic loss; with patches every patch logit counts (mean over all of them)."""
        if not cfg.adapt:
            r, f = D.apply({"params": d}, real), D.apply({"params": d}, fake)
            return losses.d_logistic_loss(r, f), (r.mean(), f.mean())

        def level(use_patch):
            def run():
                r = D.apply({"params": d}, real, patch=use_patch)
                f = D.apply({"params": d}, fake, patch=use_patch)
                return losses.d_logistic_loss(r, f), (r.mean(), f.mean())
            return run
        return lax.cond(patch, level(True), level(False))

    def g_adv(d, fake, patch):
        if not cfg.adapt:
            return losses.g_nonsaturating_loss(D.apply({"params": d}, fake))
        return lax.cond(patch,
                        lambda: losses.g_nonsaturating_loss(D.apply({"params": d}, fake, patch=True)),
                        lambda: losses.g_nonsaturating_loss(D.apply({"params": d}, fake)))

    def sample_wplus(g, buffers, key, batch, anchors, anchor):
        variables = {"params": g, "buffers": buffers}
        mixed = mixed_wplus(G, variables, key, batch, cfg.mixing)
        if not cfg.adapt:
            return mixed
        near = anchor_wplus(G, variables, jax.random.fold_in(key, 1), batch, anchors, cfg.subspace_std)
        return jnp.where(anchor, near, mixed)

    def synthesize(g, buffers, wplus, key):
        return G.apply({"params": g, "buffers": buffers}, wplus, input_is_latent=True,
                       randomize_noise=True, rngs={"noise": key})

    def step(state: TrainState, real, buffers, source):
        i = state.step
        keys = iter(jax.random.split(jax.random.fold_in(state.key, i), 16))
        anchor = (i % cfg.subspace_freq == 0) if cfg.adapt else jnp.array(True)
        patch = jnp.logical_not(anchor)
        if cfg.flip:
            flip = jax.random.bernoulli(next(keys), 0.5, (real.shape[0], 1, 1, 1))
            real = jnp.where(flip, real[:, :, ::-1], real)

        # ---- 1. discriminator --------------------------------------------------------------------
        wplus = sample_wplus(state.g, buffers, next(keys), cfg.batch, state.anchors, anchor)
        fake, _ = synthesize(state.g, buffers, wplus, next(keys))
        fake = lax.stop_gradient(fake)
        k_ar, k_af = next(keys), next(keys)

        def d_loss_fn(d):
            return d_adv(d, augment(real, k_ar), augment(fake, k_af), patch)
        (d_loss, (real_score, fake_score)), grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.d)
        upd, d_opt = d_tx.update(grads, state.d_opt, state.d)
        d = optax.apply_updates(state.d, upd)

        k_r1 = next(keys)

        def r1_update(operand):
            d, d_opt = operand
            real_aug = augment(real, k_r1)

            def r1_fn(p):
                pen = losses.r1_penalty(lambda q, x: d_logits(q, x, patch), p, real_aug)
                return cfg.r1 / 2 * pen * cfg.d_reg_every, pen
            (_, pen), g_r1 = jax.value_and_grad(r1_fn, has_aux=True)(d)
            u, d_opt = d_tx.update(g_r1, d_opt, d)
            return optax.apply_updates(d, u), d_opt, pen

        d, d_opt, r1 = lax.cond(i % cfg.d_reg_every == 0, r1_update,
                                lambda op: (op[0], op[1], jnp.zeros((), jnp.float32)), (d, d_opt))

        # ---- 2. generator ------------------------------------------------------------------------
        k_w, k_n, k_a = next(keys), next(keys), next(keys)
        k_cz, k_cl, k_cn = next(keys), next(keys), next(keys)

        def g_loss_fn(g):
            wplus = sample_wplus(g, buffers, k_w, cfg.batch, state.anchors, anchor)
            fake, _ = synthesize(g, buffers, wplus, k_n)
            adv = g_adv(d, augment(fake, k_a), patch)
            if not cfg.adapt:
                return adv, (adv, jnp.zeros(()), jnp.zeros(()), jnp.zeros(()))
            z = jax.random.normal(k_cz, (cfg.feat_const_batch, models.g_config.style_dim))
            layer = jax.random.randint(k_cl, (cfg.feat_const_batch,), 1, n_latent - 1)
            wz = G.apply({"params": g, "buffers": buffers}, z, method=sg.Generator.style)
            x_tgt, f_tgt = synthesize(g, buffers, sg.to_wplus(wz, n_latent), k_cn)
            ws = G.apply(source, z, method=sg.Generator.style)
            x_src, f_src = synthesize(source["params"], buffers, sg.to_wplus(ws, n_latent), k_cn)
            cdc = losses.cdc_loss(f_src, f_tgt, layer, cfg.kl_weight, cfg.cdc_temperature)
            structure = (losses.structure_loss(f_src, f_tgt, cfg.structure_res, cfg.structure_weight,
                                               cfg.structure_temperature)
                         if cfg.structure_weight else jnp.zeros(()))
            edge = (losses.edge_line_loss(x_src, x_tgt, cfg.edge_weight, cfg.edge_temperature)
                    if cfg.edge_weight else jnp.zeros(()))
            return adv + cdc + structure + edge, (adv, cdc, structure, edge)
        (g_loss, (g_adv_value, cdc, structure, edge)), grads = jax.value_and_grad(g_loss_fn, has_aux=True)(
            state.g)
        upd, g_opt = g_tx.update(grads, state.g_opt, state.g)
        g = optax.apply_updates(state.g, upd)

        k_pw, k_pn, k_py = next(keys), next(keys), next(keys)
        pl_batch = max(1, cfg.batch // cfg.path_batch_shrink)

        def path_update(operand):
            g, g_opt, mpl = operand
            wplus = mixed_wplus(G, {"params": g, "buffers": buffers}, k_pw, pl_batch, cfg.mixing)

            def pl_fn(p):
                pen, new_mean, length = losses.path_length_penalty(
                    lambda w: synthesize(p, buffers, w, k_pn)[0], wplus, k_py, mpl)
                return cfg.path_regularize * cfg.g_reg_every * pen, (pen, new_mean, length)
            (_, (pen, new_mean, length)), g_pl = jax.value_and_grad(pl_fn, has_aux=True)(g)
            u, g_opt = g_tx.update(g_pl, g_opt, g)
            return optax.apply_updates(g, u), g_opt, new_mean, pen, length

        def no_path(operand):
            g, g_opt, mpl = operand
            return g, g_opt, mpl, jnp.zeros(()), jnp.zeros(())

        g, g_opt, mpl, path, path_length = lax.cond(i % cfg.g_reg_every == 0, path_update, no_path,
                                                    (g, g_opt, state.mean_path_length))

        # ---- 3. EMA --------------------------------------------------------------------------------
        g_ema = jax.tree_util.tree_map(lambda e, p: cfg.ema_decay * e + (1 - cfg.ema_decay) * p,
                                       state.g_ema, g)
        new_state = state.replace(step=i + 1, g=g, d=d, g_ema=g_ema, g_opt=g_opt, d_opt=d_opt,
                                  mean_path_length=mpl)
        metrics = {"d": d_loss, "g": g_loss, "real_score": real_score, "fake_score": fake_score,
                   "r1": r1, "path": path, "path_length": path_length, "mean_path_length": mpl}
        if cfg.adapt:
            metrics.update(cdc=cdc, anchor=anchor.astype(jnp.float32))
            if cfg.structure_weight:
                metrics.update(structure=structure)
            if cfg.edge_weight:
                metrics.update(edge=edge)
        return new_state, metrics

    return jax.jit(step, donate_argnums=(0,))


@functools.lru_cache(maxsize=8)
def make_sampler(g_config: sg.GeneratorConfig):
    """Jitted ``(variables, z) -> images`` with the generator's fixed noise buffers (sample grids)."""
    G = sg.Generator(g_config)
    return jax.jit(lambda variables, z: G.apply(variables, z)[0])


def check_finite(metrics: dict, step: int) -> None:
    bad = {k: float(v) for k, v in metrics.items() if not math.isfinite(float(v))}
    if bad:
        raise FloatingPointError(f"training diverged at iteration {step}: non-finite {bad}; lower --lr or "
                                 "raise --r1, and resume from the last checkpoint")


def default_d_config(g_config: sg.GeneratorConfig) -> disc.DiscriminatorConfig:
    """A discriminator mirroring the generator's channel table (rosinality uses the same table for both)."""
    return disc.DiscriminatorConfig(size=g_config.size, channels=g_config.channels,
                                    blur_kernel=g_config.blur_kernel)

