"""RepurposingGAN ``FewShotCNN``, the one-shot part segmenter of DDS (paper Sec. 3.2), in Flax, NHWC.

The network is a stack of 3x3 convolutions with dilation ``d`` and zero padding ``d`` (so every layer
keeps the image size), LeakyReLU(0.2) between them and none after the last:

  ==== ============================ ==========================================
  size dilations                    output channels (then ``n_class``)
  ==== ============================ ==========================================
  S    1 2 1 2 1                    128 64 64 32
  M    1 2 4 1 2 4 1                128 64 64 64 64 32
  L    1 2 4 8 1 2 4 8 1            128 64 64 64 64 64 64 32
  ==== ============================ ==========================================

Its input is every StyledConv output of the generator, nearest-up-sampled to the image size and
concatenated on channels in feature order (5376 channels at 256x256 for config-f). That tensor is never
built here: the first convolution is linear, so it is computed per feature map at the map's own
resolution and only its 128-channel result is brought to full size (:func:`feature_conv`, exact up to
float rounding). ``memory_light=False`` builds the concatenation, as the original does; the default
(``None``) builds it only when it is small (tiny generators), where one plain conv is faster.

Parameters: ``{"conv0": {"kernel": [3, 3, in, out], "bias": [out]}, "conv1": ..., ...}``; conv ``k`` is
the PyTorch ``layers.{2k}``.
"""
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dds_jax.conversion.statedict import ConversionError, StateDictReader, conv_oihw_to_hwio, strip_prefix

PRECISION = lax.Precision.HIGHEST
NEGATIVE_SLOPE = 0.2
_DN = ("NHWC", "HWIO", "NHWC")
# memory_light=None (auto) builds the concatenated input when it has at most this many elements (there,
# one plain conv is faster than the per-map path); feature_conv splits its output channels into chunks
# once the per-tap projections of a map would exceed max(this, half the output).
CONCAT_MAX_ELEMENTS = 2 ** 24
CHUNK_MIN_ELEMENTS = 2 ** 22

ARCHITECTURES: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]] = {
    "S": ((1, 2, 1, 2, 1), (128, 64, 64, 32)),
    "M": ((1, 2, 4, 1, 2, 4, 1), (128, 64, 64, 64, 64, 32)),
    "L": ((1, 2, 4, 8, 1, 2, 4, 8, 1), (128, 64, 64, 64, 64, 64, 64, 32)),
}

Size2 = Union[int, Sequence[int]]


def layer_specs(size: str, in_ch: int, n_class: int) -> List[Tuple[int, int, int]]:
    """[(dilation, c_in, c_out)] of every conv of a FewShotCNN of ``size`` 'S', 'M' or 'L'."""
    if size not in ARCHITECTURES:
        raise ValueError(f"unknown FewShotCNN size {size!r}; known: {', '.join(ARCHITECTURES)}")
    dilations, hidden = ARCHITECTURES[size]
    channels = [int(in_ch)] + list(hidden) + [int(n_class)]
    return list(zip(dilations, channels[:-1], channels[1:]))


def size_for_depth(n_convs: int) -> Optional[str]:
    """'S' / 'M' / 'L' for 5 / 7 / 9 convolutions, else None."""
    return {len(d): s for s, (d, _) in ARCHITECTURES.items()}.get(int(n_convs))


def _hw(image_size: Size2) -> Tuple[int, int]:
    if isinstance(image_size, (int, np.integer)):
        return int(image_size), int(image_size)
    h, w = image_size
    return int(h), int(w)


def _factors(shape, image_size: Size2) -> Tuple[int, int]:
    (H, W), (h, w) = _hw(image_size), shape[1:3]
    if H % h or W % w:
        raise ValueError(f"feature map {h}x{w} does not divide the image size {H}x{W} "
                         "(nearest up-sampling needs integer factors)")
    return H // h, W // w


# --------------------------------------------------------------------------------------------------
# The original input: concat_features (DDS_main.py) and plain convolutions
# --------------------------------------------------------------------------------------------------
def upsample_nearest(x, image_size: Size2):
    """``F.interpolate(x, (H, W), mode='nearest')`` for integer factors: pixel repetition. NHWC."""
    sy, sx = _factors(x.shape, image_size)
    return jnp.repeat(jnp.repeat(x, sy, axis=1), sx, axis=2)


def concat_features(features: Sequence[jnp.ndarray], image_size: Size2 = None):
    """Every feature map up-sampled to ``image_size`` (default: the largest map) and concatenated on
    channels in feature order: the segmenter's input as the original code builds it."""
    if image_size is None:
        image_size = (max(f.shape[1] for f in features), max(f.shape[2] for f in features))
    return jnp.concatenate([upsample_nearest(f, image_size) for f in features], axis=-1)


def dilated_conv(x, kernel, bias, dilation: int):
    """3x3 conv, dilation ``d``, zero padding ``d`` (torch ``Conv2d(padding=d, dilation=d)``), NHWC."""
    d = int(dilation)
    y = lax.conv_general_dilated(x, kernel, (1, 1), [(d, d), (d, d)], rhs_dilation=(d, d),
                                 dimension_numbers=_DN, precision=PRECISION)
    return y + bias


# --------------------------------------------------------------------------------------------------
# Memory-light first layer
# --------------------------------------------------------------------------------------------------
def axis_phases(s: int, d: int):
    """How a 3-tap conv (dilation ``d``) over an ``s``-times nearest-up-sampled axis reads the low-res
    axis. Output pixel ``s*q + r`` (phase ``r``) reads tap ``t`` in {-1, 0, 1} at the up-sampled index
    ``s*q + r + t*d``, i.e. the low-res pixel ``q + (r + t*d) // s`` (zero padding maps to zero padding,
    since out-of-range indices stay out of range). Phases with the same three offsets form a class.

    Returns ``(classes, runs, lo, hi)``: ``classes`` the distinct offset triples, ``runs`` the phases
    0..s-1 as ``[(class, count)]`` in order, ``lo``/``hi`` the extreme offsets (the low-res padding).
    """
    offsets = [tuple((r + t * d) // s for t in (-1, 0, 1)) for r in range(s)]
    classes = list(dict.fromkeys(offsets))
    runs: List[List[int]] = []
    for o in offsets:
        c = classes.index(o)
        if runs and runs[-1][0] == c:
            runs[-1][1] += 1
        else:
            runs.append([c, 1])
    lo = min(min(o) for o in classes)
    hi = max(max(o) for o in classes)
    return classes, [tuple(r) for r in runs], lo, hi


def _expand_phases(x, axis: int, runs):
    """Class axis ``axis`` -> phase axis: class ``c`` repeated ``count`` times per run (a broadcast)."""
    pieces = []
    for c, count in runs:
        piece = lax.slice_in_dim(x, c, c + 1, axis=axis)
        shape = list(piece.shape)
        shape[axis] = count
        pieces.append(jnp.broadcast_to(piece, shape))
    return pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces, axis=axis)


def _shift(x, axis: int, offset: int):
    """``y[q] = x[q + offset]`` along ``axis``, zero where ``q + offset`` is out of range."""
    n = x.shape[axis]
    if offset == 0:
        return x
    if abs(offset) >= n:
        return jnp.zeros_like(x)
    pad = [(0, 0)] * x.ndim
    if offset > 0:
        pad[axis] = (0, offset)
        return jnp.pad(lax.slice_in_dim(x, offset, n, axis=axis), pad)
    pad[axis] = (-offset, 0)
    return jnp.pad(lax.slice_in_dim(x, 0, n + offset, axis=axis), pad)


def upsampled_conv(maps: Sequence[jnp.ndarray], kernels: Sequence[jnp.ndarray], image_size: Size2,
                   dilation: int = 1):
    """``sum_i dilated_conv(upsample_nearest(maps[i], image_size), kernels[i], 0, dilation)`` for maps of
    one spatial size, without building the up-sampled input.

    Per-tap 1x1 projections ``P[t] = sum_i maps[i] @ kernels[i][t]`` are made at the maps' resolution;
    for every phase class (see :func:`axis_phases`) the taps are summed at their low-res offsets (zero
    outside: the conv's zero padding), and each class result is broadcast to its phases (depth-to-
    space). Exact, borders included. maps: [B, h, w, C_i], kernels: [3, 3, C_i, C_out] -> [B, H, W, C_out].
    """
    sy, sx = _factors(maps[0].shape, image_size)
    if sy == 1 and sx == 1:
        return sum(dilated_conv(f, k, 0.0, dilation) for f, k in zip(maps, kernels))
    B, h, w, _ = maps[0].shape
    c_out = kernels[0].shape[-1]
    cls_y, runs_y, _, _ = axis_phases(sy, dilation)
    cls_x, runs_x, _, _ = axis_phases(sx, dilation)
    p = sum(jnp.einsum("bhwi,yxio->bhwyxo", f, k, precision=PRECISION)
            for f, k in zip(maps, kernels))                                    # [B, h, w, 3, 3, C]
    # rows: per row class, sum the 3 row taps at their offsets -> [B, h, ny, w, 3, C]
    rows = jnp.stack([sum(_shift(p[:, :, :, t], 1, o) for t, o in enumerate(offs)) for offs in cls_y],
                     axis=2)
    # columns: -> [B, h, ny, w, nx, C]
    out = jnp.stack([sum(_shift(rows[:, :, :, :, t], 3, o) for t, o in enumerate(offs)) for offs in cls_x],
                    axis=4)
    out = _expand_phases(out, 2, runs_y)                                       # [B, h, sy, w, nx, C]
    out = _expand_phases(out, 4, runs_x)                                       # [B, h, sy, w, sx, C]
    return out.reshape(B, h * sy, w * sx, c_out)


def _groups(features: Sequence[jnp.ndarray]):
    """Consecutive feature maps of one spatial size: [([maps], first channel offset)]."""
    groups, start = [], 0
    for f in features:
        if groups and groups[-1][0][-1].shape[1:3] == f.shape[1:3]:
            groups[-1][0].append(f)
        else:
            groups.append(([f], start))
        start += f.shape[-1]
    return groups


def feature_conv(features: Sequence[jnp.ndarray], kernel, bias, image_size: Size2 = None,
                 dilation: int = 1, chunks: Optional[int] = None):
    """The first FewShotCNN layer on ``concat_features(features, image_size)``, computed per feature map
    at its own resolution and summed (the conv is linear in its input channels). Never materialises the
    [B, H, W, sum(C)] input.

    The per-tap projections of a map (9 h w C_out floats) are the largest scratch; the output channels
    are computed in ``chunks`` groups (default: enough that those of the finest up-sampled map stay
    below half the output's size) by a ``fori_loop``, so one group's scratch is live at a time:
    ~68 MiB of scratch at batch 1 for config-f 256 (the concatenated input alone is 1.4 GiB).
    """
    if image_size is None:
        image_size = (max(f.shape[1] for f in features), max(f.shape[2] for f in features))
    total = sum(f.shape[-1] for f in features)
    if total != kernel.shape[2]:
        raise ValueError(f"the features have {total} channels in all, the segmenter's first layer "
                         f"takes {kernel.shape[2]}")
    H, W = _hw(image_size)
    c_out = kernel.shape[-1]
    groups = _groups(features)
    if chunks is None:
        batch = features[0].shape[0]
        pixels = max([fs[0].shape[1] * fs[0].shape[2] for fs, _ in groups if fs[0].shape[1:3] != (H, W)],
                     default=0)
        budget = max(CHUNK_MIN_ELEMENTS, batch * H * W * c_out // 2)
        chunks = next((n for n in range(1, c_out + 1)
                       if c_out % n == 0 and 9 * batch * pixels * (c_out // n) <= budget), c_out)
    if c_out % chunks:
        raise ValueError(f"chunks={chunks} does not divide the {c_out} output channels")
    step = c_out // chunks

    def chunk(k):                                   # k: [3, 3, C_in, step] -> [B, H, W, step]
        acc = None
        for maps, start in groups:
            ks, off = [], start
            for f in maps:
                ks.append(k[:, :, off:off + f.shape[-1]])
                off += f.shape[-1]
            y = upsampled_conv(maps, ks, image_size, dilation)
            acc = y if acc is None else acc + y
        return acc

    if chunks == 1:
        out = chunk(kernel)
    else:  # a loop, so that the chunks' scratch is reused on every backend
        shape = jax.eval_shape(chunk, kernel[..., :step]).shape[:3] + (c_out,)

        def body(i, out):
            k = lax.dynamic_slice_in_dim(kernel, i * step, step, axis=3)
            return lax.dynamic_update_slice_in_dim(out, chunk(k), i * step, axis=3)

        out = lax.fori_loop(0, chunks, body, jnp.zeros(shape, kernel.dtype))
    return out + bias


# --------------------------------------------------------------------------------------------------
# Flax modules
# --------------------------------------------------------------------------------------------------
def torch_kernel_init(key, shape, dtype=jnp.float32):
    """PyTorch's default Conv2d init (kaiming_uniform, a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(shape[0] * shape[1] * shape[2])
    return jax.random.uniform(key, shape, dtype, -bound, bound)


def torch_bias_init(fan_in: int):
    bound = 1.0 / math.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


class Conv3x3(nn.Module):
    """Conv2d(3x3, padding=d, dilation=d). Input: an NHWC array, or a list of feature maps (the first
    layer), taken as their up-sampled concatenation: built (``memory_light=False``), never built
    (``True``, :func:`feature_conv`), or built only when small (``None``, see CONCAT_MAX_ELEMENTS)."""
    features: int
    dilation: int = 1
    memory_light: Optional[bool] = None

    @nn.compact
    def __call__(self, x, image_size: Size2 = None):
        in_ch = x.shape[-1] if hasattr(x, "shape") else sum(f.shape[-1] for f in x)
        kernel = self.param("kernel", torch_kernel_init, (3, 3, in_ch, self.features))
        bias = self.param("bias", torch_bias_init(9 * in_ch), (self.features,))
        if hasattr(x, "shape"):
            return dilated_conv(x, kernel, bias, self.dilation)
        memory_light = self.memory_light
        if memory_light is None:
            H, W = _hw(image_size) if image_size is not None else (max(f.shape[1] for f in x),
                                                                   max(f.shape[2] for f in x))
            memory_light = x[0].shape[0] * H * W * in_ch > CONCAT_MAX_ELEMENTS
        if memory_light:
            return feature_conv(x, kernel, bias, image_size, self.dilation)
        return dilated_conv(concat_features(x, image_size), kernel, bias, self.dilation)


class FewShotCNN(nn.Module):
    """RepurposingGAN ``FewShotCNN(in_ch, n_class, size)`` (``in_ch`` is taken from the input).

    ``__call__(inputs, image_size=None)``: ``inputs`` the generator's feature list (NHWC maps, any
    resolutions dividing ``image_size``, default the largest map's size) or an already concatenated
    [B, H, W, in_ch] array. Returns logits [B, H, W, n_class]. Each conv's pre-activation output is
    sown into ``"intermediates"`` as ``out<k>``. ``memory_light``: see :class:`Conv3x3`.
    """
    n_class: int
    size: str = "S"
    memory_light: Optional[bool] = None

    @nn.compact
    def __call__(self, inputs, image_size: Size2 = None):
        dilations, hidden = ARCHITECTURES[self.size]
        outs = list(hidden) + [self.n_class]
        x = inputs
        for k, (d, c) in enumerate(zip(dilations, outs)):
            conv = Conv3x3(c, d, memory_light=self.memory_light, name=f"conv{k}")
            x = conv(x, image_size) if k == 0 else conv(x)
            self.sow("intermediates", f"out{k}", x)
            if k < len(outs) - 1:
                x = nn.leaky_relu(x, NEGATIVE_SLOPE)
        return x


def init_params(key, in_ch: int, n_class: int, size: str = "S") -> dict:
    """Fresh parameters with PyTorch's default Conv2d init, U(+-1/sqrt(fan_in)) for weights and biases,
    drawn with numpy from ``key`` (a PRNG key or an int seed); the network is not run."""
    seed = key if isinstance(key, (int, np.integer)) else np.asarray(jax.random.key_data(key)).tolist()
    rng = np.random.default_rng(seed)
    params = {}
    for k, (_, c_in, c_out) in enumerate(layer_specs(size, in_ch, n_class)):
        bound = 1.0 / math.sqrt(9 * c_in)
        params[f"conv{k}"] = {
            "kernel": rng.uniform(-bound, bound, (3, 3, c_in, c_out)).astype(np.float32),
            "bias": rng.uniform(-bound, bound, (c_out,)).astype(np.float32)}
    return params


def describe_params(params) -> dict:
    """{"size", "in_ch", "n_class"} read from a parameter tree's shapes."""
    n = len(params)
    size = size_for_depth(n)
    if size is None or any(f"conv{k}" not in params for k in range(n)):
        raise ValueError(f"not FewShotCNN parameters: {n} entries {sorted(params)[:10]}")
    return {"size": size, "in_ch": int(np.shape(params["conv0"]["kernel"])[2]),
            "n_class": int(np.shape(params[f"conv{n - 1}"]["kernel"])[3])}


def logits_from_features(params, features: Sequence[jnp.ndarray], image_size: Size2 = None,
                         memory_light: Optional[bool] = None):
    """Segmenter logits [B, H, W, n_class] for a generator's feature list (architecture from ``params``)."""
    info = describe_params(params)
    module = FewShotCNN(info["n_class"], info["size"], memory_light=memory_light)
    return module.apply({"params": params}, list(features), image_size)


# --------------------------------------------------------------------------------------------------
# Conversion from the PyTorch state_dict
# --------------------------------------------------------------------------------------------------
def convert_state_dict(obj: Any, source: str = "state_dict", parts: Optional[Sequence[str]] = None):
    """``FewShotCNN.state_dict()`` (``layers.{0,2,...}.weight/bias``, ``module.`` prefix tolerated)
    -> (config ``{"size", "in_ch", "n_class"[, "parts"]}``, params). Size from the number of convs,
    ``in_ch`` / ``n_class`` from the first / last weight; every shape is checked."""
    if not isinstance(obj, dict):
        raise ConversionError(f"{source}: expected a state_dict (dict), got {type(obj).__name__}")
    sd = strip_prefix(dict(obj), "module.")
    if "layers.0.weight" not in sd:
        raise ConversionError(f"{source}: not a FewShotCNN state_dict (no 'layers.0.weight'; first keys: "
                              f"{list(sd)[:5]})")
    n = 0
    while f"layers.{2 * n}.weight" in sd:
        n += 1
    size = size_for_depth(n)
    if size is None:
        raise ConversionError(f"{source}: {n} convolutions (layers.0 .. layers.{2 * n - 2}); FewShotCNN "
                              f"S/M/L have {', '.join(str(len(d)) for d, _ in ARCHITECTURES.values())}")
    first, last = np.shape(sd["layers.0.weight"]), np.shape(sd[f"layers.{2 * n - 2}.weight"])
    if len(first) != 4 or len(last) != 4:
        raise ConversionError(f"{source}: 'layers.0.weight' has shape {tuple(first)}, expected a 4-D "
                              "conv weight [out, in, 3, 3]")
    in_ch, n_class = int(first[1]), int(last[0])
    r = StateDictReader(sd, source=source)
    params = {}
    for k, (_, c_in, c_out) in enumerate(layer_specs(size, in_ch, n_class)):
        w = r.take(f"layers.{2 * k}.weight", (c_out, c_in, 3, 3))
        params[f"conv{k}"] = {"kernel": conv_oihw_to_hwio(w), "bias": r.take(f"layers.{2 * k}.bias", (c_out,))}
    r.finish()
    config = {"size": size, "in_ch": in_ch, "n_class": n_class}
    if parts is not None:
        config["parts"] = list(parts)
    return config, params
