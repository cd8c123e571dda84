"""DDS losses (paper Sec. 3.3, Eqs. 1-6) as pure jnp functions on NHWC arrays.

Every objective (:mod:`dds_jax.dds.objectives`) uses the same five terms; they differ in which image,
mask and generator each term uses (see :func:`roles`), in the weights (``DDSConfig.weights``) and in
whether a masked term is a mean over all pixels (the released code) or over its region. The two roles:

``paper``      Eqs. 1-6: two generators, ``L_s`` on G_s(ẑ) with y_s, ``L_t`` on G_t(ẑ) with 1 - y_t,
               ``L_c`` between s_c = G_s(ẑ)·y_s + G_t(ẑ)·(1 - y_t) and x_c; α L_s + β L_t + γ L_c.
``reference``  the first ('D1', direction ``t2s``) or second ('D2', ``s2t``) loop of the released
               ``DDS_main.py``: ONE generator (the source one) for every term; perceptual weight 2,
               pixel weight 1, crossover weight 3. D1 mixes the masks: its target-image terms use the
               SOURCE mask y_s, and only its crossover image uses y_t.

Every MSE is ``reduction='mean'`` over all elements (masked-out zeros included), as torch's
``nn.MSELoss()`` in the released code; the functions here work on one problem (batch axis of size 1) and
are vmapped over seeds by :mod:`dds_jax.dds.optimize`.
"""
import math
from typing import Dict, List, Sequence, Tuple

import jax.numpy as jnp

from dds_jax import ops

# Canonical per-term names ('s' = the terms against the source-role image, 't' = the target-role image).
TERMS = ("lp_s", "mse_s", "L_s", "lp_t", "mse_t", "L_t", "L_c", "loss")


def mse(a, b):
    """torch ``F.mse_loss(a, b)`` / ``nn.MSELoss()`` (mean over every element)."""
    return jnp.mean(jnp.square(a - b))


# --------------------------------------------------------------------------------------------------
# Masks (Eq. 1 and the λ_j of Eq. 3)
# --------------------------------------------------------------------------------------------------
def crossover(x_s, x_t, y_s, y_t, t2s):
    """Naive crossover image x_c of one problem.

    paper, s2t:  x_s·y_s + x_t·(1 - y_t)                        (Eq. 1)
    paper, t2s:  x_t·y_t + x_s·(1 - y_s)                        (Eq. 1 with the domains swapped)
    reference, s2t (D2, ``cross_over_target``): x_s·y_s + x_t·(1 - y_t)
    reference, t2s (D1, ``cross_over_source``): x_s·(1 - y_s) + x_t·y_t
    (paper t2s and reference D1 are the same image.) ``t2s`` may be a traced boolean.
    """
    s2t_img = x_s * y_s + x_t * (1.0 - y_t)
    t2s_img = x_t * y_t + x_s * (1.0 - y_s)
    return jnp.where(t2s, t2s_img, s2t_img)


def roles(x_s, x_t, y_s, y_t, mode: str, t2s):
    """(x_a, m_a, x_b, m_b): the image/mask of the source-role terms (a) and the target-role terms (b).

    paper s2t:        a = (x_s, y_s),     b = (x_t, 1 - y_t)   (Eq. 2)
    paper t2s:        a = (x_t, y_t),     b = (x_s, 1 - y_s)
    reference D2/s2t: a = (x_s, y_s),     b = (x_t, 1 - y_t)   (``mask_0``, ``targ_mask_1``)
    reference D1/t2s: a = (x_s, 1 - y_s), b = (x_t, y_s)       (``mask_1``, and ``mask_0`` = the SOURCE
                                                                mask for the target terms: released quirk)
    """
    if mode == "paper":
        x_a, m_a = jnp.where(t2s, x_t, x_s), jnp.where(t2s, y_t, y_s)
        x_b, m_b = jnp.where(t2s, x_s, x_t), 1.0 - jnp.where(t2s, y_s, y_t)
    elif mode == "reference":
        x_a, x_b = x_s, x_t
        m_a = jnp.where(t2s, 1.0 - y_s, y_s)
        m_b = jnp.where(t2s, y_s, 1.0 - y_t)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return x_a, m_a, x_b, m_b


def _integer_down_scale(cur_hw, hw):
    """1/k when (h, w) is torch's floor(cur·(1/k)) for one integer k (the released chain's 64/256 = 1/4,
    32/64 = 1/2), else None."""
    k = max(1, round(cur_hw[0] / hw[0]))
    s = 1.0 / k
    if all(math.floor(c * s) == n for c, n in zip(cur_hw, hw)):
        return s
    return None


def layer_masks(mask, sizes: Sequence[Tuple[int, int]]) -> List[jnp.ndarray]:
    """λ_j of Eq. 3: the mask resized to each feature map, exactly as the released ``caluclate_loss``.

    The released code resizes the ALREADY-resized mask from one layer to the next with
    ``nn.Upsample(scale_factor=1/k, mode='bilinear')`` (VGG: identity, identity, then 64/256 = 1/4, then
    32/64 = 1/2; no antialias; torch's source coordinates then step by k, not by in/out, which differs when
    the perceptual input is not a multiple of 32, e.g. floor(98·256/98) = 255 -> 63 -> 31).
    Generalisation: a layer of the current size reuses the mask; a smaller layer chains from the previous
    mask (1/k when the layer is floor(previous/k), torch's size rule otherwise, e.g. AlexNet's 224 -> 55);
    a LARGER layer (e.g. the generator's own features, 4 -> 256) restarts from the full mask with the size
    rule, so up-sampling never goes through a coarse intermediate.
    ``mask`` NHWC [N, H, W, 1]; sizes [(h, w)] -> list of [N, h, w, 1].
    """
    full = cur = mask
    out = []
    for h, w in sizes:
        ch, cw = cur.shape[1:3]
        if (h, w) != (ch, cw):
            if h <= ch and w <= cw:
                s = _integer_down_scale((ch, cw), (h, w))
                if s is not None:
                    cur = ops.resize_bilinear_torch(cur, scale_factor=s)
                else:
                    cur = ops.resize_bilinear_torch(cur, size=(h, w))
            else:
                cur = ops.resize_bilinear_torch(full, size=(h, w))
        out.append(cur)
    return out


def perceptual_resize(x, perceptual_size):
    """The released ``nn.Upsample(scale_factor=256/R, mode='bilinear')`` applied to images and masks
    before the backbone (R = the image height; identity at R = 256; output floor(R·256/R), which is 255
    for some R, e.g. 98); ``perceptual_size=None`` keeps the native resolution."""
    if perceptual_size is None or x.shape[1] == perceptual_size:
        return x
    return ops.resize_bilinear_torch(x, scale_factor=perceptual_size / x.shape[1])


# --------------------------------------------------------------------------------------------------
# Loss terms
# --------------------------------------------------------------------------------------------------
def masked_targets(feats, masks):
    """F_j(I_2)·λ_j for each layer (constant during the optimisation: computed once per chunk)."""
    return [f * m for f, m in zip(feats, masks)]


def region_mse(a, b, m, eps: float = 1e-6):
    """Σ m·(a - b)² / Σ m over the region (channels averaged): the error per pixel OF the region, so a
    small part (eyes+nose+mouth ~3 % of the image) weighs as much as a large one. ``b`` is already
    masked (b = x·m), as the targets are."""
    channels = a.shape[-1]
    return jnp.sum(jnp.square(a * m - b)) / (jnp.sum(m) * channels + eps)


def masked_perceptual(feats, targets, masks, region_mean: bool = False):
    """L_p of Eq. 3 as the released ``caluclate_loss``: Σ_j MSE(F_j(I_1)·λ_j, F_j(I_2)·λ_j), each MSE a
    mean over all elements of layer j (the 1/N_j); ``targets`` = :func:`masked_targets` of I_2.
    region_mean: each layer's error a mean over its mask instead (:func:`region_mse`)."""
    if region_mean:
        return sum(region_mse(f, t, m) for f, m, t in zip(feats, masks, targets))
    return sum(mse(f * m, t) for f, m, t in zip(feats, masks, targets))


def dds_terms(img_a, img_b, feats_a, feats_b, tgt, weights, crossover: str = "image",
              region_mean: bool = False) -> Dict[str, jnp.ndarray]:
    """All DDS terms of one problem.

    img_a / img_b: the synthesised images compared with the source-role / target-role inputs (paper:
    G_s(ẑ) / G_t(ẑ) for s2t; reference: both are the one generator's output); feats_*: their backbone
    features. ``tgt`` holds the constants of :func:`dds_jax.dds.optimize.make_targets`
    (m_a, m_b, pixel targets x·m, per-layer masks and masked features, x_c).
    weights = (α, β, γ, λ_p): loss = α(λ_p L_p,s + MSE_s) + β(λ_p L_p,t + MSE_t) + γ L_c.
    crossover: ``paper`` = s_c of Eq. 5, ``image`` = img_a itself (the released loop). region_mean: the
    masked terms are means over their region (``region_mse``), not over all pixels (torch's MSELoss).
    Returns the canonical :data:`TERMS` (L_s, L_t are the unweighted λ_p L_p + MSE sums).
    """
    alpha, beta, gamma, lam_p = weights
    lp_s = masked_perceptual(feats_a, tgt["feat_a"], tgt["masks_a"], region_mean)    # Eq. 3
    lp_t = masked_perceptual(feats_b, tgt["feat_b"], tgt["masks_b"], region_mean)
    if region_mean:
        mse_s = region_mse(img_a, tgt["pix_a"], tgt["m_a"])
        mse_t = region_mse(img_b, tgt["pix_b"], tgt["m_b"])
    else:
        mse_s = mse(img_a * tgt["m_a"], tgt["pix_a"])                         # Eq. 2, pixel part
        mse_t = mse(img_b * tgt["m_b"], tgt["pix_b"])
    if crossover == "paper":
        s_c = img_a * tgt["m_a"] + img_b * tgt["m_b"]                         # Eq. 5
    else:
        s_c = img_a                                                           # released: synth vs x_c
    l_c = mse(s_c, tgt["x_c"])                                                # Eq. 4
    l_s = lam_p * lp_s + mse_s                                                # Eq. 2
    l_t = lam_p * lp_t + mse_t
    loss = alpha * l_s + beta * l_t + gamma * l_c                             # Eq. 6
    return {"lp_s": lp_s, "mse_s": mse_s, "L_s": l_s, "lp_t": lp_t, "mse_t": mse_t, "L_t": l_t,
            "L_c": l_c, "loss": loss}


def released_names(terms: Dict, weights) -> Dict:
    """The canonical terms under the names the released ``DDS_main.py`` logs (reference mode):
    loss_wl1 (perceptual vs source), loss_wl0 (vs target), mse_w0, mse_w1, mse_crossover (× γ = 3),
    p_loss = λ_p (wl0 + wl1), mse_loss = mse_w0 + mse_w1, loss."""
    _, _, gamma, lam_p = weights
    return {"loss_wl1": terms["lp_s"], "loss_wl0": terms["lp_t"], "mse_w0": terms["mse_s"],
            "mse_w1": terms["mse_t"], "mse_crossover": gamma * terms["L_c"],
            "p_loss": lam_p * (terms["lp_s"] + terms["lp_t"]),
            "mse_loss": terms["mse_s"] + terms["mse_t"], "loss": terms["loss"]}
