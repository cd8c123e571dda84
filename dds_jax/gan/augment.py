"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for data-efficient GAN training, NHWC in
[-1, 1]. The same policy is applied to real and fake images before the discriminator, with independent
randomness; every op is differentiable w.r.t. the images so the generator trains through it."""
import jax
import jax.numpy as jnp

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str):
    names = [p.strip() for p in (policy or "").split(",") if p.strip()]
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown}; choose from {', '.join(POLICIES)}")
    return tuple(names)


def _color(x, key):
    kb, ks, kc = jax.random.split(key, 3)
    n = x.shape[0]
    x = x + (jax.random.uniform(kb, (n, 1, 1, 1), x.dtype) - 0.5)                      # brightness
    mean = x.mean(axis=3, keepdims=True)
    x = (x - mean) * (jax.random.uniform(ks, (n, 1, 1, 1), x.dtype) * 2) + mean         # saturation
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) * (jax.random.uniform(kc, (n, 1, 1, 1), x.dtype) + 0.5) + mean    # contrast


def _translation(x, key, ratio: float = 0.125):
    """Shift each image by up to ``ratio`` of its size, filling with zeros."""
    n, h, w, _ = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    kh, kw = jax.random.split(key)
    dy = jax.random.randint(kh, (n,), -sh, sh + 1)
    dx = jax.random.randint(kw, (n,), -sw, sw + 1)
    padded = jnp.pad(x, ((0, 0), (sh, sh), (sw, sw), (0, 0)))

    def shift(img, oy, ox):
        return jax.lax.dynamic_slice(img, (sh - oy, sw - ox, 0), (h, w, img.shape[-1]))
    return jax.vmap(shift)(padded, dy, dx)


def _cutout(x, key, ratio: float = 0.5):
    """Zero a random square of ``ratio`` of the size in each image."""
    n, h, w, _ = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ky, kx = jax.random.split(key)
    cy = jax.random.randint(ky, (n, 1, 1), 0, h + (1 - ch % 2))
    cx = jax.random.randint(kx, (n, 1, 1), 0, w + (1 - cw % 2))
    yy = jnp.arange(h)[None, :, None]
    xx = jnp.arange(w)[None, None, :]
    inside = ((yy >= cy - ch // 2) & (yy < cy - ch // 2 + ch) &
              (xx >= cx - cw // 2) & (xx < cx - cw // 2 + cw))
    return x * (~inside)[..., None].astype(x.dtype)


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x, key, policy):
    """Apply the ops named in ``policy`` (a tuple from :func:`parse_policy`, static) in order."""
    for name, k in zip(policy, jax.random.split(key, max(1, len(policy)))):
        x = _OPS[name](x, k)
    return x
