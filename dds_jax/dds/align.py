"""Align an unpaired source image to the target before its part is moved across (hairstyle transfer,
paper Fig. 11; the alignment face-swap and Barbershop-style pipelines start from).

With two different faces the source's part sits where the SOURCE face is, and cut-and-paste, or any
objective asking for x_s inside y_s, leaves it there. It belongs at the target's pose. The segmentation
already outlines both objects: the similarity (shift, scale, rotation) that carries the source's
foreground (every class but the background) onto the target's, by their first and second moments
(centroid; scale from the covariance determinants; rotation from the major axes), carries the source
image and its part mask into the target's frame.

Measured on the benchmark's unpaired track with the renderer's true labels (64x64, faces 1000-1015,
hair, cut-and-paste against the truth): part IoU 0.35 unaligned, 0.56 with the shift alone, 0.65
with this similarity (0.86 with the renderer's own pose, which no image shows). Landmarks from the
centroids of the other parts did worse (0.43-0.50): each face has its own eye, nose and mouth
positions, while the part follows the head.

Pure NumPy, per image; the warped source is then inverted like any input.
"""
from typing import Tuple

import numpy as np

MIN_PIXELS = 16      # a foreground smaller than this gives no frame: the identity


def moments(mask) -> Tuple[np.ndarray, np.ndarray]:
    """Centroid (y, x) [2] and covariance [2, 2] of a boolean mask [H, W] (pixel coordinates)."""
    m = np.asarray(mask, np.float64)
    h, w = m.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    total = max(m.sum(), 1.0)
    c = np.array([(m * yy).sum(), (m * xx).sum()]) / total
    dy, dx = yy - c[0], xx - c[1]
    cov = np.array([[(m * dy * dy).sum(), (m * dy * dx).sum()],
                    [(m * dy * dx).sum(), (m * dx * dx).sum()]]) / total
    return c, cov


def _major_angle(cov) -> float:
    """Angle of the covariance's major axis from the y axis towards x, in (-pi/2, pi/2]."""
    _, vecs = np.linalg.eigh(cov)
    v = vecs[:, 1]
    if v[0] < 0:
        v = -v
    return float(np.arctan2(v[1], v[0]))


def similarity(source_fg, target_fg) -> Tuple[np.ndarray, np.ndarray]:
    """(A, t) with target ≈ A·source + t in (y, x) pixel coordinates, A = s·R, from two foreground masks
    [H, W]; the identity when either is (nearly) empty or degenerate."""
    if np.sum(source_fg) < MIN_PIXELS or np.sum(target_fg) < MIN_PIXELS:
        return np.eye(2), np.zeros(2)
    cs, covs = moments(source_fg)
    ct, covt = moments(target_fg)
    ds, dt = np.linalg.det(covs), np.linalg.det(covt)
    if ds <= 1e-9 or dt <= 1e-9:
        return np.eye(2), ct - cs
    scale = (dt / ds) ** 0.25
    theta = _major_angle(covs) - _major_angle(covt)
    if abs(theta) > np.pi / 2:                 # the axis has no sign: take the smaller turn
        theta -= np.sign(theta) * np.pi
    c, s = np.cos(theta), np.sin(theta)
    mat = scale * np.array([[c, s], [-s, c]])
    return mat, ct - mat @ cs


def warp(image, mat, shift, order: int = 1) -> np.ndarray:
    """``image`` [H, W, C] moved by p' = mat·p + shift (pixel (y, x) coordinates): every output pixel
    samples the input at mat⁻¹(p' - shift), bilinearly (``order`` 1) or nearest (0), edges clamped."""
    image = np.asarray(image)
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out_pts = np.stack([yy.ravel(), xx.ravel()]) - np.asarray(shift, np.float64)[:, None]
    sy, sx = np.linalg.solve(np.asarray(mat, np.float64), out_pts)
    sy, sx = np.clip(sy, 0, h - 1), np.clip(sx, 0, w - 1)
    if order == 0:
        res = image[np.rint(sy).astype(int), np.rint(sx).astype(int)]
    else:
        y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
        y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
        fy, fx = (sy - y0)[:, None], (sx - x0)[:, None]
        img = image.astype(np.float64).reshape(h, w, -1)
        res = ((1 - fy) * (1 - fx) * img[y0, x0] + (1 - fy) * fx * img[y0, x1] +
               fy * (1 - fx) * img[y1, x0] + fy * fx * img[y1, x1])
        if np.issubdtype(image.dtype, np.integer):
            res = np.clip(np.rint(res), np.iinfo(image.dtype).min, np.iinfo(image.dtype).max)
        res = res.astype(image.dtype)
    return res.reshape(image.shape)


def align_to_target(source_images, source_labels, target_labels):
    """Each source image [N, H, W, C] and its label map [N, H, W] (0 = background) warped into its
    target's frame (the similarity of the two foregrounds). Returns (images, labels, [(A, t)] per image)."""
    transforms = [similarity(np.asarray(ls) > 0, np.asarray(lt) > 0) for ls, lt in zip(source_labels, target_labels)]
    return warp_images(source_images, transforms), warp_masks(source_labels, transforms), transforms


def warp_images(images, transforms, order: int = 1) -> np.ndarray:
    """Images [N, H, W, C] each carried by its transform [(A, t)] (:func:`warp`)."""
    return np.stack([warp(img, *tr, order=order) for img, tr in zip(images, transforms)])


def warp_masks(masks, transforms) -> np.ndarray:
    """Masks [N, H, W] or [N, H, W, 1] carried by per-image transforms [(A, t)] (nearest sample; the
    dtype and shape kept)."""
    masks = np.asarray(masks)
    flat = masks[..., 0] if masks.ndim == 4 else masks
    out = warp_images(flat[..., None], transforms, order=0)[..., 0]
    return out[..., None] if masks.ndim == 4 else out


def align_inversions(inv: dict, source_images, gen_s, foreground_fn, steps: int, lr: float,
                     cache=None, key=None, **invert_kw) -> tuple:
    """Unpaired problems' sources aligned to their targets and inverted again into G_s.

    ``inv``: :func:`dds_jax.dds.invert.invert_pair`'s result for (source_images, targets);
    ``foreground_fn(images, features)`` the segmenter's foreground ([N, H, W, 1], every class but the
    background) of the two inversions gives each pair's :func:`similarity`; the source IMAGES (uint8
    [N, H, W, 3]) are warped and inverted again (cached in ``cache`` under ``key`` plus the warped images'
    digest). Returns (``inv`` with its source side replaced, the transforms [(A, t)] per image)."""
    import hashlib

    import jax.numpy as jnp

    from dds_jax.dds import invert
    fg = [np.asarray(foreground_fn(jnp.asarray(inv[f"x_{d}"]), [jnp.asarray(f) for f in inv[f"feats_{d}"]]))[..., 0] > 0.5
          for d in ("s", "t")]
    transforms = [similarity(s, t) for s, t in zip(*fg)]
    warped = warp_images(source_images, transforms)
    key = dict(key or {}, aligned=hashlib.sha1(warped.tobytes()).hexdigest())
    new = invert.invert_pair(gen_s, gen_s, warped, None, steps, lr, cache=cache, key=key, **invert_kw)
    out = dict(inv)
    for k in ("w_s", "x_s", "mse_s", "feats_s"):
        out[k] = new[k]
    return out, transforms
