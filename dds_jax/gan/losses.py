"""The StyleGAN2 training losses (rosinality ``train.py``) and the cross-domain distance-consistency loss
of few-shot adaptation (Ojha et al. 2021, ``few-shot-gan-adaptation/train.py``). Pure jnp functions."""
import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dds_jax.models.discriminator import r1_penalty  # noqa: F401  (one R1, shared with the D parity test)


def d_logistic_loss(real_logits, fake_logits):
    """Non-saturating logistic D loss: softplus(-D(x)) + softplus(D(G(z))), each averaged (any shape)."""
    return jax.nn.softplus(-real_logits).mean() + jax.nn.softplus(fake_logits).mean()


def g_nonsaturating_loss(fake_logits):
    """Non-saturating G loss: softplus(-D(G(z))), averaged."""
    return jax.nn.softplus(-fake_logits).mean()


def path_lengths(synthesis: Callable, wplus, key):
    """|J_w^T y| per sample (Karras et al. 2020): y ~ N(0, I)/sqrt(H*W) over the image, the gradient of
    sum(G(w) * y) w.r.t. the W+ latents [N, L, D], its squared norm summed over D, averaged over the L
    layers, square-rooted. ``synthesis(wplus) -> images NHWC``. Returns (lengths [N], images)."""
    images, vjp = jax.vjp(synthesis, wplus)
    h, w = images.shape[1], images.shape[2]
    y = jax.random.normal(key, images.shape, images.dtype) / math.sqrt(h * w)
    (grad,) = vjp(y)
    return jnp.sqrt(jnp.mean(jnp.sum(grad ** 2, axis=2), axis=1)), images


def path_length_penalty(synthesis: Callable, wplus, key, mean_path_length, decay: float = 0.01):
    """rosinality ``g_path_regularize``: (lengths - a)^2 averaged, a = running mean updated with ``decay``
    (the updated mean takes part in the penalty's graph, as in the original). Returns
    (penalty, new running mean (no gradient), mean length)."""
    lengths, _ = path_lengths(synthesis, wplus, key)
    path_mean = mean_path_length + decay * (lengths.mean() - mean_path_length)
    penalty = jnp.mean((lengths - path_mean) ** 2)
    return penalty, jax.lax.stop_gradient(path_mean), jax.lax.stop_gradient(lengths.mean())


# --------------------------------------------------------------------------------------------------
# Cross-domain distance consistency (Ojha et al. 2021, Eq. 2-3)
# --------------------------------------------------------------------------------------------------
def _off_diagonal_index(n: int) -> np.ndarray:
    """[n, n-1] column indices j != i of each row i, in increasing order (the released loops' order)."""
    return np.array([[j for j in range(n) if j != i] for i in range(n)], np.int32)


def cosine_similarity_matrix(features, eps: float = 1e-8):
    """[N, ...] -> [N, N] cosine similarities of the flattened features (``nn.CosineSimilarity``)."""
    f = features.reshape(features.shape[0], -1)
    dots = f @ f.T
    norms = jnp.sqrt(jnp.sum(f * f, axis=1))
    return dots / jnp.maximum(norms[:, None] * norms[None, :], eps)


def similarity_distributions(features, eps: float = 1e-8, temperature: float = 1.0):
    """Per anchor i: softmax over j != i of cos(f_i, f_j) / temperature. [N, ...] -> [N, N-1]."""
    n = features.shape[0]
    sims = cosine_similarity_matrix(features, eps)
    off = sims[np.arange(n)[:, None], _off_diagonal_index(n)]
    return jax.nn.softmax(off / temperature, axis=1)


def cdc_loss(source_features: Sequence, target_features: Sequence, layer_index, weight: float = 1000.0,
             temperature: float = 1.0):
    """Cross-domain distance-consistency loss.

    ``source_features`` / ``target_features``: per generator layer, [N, h, w, C] features of the same N
    latents in the frozen source and the adapted generator. Anchor i compares its features with the
    other N-1 samples' at layer ``layer_index[i]`` (random per anchor in the original). The loss is
    ``weight * KLDivLoss(log p_target, p_source)`` with PyTorch's default 'mean' reduction, i.e. the
    mean over the N x (N-1) entries of p_s * (log p_s - log p_t).

    ``temperature`` divides the cosines before the softmax (1 = the released loss). Cosines of
    generator features lie in a narrow band (all near 1 when the features are mostly positive), so at
    temperature 1 both distributions are close to uniform whatever the generator does and the loss
    barely reacts to a collapse; a small temperature (e.g. 0.05) spreads them.
    """
    layer_index = jnp.asarray(layer_index)
    n = layer_index.shape[0]
    p_src = jnp.stack([similarity_distributions(f, temperature=temperature)
                       for f in source_features])                                # [L, N, N-1]
    p_tgt = jnp.stack([similarity_distributions(f, temperature=temperature) for f in target_features])
    rows = jnp.arange(n)
    p_src = jax.lax.stop_gradient(p_src[layer_index, rows])                      # [N, N-1]
    p_tgt = p_tgt[layer_index, rows]
    kl = jnp.where(p_src > 0, p_src * (jnp.log(p_src) - jnp.log(p_tgt)), 0.0)
    return weight * kl.mean()


# --------------------------------------------------------------------------------------------------
# Spatial structure consistency (self-correlation; RSSA, Xiao et al. CVPR 2022)
# --------------------------------------------------------------------------------------------------
def self_correlation_log_probs(features, temperature: float, eps: float = 1e-8):
    """[N, h, w, C] -> [N, hw, hw]: per position p, log-softmax over positions q of cos(f_p, f_q) /
    temperature (cosines of the channel vectors; where in the image each position's features recur)."""
    n, h, w, c = features.shape
    f = features.reshape(n, h * w, c)
    f = f / jnp.maximum(jnp.linalg.norm(f, axis=-1, keepdims=True), eps)
    return jax.nn.log_softmax(jnp.einsum("npc,nqc->npq", f, f) / temperature, axis=-1)


def structure_loss(source_features: Sequence, target_features: Sequence, max_res: int, weight: float,
                   temperature: float = 0.1):
    """Cross-domain spatial structure consistency: for every layer of resolution <= ``max_res``, the KL of
    the adapted generator's self-correlation distributions from the source's, mean over samples and
    positions, summed over layers, x ``weight``. CDC keeps how *samples* relate to each other; this keeps
    where each sample's parts are (the photo/sketch correspondence DDS relies on). Layers the adaptation
    keeps frozen contribute zero."""
    total = jnp.zeros((), jnp.float32)
    for f_s, f_t in zip(source_features, target_features):
        if f_s.shape[1] > max_res:
            continue
        log_p_s = jax.lax.stop_gradient(self_correlation_log_probs(f_s, temperature))
        log_p_t = self_correlation_log_probs(f_t, temperature)
        kl = jnp.sum(jnp.exp(log_p_s) * (log_p_s - log_p_t), axis=-1)     # log-softmax: finite, no clamps
        total = total + kl.mean()
    return weight * total


# --------------------------------------------------------------------------------------------------
# Edge/line correspondence across domains (photo -> line drawing)
# --------------------------------------------------------------------------------------------------
def edge_line_loss(source_images, target_images, weight: float, temperature: float = 0.1):
    """Contrastive edge/line correspondence of the same N latents in the source (photo) and the adapted
    (line drawing) generator: C_ij = Pearson(edges of source i, line darkness 1 - grey of target j), and
    the cross-entropy of softmax_j(C_ij / temperature) with its own j = i, over rows and columns, x
    ``weight``. A line drawing's lines lie on the photo's edges; the contrast (not only C_ii) penalises
    what every drawing shares whatever the latent (the few-shot set's common strokes), which is what
    makes one drawing fit every photo. Images NHWC in [-1, 1]; the source side carries no gradient."""
    from dds_jax.demo import metrics

    def grey(x):
        return jnp.clip((x[..., :3].mean(axis=-1) + 1.0) / 2.0, 0.0, 1.0)
    edges = metrics.standardise(metrics.grey_edges(grey(jax.lax.stop_gradient(source_images)), jnp), jnp)
    lines = metrics.standardise(1.0 - grey(target_images), jnp)
    logits = edges @ lines.T / temperature
    own = jnp.arange(logits.shape[0])
    nll_rows = -jax.nn.log_softmax(logits, axis=1)[own, own]
    nll_cols = -jax.nn.log_softmax(logits, axis=0)[own, own]
    return weight * 0.5 * (nll_rows.mean() + nll_cols.mean())
