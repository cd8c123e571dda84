"""Low-level image ops shared by the models, NHWC throughout.

Each op reproduces the PyTorch function the original code calls (named in the docstring), because the
parity fixtures were produced by exactly those functions.
"""
import functools
import math
from typing import Any, NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

SQRT2 = math.sqrt(2.0)


class PrecisionSpec(NamedTuple):
    """How the convolutions / matmuls of a model run: ``conv`` and ``dense`` are ``lax.Precision``
    values, ``dtype`` the dtype convolution operands are cast to (accumulation and everything else
    stay float32)."""
    conv: Any
    dense: Any
    dtype: Any


# float32: exact float32 passes (parity; the default). tf32: float32 operands, TensorFloat-32 tensor
# cores on NVIDIA GPUs (Precision.HIGH; identical to float32 on CPU). bf16: bfloat16 convolution operands
# and stored convolution outputs, float32 accumulation, float32 modulation / mapping matmuls.
PRECISIONS = {
    "float32": PrecisionSpec(lax.Precision.HIGHEST, lax.Precision.HIGHEST, jnp.float32),
    "tf32": PrecisionSpec(lax.Precision.HIGH, lax.Precision.HIGH, jnp.float32),
    "bf16": PrecisionSpec(lax.Precision.DEFAULT, lax.Precision.HIGHEST, jnp.bfloat16),
}


def precision_spec(name: str) -> PrecisionSpec:
    """The :data:`PRECISIONS` entry called ``name``; a ValueError naming the choices otherwise."""
    if name not in PRECISIONS:
        raise ValueError(f"precision {name!r} is not one of {tuple(PRECISIONS)}")
    return PRECISIONS[name]


def fused_leaky_relu(x, bias=None, negative_slope: float = 0.2, scale: float = SQRT2):
    """rosinality ``fused_leaky_relu``: leaky_relu(x + bias, 0.2) * sqrt(2); bias on the last axis."""
    if bias is not None:
        x = x + bias
    return jnp.where(x >= 0, x, x * negative_slope) * scale


def make_kernel(k: Sequence[float]) -> np.ndarray:
    """rosinality ``make_kernel``: outer product of a 1-D kernel, normalised to sum 1."""
    k = np.asarray(k, dtype=np.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()


def separable_factors(kernel):
    """(column, row) 1-D factors with outer(column, row) == kernel, or None when the kernel is not a
    (concrete) rank-1 matrix. Every rosinality blur kernel (``make_kernel`` of a 1-D kernel) is."""
    try:
        k = np.asarray(kernel, np.float64)
    except Exception:  # a traced kernel: no factorisation at trace time
        return None
    if k.ndim != 2 or k.sum() == 0:
        return None
    col, row = k.sum(1), k.sum(0) / k.sum()
    return (col, row) if np.allclose(np.outer(col, row), k, rtol=1e-6, atol=1e-9) else None


_NHWC = ("NHWC", "HWIO", "NHWC")


def upfirdn2d(x, kernel, up: int = 1, down: int = 1, pad: Tuple[int, int] = (0, 0)):
    """rosinality ``upfirdn2d_native`` on NHWC: zero-insert up-sampling, pad (negative = crop),
    true convolution with ``kernel`` (2-D, per channel), then keep every ``down``-th pixel.

    A separable kernel is applied as weighted sums of shifted slices along H, then W (only the kept
    outputs are computed): the same numbers as the depthwise convolution up to float rounding, and
    ~70x faster on CPU forward + backward, where XLA's grouped convolutions are slow."""
    n, h, w, c = x.shape
    if up > 1:  # each pixel followed by up-1 zeros, as torch's view + F.pad
        x = x.reshape(n, h, 1, w, 1, c)
        x = jnp.pad(x, ((0, 0), (0, 0), (0, up - 1), (0, 0), (0, up - 1), (0, 0)))
        x = x.reshape(n, h * up, w * up, c)
    p0, p1 = pad
    x = lax.pad(x, jnp.array(0, x.dtype), ((0, 0, 0), (p0, p1, 0), (p0, p1, 0), (0, 0, 0)))
    factors = separable_factors(kernel)
    if factors is not None:
        col, row = (f[::-1] for f in factors)   # torch flips the kernel, then cross-correlates
        ho = (x.shape[1] - len(col)) // down + 1
        wo = (x.shape[2] - len(row)) // down + 1
        y = sum(float(col[i]) * x[:, i:i + down * (ho - 1) + 1:down] for i in range(len(col)))
        return sum(float(row[j]) * y[:, :, j:j + down * (wo - 1) + 1:down] for j in range(len(row)))
    kernel = jnp.asarray(kernel, dtype=x.dtype)
    kh, kw = kernel.shape
    w_flipped = jnp.flip(kernel, (0, 1))
    w_dw = jnp.broadcast_to(w_flipped[:, :, None, None], (kh, kw, 1, c))
    return lax.conv_general_dilated(
        x, w_dw, window_strides=(down, down), padding="VALID",
        dimension_numbers=_NHWC, feature_group_count=c)


def _plain_conv(x, kernel, padding, precision, preferred_element_type):
    unpadded = all(p == 0 for pair in padding for p in pair) and min(kernel.shape[:2]) > 1
    if unpadded:   # XLA:CPU runs VALID k x k (k > 1) convolutions ~3x slower than padded ones (BENCHMARKS.md)
        padding = ((1, 0), (1, 0))
    y = lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_NHWC, precision=precision,
                                 preferred_element_type=preferred_element_type)
    return y[:, 1:, 1:] if unpadded else y


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv2d(x, kernel, padding, precision, preferred_element_type):
    return _plain_conv(x, kernel, padding, precision, preferred_element_type)


def _conv2d_fwd(x, kernel, padding, precision, preferred_element_type):
    return _plain_conv(x, kernel, padding, precision, preferred_element_type), (x, kernel)


def _conv2d_bwd(padding, precision, preferred_element_type, res, g):
    x, kernel = res
    kh, kw = kernel.shape[:2]
    # Input gradient = correlation of g with the flipped kernel, in / out swapped, written as an ordinary
    # HWIO convolution (same numbers as JAX's own transpose rule).
    flipped = jnp.swapaxes(jnp.flip(kernel, (0, 1)), 2, 3).astype(x.dtype)
    pad = [(kh - 1 - padding[0][0], kh - 1 - padding[0][1]), (kw - 1 - padding[1][0], kw - 1 - padding[1][1])]
    dx = _plain_conv(g.astype(x.dtype), flipped, pad, precision, None).astype(x.dtype)
    # Kernel gradient: JAX's rule (the primal convolution of this vjp is dead code, XLA drops it; so is
    # the whole kernel gradient where nothing uses it, e.g. the DDS step).
    _, kernel_vjp = jax.vjp(lambda k_: _plain_conv(x, k_, padding, precision, preferred_element_type), kernel)
    return dx, kernel_vjp(g)[0]


_conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def conv2d(x, kernel, padding, precision=None, preferred_element_type=None):
    """Stride-1 ``F.conv2d`` (cross-correlation) on NHWC / HWIO with ``padding`` [(lo, hi), (lo, hi)].

    Same values and gradients as ``lax.conv_general_dilated``, but the input gradient is an ordinary
    convolution with an explicitly flipped HWIO kernel. Why: inside a ``lax.scan`` / ``while`` body (the
    DDS chunk, inversion) XLA's CPU backend keeps JAX's transposed-kernel form (``01oi``), which misses the
    fast convolution path: VGG16 input gradients ran 3.4x slower in a loop than unrolled (BENCHMARKS.md).
    """
    padding = tuple((int(lo), int(hi)) for lo, hi in padding)
    kh, kw = kernel.shape[:2]
    if any(p > k - 1 for (lo, hi), k in zip(padding, (kh, kw)) for p in (lo, hi)):
        return _plain_conv(x, kernel, padding, precision, preferred_element_type)   # negative-pad transpose
    return _conv2d(x, kernel, padding, precision, preferred_element_type)


def flax_conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                              dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                              precision=None, preferred_element_type=None):
    """``lax.conv_general_dilated`` for ``flax.linen.Conv(conv_general_dilated=...)``: the plain stride-1
    NHWC / HWIO case goes through :func:`conv2d`, anything else straight to lax."""
    plain = (all(s == 1 for s in window_strides) and not isinstance(padding, str)
             and all(d == 1 for d in (lhs_dilation or (1, 1))) and all(d == 1 for d in (rhs_dilation or (1, 1)))
             and feature_group_count == 1 and batch_group_count == 1 and lhs.ndim == 4
             and tuple(getattr(dimension_numbers, "lhs_spec", None) or ()) == (0, 3, 1, 2)
             and tuple(getattr(dimension_numbers, "rhs_spec", None) or ()) == (3, 2, 0, 1))
    if plain:
        return conv2d(lhs, rhs, padding, precision, preferred_element_type)
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                    dimension_numbers, feature_group_count, batch_group_count, precision,
                                    preferred_element_type)


def conv_transpose_stride2(x, kernel, precision=None, preferred_element_type=None):
    """torch ``conv_transpose2d(x, kernel, stride=2, padding=0)`` on NHWC / HWIO ([k, k, in, out]).

    Polyphase form: output pixel (2m+a, 2n+b) only meets the taps ``kernel[a::2, b::2]``, so the op is four
    small stride-1 convolutions on the input grid (for k=3: 2x2, 2x1, 1x2, 1x1 taps), interleaved. Same
    FLOPs as the zero-inserted (lhs-dilated) convolution but no strided convolution in the input gradient,
    which XLA's CPU backend runs slowly. Output [N, 2H+k-2, 2W+k-2, out]."""
    n, h, w, _ = x.shape
    k = kernel.shape[0]
    size = (2 * h + k - 2, 2 * w + k - 2)
    half = ((size[0] + 1) // 2, (size[1] + 1) // 2)
    phases = []
    for a in range(2):
        row = []
        for b in range(2):
            sub = jnp.flip(kernel[a::2, b::2], (0, 1))    # true convolution = correlation, flipped
            ka, kb = sub.shape[:2]
            if ka == 0 or kb == 0:                            # k = 1: odd phases get no tap
                row.append(jnp.zeros((n,) + half + (kernel.shape[-1],), preferred_element_type or x.dtype))
                continue
            y = conv2d(x, sub.astype(x.dtype), [(ka - 1, ka - 1), (kb - 1, kb - 1)], precision,
                       preferred_element_type)
            row.append(jnp.pad(y, ((0, 0), (0, half[0] - y.shape[1]), (0, half[1] - y.shape[2]), (0, 0))))
        phases.append(jnp.stack(row, axis=3))                # [N, H', W', 2 (b), C]
    y = jnp.stack(phases, axis=2)                            # [N, H', 2 (a), W', 2 (b), C]
    y = y.reshape(n, 2 * half[0], 2 * half[1], y.shape[-1])
    return y[:, :size[0], :size[1]]


@functools.lru_cache(maxsize=None)
def _bilinear_matrix(in_size: int, out_size: int, coord_scale: float) -> np.ndarray:
    """[out, in] interpolation weights of torch bilinear, align_corners=False, no antialias."""
    m = np.zeros((out_size, in_size), dtype=np.float64)
    for dst in range(out_size):
        src = max((dst + 0.5) * coord_scale - 0.5, 0.0)
        i0 = min(int(math.floor(src)), in_size - 1)
        i1 = min(i0 + 1, in_size - 1)
        lam = src - i0
        m[dst, i0] += 1.0 - lam
        m[dst, i1] += lam
    return m.astype(np.float32)


def resize_bilinear_torch(x, size: Tuple[int, int] = None, scale_factor: float = None):
    """torch ``F.interpolate`` / ``nn.Upsample(mode='bilinear', align_corners=False)`` on NHWC.

    With ``scale_factor`` the output is floor(in * s) and source coordinates use 1/s (torch's rule when
    a scale factor is given); with ``size`` they use in/out. No antialiasing when down-sampling
    (``jax.image.resize`` would antialias and not match).
    """
    _, h, w, _ = x.shape
    if (size is None) == (scale_factor is None):
        raise ValueError("give exactly one of size and scale_factor")
    if size is not None:
        oh, ow = size
        sh, sw = h / oh, w / ow
    else:
        oh, ow = int(math.floor(h * scale_factor)), int(math.floor(w * scale_factor))
        sh = sw = 1.0 / scale_factor
    if (oh, ow) == (h, w) and sh == 1.0 and sw == 1.0:
        return x
    mh = jnp.asarray(_bilinear_matrix(h, oh, sh), x.dtype)
    mw = jnp.asarray(_bilinear_matrix(w, ow, sw), x.dtype)
    return jnp.einsum("oh,nhwc,pw->nopc", mh, x, mw, precision=lax.Precision.HIGHEST)


def gaussian_1d(sigma: float) -> np.ndarray:
    """A normalised Gaussian kernel of radius ceil(2.5 sigma) (at least 1)."""
    r = max(1, int(math.ceil(2.5 * sigma)))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def gaussian_blur(x, sigma: float):
    """Separable Gaussian blur of NHWC images or masks, edges replicated (values stay in their range);
    sigma <= 0 returns ``x``."""
    if sigma <= 0:
        return x
    k = gaussian_1d(sigma)
    r = len(k) // 2
    for axis in (1, 2):
        pad = [(0, 0)] * x.ndim
        pad[axis] = (r, r)
        p = jnp.pad(x, pad, mode="edge")
        n = x.shape[axis]
        x = sum(float(k[i]) * jnp.take(p, jnp.arange(i, i + n), axis=axis) for i in range(len(k)))
    return x


def map_batches(fn, x: np.ndarray, batch_size: int):
    """Apply ``fn`` to ``x`` in fixed-size batches (the last one zero-padded, so one compilation) and
    concatenate its outputs (an array or any pytree of arrays) as numpy, trimmed to ``len(x)``."""
    n = len(x)
    if n == 0:
        raise ValueError("empty input: no images to process")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    b = min(batch_size, n)
    outs = []
    for start in range(0, n, b):
        chunk = np.asarray(x[start:start + b])
        if len(chunk) < b:
            chunk = np.concatenate([chunk, np.zeros((b - len(chunk),) + chunk.shape[1:], chunk.dtype)])
        outs.append(jax.device_get(fn(chunk)))
    return jax.tree_util.tree_map(lambda *parts: np.concatenate(parts)[:n], *outs)
