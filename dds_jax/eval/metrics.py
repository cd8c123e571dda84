"""The paper's evaluation metrics (Sec. 5.1, Table 1): FID, SSIM and PSNR.

* FID: pool3 features of pytorch-fid's Inception (:mod:`dds_jax.models.inception`), then the Fréchet
  distance of the two feature Gaussians exactly as ``pytorch_fid.fid_score.calculate_frechet_distance``
  (float64, ``scipy.linalg.sqrtm``).
* SSIM: Po-Hsun-Su ``pytorch-ssim`` (the implementation the paper cites as [1]), in jnp.
* PSNR: ``10 log10(R^2 / MSE)`` per image.

Input range. The released DDS code has no metric code, so the range behind Table 1 cannot be read off.
pytorch-ssim's constants ``C1 = 0.01^2`` and ``C2 = 0.03^2`` are *not* scaled by the data range, i.e.
they assume ``R = 1``: [0, 1] images are the natural convention and the default here (the same pairs
mapped to [-1, 1] give lower SSIM, e.g. 0.476 instead of 0.619 on the fixture). PSNR is range-invariant
when ``data_range`` matches the images (R = 1 on [0, 1], R = 2 on [-1, 1]). The paper's ~28-29 dB PSNR
even against the *source* domain is not reproducible from the released code; the two real images
published with it give 10.07 dB / SSIM 0.373 on [0, 1]. FID takes [0, 1] images as pytorch-fid does.
"""
import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from scipy import linalg

SSIM_C1 = 0.01 ** 2
SSIM_C2 = 0.03 ** 2
SSIM_SIGMA = 1.5


# ----------------------------------------------------------------------------- checks


def _check_pair(a_shape, b_shape, what: str = "images"):
    """Two image batches: 4-D NHWC, same shape, not empty."""
    if len(a_shape) != 4 or len(b_shape) != 4:
        raise ValueError(f"{what}: expected NHWC batches [N, H, W, C], got {tuple(a_shape)} and "
                         f"{tuple(b_shape)}")
    if tuple(a_shape) != tuple(b_shape):
        raise ValueError(f"{what}: shapes differ: {tuple(a_shape)} vs {tuple(b_shape)}")
    if a_shape[0] == 0 or any(d == 0 for d in a_shape[1:]):
        raise ValueError(f"{what}: empty image set {tuple(a_shape)}")


# ----------------------------------------------------------------------------- FID


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)), as pytorch-fid's ``calculate_frechet_distance``.

    float64 throughout. If ``sqrtm(S1 S2)`` is not finite (singular product) the product is retried
    with ``eps * I`` added to both covariances; an imaginary diagonal beyond 1e-3 raises ValueError.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors have different lengths: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"covariances {sigma1.shape}, {sigma2.shape} do not match means {mu1.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        warnings.warn(f"FID: singular product; adding {eps} to the diagonal of the covariances")
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def feature_statistics(features):
    """(mean, covariance with N-1) of a feature set [N, D], float64; needs N >= 2."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2:
        raise ValueError(f"features must be [N, D], got shape {f.shape}")
    if f.shape[0] < 2:
        raise ValueError(f"FID needs at least 2 feature vectors for a covariance, got {f.shape[0]}")
    return np.mean(f, axis=0), np.cov(f, rowvar=False)


def fid_from_features(features_a, features_b, eps: float = 1e-6) -> float:
    """FID between two feature sets [N, D] and [M, D] (pool3 features for the standard FID)."""
    fa, fb = np.asarray(features_a), np.asarray(features_b)
    if fa.ndim == 2 and fb.ndim == 2 and fa.shape[1] != fb.shape[1]:
        raise ValueError(f"feature dimensions differ: {fa.shape} vs {fb.shape}")
    return frechet_distance(*feature_statistics(fa), *feature_statistics(fb), eps=eps)


def fid_from_images(inception_params, images_a, images_b, batch_size: int = 50,
                    inception_config=None) -> float:
    """FID between two NHWC image sets in [0, 1] (or uint8), through pytorch-fid's Inception pool3."""
    from dds_jax.models import inception
    fa = inception.pool3_features(inception_params, images_a, batch_size, inception_config)
    fb = inception.pool3_features(inception_params, images_b, batch_size, inception_config)
    return fid_from_features(fa, fb)


# ----------------------------------------------------------------------------- SSIM


@functools.lru_cache(maxsize=None)
def gaussian_window(window_size: int = 11, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """pytorch-ssim's normalised 1-D Gaussian (float32); its 2-D window is the outer product."""
    x = np.arange(window_size, dtype=np.float64) - window_size // 2
    g = np.exp(-x ** 2 / (2.0 * sigma ** 2)).astype(np.float32)
    return g / g.sum()


def _gaussian_blur(x, window_size: int):
    """Depthwise ``conv2d(x, outer(g, g), padding=window_size // 2)`` on NHWC, as two 1-D passes of
    shifted weighted sums (XLA's CPU depthwise convolution is an order of magnitude slower)."""
    g = gaussian_window(window_size)
    p = window_size // 2
    for axis in (1, 2):
        n = x.shape[axis] + 2 * p - window_size + 1  # output length of the zero-padded 'valid' conv
        pad = [(0, 0)] * x.ndim
        pad[axis] = (p, p)
        xp = jnp.pad(x, pad)
        x = sum(float(g[k]) * jax.lax.slice_in_dim(xp, k, k + n, axis=axis) for k in range(window_size))
    return x


@functools.partial(jax.jit, static_argnames=("window_size", "size_average"))
def ssim(img1, img2, window_size: int = 11, size_average: bool = True):
    """SSIM exactly as Po-Hsun-Su ``pytorch_ssim.ssim`` on NHWC batches (default: [0, 1] images).

    Gaussian window (sigma 1.5, normalised), zero padding ``window_size // 2``, ``C1 = 0.01^2`` and
    ``C2 = 0.03^2`` not scaled by the data range — so give [0, 1] images (the paper's convention as far
    as can be told; see the module docstring). ``size_average=True`` -> scalar mean over the whole
    batch; ``False`` -> per-image mean [N]. Jitted; float32.
    """
    _check_pair(jnp.shape(img1), jnp.shape(img2), "ssim")
    if not (jnp.issubdtype(jnp.result_type(img1), jnp.floating)
            and jnp.issubdtype(jnp.result_type(img2), jnp.floating)):
        raise ValueError("ssim: give float images in [0, 1] (its constants assume range 1), not integers")
    m = ssim_map(img1, img2, window_size)
    return jnp.mean(m) if size_average else jnp.mean(m, axis=(1, 2, 3))


def ssim_map(img1, img2, window_size: int = 11):
    """The per-pixel, per-channel SSIM map [N, H, W, C] that :func:`ssim` averages (same constants);
    average it over a region for a regional SSIM."""
    x, y = jnp.asarray(img1, jnp.float32), jnp.asarray(img2, jnp.float32)
    stats = _gaussian_blur(jnp.concatenate([x, y, x * x, y * y, x * y], axis=-1), window_size)
    mu1, mu2, e11, e22, e12 = jnp.split(stats, 5, axis=-1)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq, sigma2_sq, sigma12 = e11 - mu1_sq, e22 - mu2_sq, e12 - mu1_mu2
    return (((2 * mu1_mu2 + SSIM_C1) * (2 * sigma12 + SSIM_C2))
            / ((mu1_sq + mu2_sq + SSIM_C1) * (sigma1_sq + sigma2_sq + SSIM_C2)))


# ----------------------------------------------------------------------------- PSNR


def psnr(img1, img2, data_range: float = 1.0) -> np.ndarray:
    """Per-image ``10 log10(R^2 / MSE)`` [N] in float64 (default R = 1 for [0, 1] images; use R = 2
    for [-1, 1] and 255 for uint8). Identical images give ``inf``."""
    a, b = np.asarray(img1, np.float64), np.asarray(img2, np.float64)
    _check_pair(a.shape, b.shape, "psnr")
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    mse = np.mean((a - b) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(float(data_range) ** 2 / mse)
