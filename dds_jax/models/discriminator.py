"""StyleGAN2 discriminator (rosinality ``stylegan2-pytorch`` ``Discriminator``) in Flax, NHWC, with the
patch-level head of few-shot-gan-adaptation (``Patch_Discriminator`` + ``Extra``).

As in :mod:`dds_jax.models.stylegan2`, weights are stored raw (as in the PyTorch checkpoint, N(0, 1) at
init) and the equalised-learning-rate scales are applied at run time: 1/sqrt(in * k * k) for convs,
1/sqrt(in) for linears (lr_mul 1).

Parameters (the Flax ``params`` collection; :func:`init_params` / :func:`convert_state_dict` return
this dict itself, apply with ``Discriminator(cfg).apply({"params": params}, x)``). ``C[r]`` is the
channel count at resolution r, ``S`` the image size, ``F`` = ``stddev_feat``::

    convs_0/weight                 [1, 1, 3, C[S]]           from-RGB 1x1 conv (HWIO)
    convs_0/bias                   [C[S]]                    its fused-leaky-ReLU bias
    convs_<i>/conv1/{weight,bias}  [3, 3, C[r], C[r]], [C[r]]         i = 1.. log2(S)-2, r = S / 2^(i-1)
    convs_<i>/conv2/{weight,bias}  [3, 3, C[r], C[r/2]], [C[r/2]]     blur + stride-2 conv
    convs_<i>/skip/weight          [1, 1, C[r], C[r/2]]               blur + stride-2 1x1 conv, no bias
    final_conv/{weight,bias}       [3, 3, C[4] + F, C[4]], [C[4]]
    final_linear_0/{weight,bias}   [C[4] * 16, C[4]], [C[4]]  rows in torch's NCHW flatten order (c, h, w):
                                                              the forward transposes the 4x4 map to NCHW
                                                              before flattening
    final_linear_1/{weight,bias}   [C[4], 1], [1]
    patch_head/{weight,bias}       [3, 3, C[p], 1], [1]       p = resolved_patch_res (optional; absent in
                                                              converted checkpoints, see with_patch_head)

The blur kernels are not parameters (``make_kernel(blur_kernel)`` is rebuilt from the config).
"""
import dataclasses
import math
from typing import Any, Callable, Dict, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dds_jax import ops
from dds_jax.conversion.statedict import (ConversionError, StateDictReader, conv_oihw_to_hwio,
                                          linear_oi_to_io, strip_prefix)
from dds_jax.models.stylegan2 import EqualLinear, default_channels

PRECISION = lax.Precision.HIGHEST
_DN = ("NHWC", "HWIO", "NHWC")


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------
def _is_pow2(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
    size: int
    channels: Tuple[Tuple[int, int], ...] = ()   # ((resolution, channels), ...) 4 .. size
    blur_kernel: Tuple[int, ...] = (1, 3, 3, 1)
    stddev_group: int = 4
    stddev_feat: int = 1
    patch_res: int = 0        # 0 -> max(4, size // 8)

    def __post_init__(self):
        size = int(self.size)
        if not _is_pow2(size) or size < 8:
            raise ValueError(f"discriminator size must be a power of two >= 8, got {self.size}")
        object.__setattr__(self, "size", size)
        if not self.channels:
            object.__setattr__(self, "channels", tuple(sorted(default_channels(size, 2).items())))
        channels = tuple(sorted((int(r), int(c)) for r, c in self.channels))
        object.__setattr__(self, "channels", channels)
        table = dict(channels)
        missing = [2 ** i for i in range(2, int(math.log2(size)) + 1) if 2 ** i not in table]
        if missing:
            raise ValueError(f"channels table lacks resolutions {missing}")
        bad = [r for r, c in channels if c < 1]
        if bad:
            raise ValueError(f"channels must be positive (resolutions {bad})")
        object.__setattr__(self, "blur_kernel", tuple(int(k) for k in self.blur_kernel))
        if len(self.blur_kernel) < 2:
            raise ValueError(f"blur_kernel needs at least 2 taps, got {self.blur_kernel}")
        object.__setattr__(self, "stddev_group", int(self.stddev_group))
        object.__setattr__(self, "stddev_feat", int(self.stddev_feat))
        if self.stddev_group < 1 or self.stddev_feat < 1:
            raise ValueError("stddev_group and stddev_feat must be >= 1")
        if self.channel(4) % self.stddev_feat:
            raise ValueError(f"stddev_feat={self.stddev_feat} does not divide the 4x4 channels "
                             f"{self.channel(4)}")
        object.__setattr__(self, "patch_res", int(self.patch_res))
        if self.patch_res:
            if not _is_pow2(self.patch_res) or not 4 <= self.patch_res < size:
                raise ValueError(f"patch_res must be a power of two with 4 <= patch_res < size={size}, "
                                 f"got {self.patch_res}")

    @property
    def log_size(self) -> int:
        return int(math.log2(self.size))

    @property
    def n_blocks(self) -> int:
        """Number of ResBlocks (size -> 4)."""
        return self.log_size - 2

    @property
    def resolved_patch_res(self) -> int:
        return self.patch_res or max(4, self.size // 8)

    def channel(self, res: int) -> int:
        return dict(self.channels)[res]

    def to_dict(self) -> dict:
        return {"size": self.size, "channels": {str(r): c for r, c in self.channels},
                "blur_kernel": list(self.blur_kernel), "stddev_group": self.stddev_group,
                "stddev_feat": self.stddev_feat, "patch_res": self.patch_res}

    @classmethod
    def from_dict(cls, d: dict) -> "DiscriminatorConfig":
        channels = d.get("channels") or {}
        if not channels and "channel_multiplier" in d:
            channels = default_channels(int(d["size"]), int(d["channel_multiplier"]))
        if isinstance(channels, dict):
            channels = channels.items()
        return cls(size=int(d["size"]),
                   channels=tuple(sorted((int(r), int(c)) for r, c in channels)),
                   blur_kernel=tuple(int(k) for k in d.get("blur_kernel", (1, 3, 3, 1))),
                   stddev_group=int(d.get("stddev_group", 4)),
                   stddev_feat=int(d.get("stddev_feat", 1)),
                   patch_res=int(d.get("patch_res", 0)))


# --------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------
class ConvLayer(nn.Module):
    """rosinality ``ConvLayer``: [Blur] + EqualConv2d + [FusedLeakyReLU].

    ``downsample``: blur with ``make_kernel(blur_kernel)`` padded ((p+1)//2, p//2),
    p = len(blur) - 2 + k - 1, then a stride-2 VALID conv; otherwise a 'same' conv (padding k // 2).
    With ``activate`` the bias belongs to the fused leaky ReLU (the conv has none), as in torch.
    """
    out_channels: int
    kernel_size: int
    downsample: bool = False
    blur_kernel: Tuple[int, ...] = (1, 3, 3, 1)
    bias: bool = True
    activate: bool = True

    @nn.compact
    def __call__(self, x):
        in_ch, k = x.shape[-1], self.kernel_size
        weight = self.param("weight", nn.initializers.normal(1.0), (k, k, in_ch, self.out_channels))
        weight = weight * (1.0 / math.sqrt(in_ch * k * k))
        if self.downsample:
            p = (len(self.blur_kernel) - 2) + (k - 1)
            x = ops.upfirdn2d(x, ops.make_kernel(self.blur_kernel), pad=((p + 1) // 2, p // 2))
            stride, padding = (2, 2), "VALID"
        else:
            stride, padding = (1, 1), [(k // 2, k // 2)] * 2
        out = lax.conv_general_dilated(x, weight.astype(x.dtype), stride, padding,
                                       dimension_numbers=_DN, precision=PRECISION)
        b = self.param("bias", nn.initializers.zeros, (self.out_channels,)) if self.bias else None
        if self.activate:   # FusedLeakyReLU(bias), or ScaledLeakyReLU(0.2) without a bias
            return ops.fused_leaky_relu(out, b)
        return out if b is None else out + b


class ResBlock(nn.Module):
    """rosinality ``ResBlock``: conv1 (3x3), conv2 (3x3, down), skip (1x1, down, linear); (out+skip)/sqrt2.

    ``return_conv2=True`` returns conv2's output alone (what the patch discriminator takes).
    """
    out_channels: int
    blur_kernel: Tuple[int, ...] = (1, 3, 3, 1)

    @nn.compact
    def __call__(self, x, return_conv2: bool = False):
        in_ch = x.shape[-1]
        out = ConvLayer(in_ch, 3, name="conv1")(x)
        out = ConvLayer(self.out_channels, 3, downsample=True, blur_kernel=self.blur_kernel,
                        name="conv2")(out)
        if return_conv2:
            return out
        skip = ConvLayer(self.out_channels, 1, downsample=True, blur_kernel=self.blur_kernel,
                         bias=False, activate=False, name="skip")(x)
        return (out + skip) / math.sqrt(2.0)


def minibatch_stddev(x, group_size: int, n_feat: int):
    """rosinality's minibatch standard deviation on NHWC; returns x with ``n_feat`` channels appended.

    torch views [N, C, H, W] as (group, N // group, F, C // F, H, W): sample n sits in group slot
    n // (N // group) and is compared with the samples n % (N // group) + j * (N // group).
    """
    n, h, w, c = x.shape
    group = min(n, group_size)
    if n % group:
        raise ValueError(f"minibatch std-dev: batch size {n} is not divisible by the group size "
                         f"{group} (min(batch, stddev_group={group_size}))")
    m = n // group
    y = x.reshape(group, m, h, w, n_feat, c // n_feat)
    var = jnp.mean(jnp.square(y - jnp.mean(y, axis=0, keepdims=True)), axis=0)   # biased, [m,h,w,F,c/F]
    std = jnp.sqrt(var + 1e-8)
    std = jnp.mean(std, axis=(1, 2, 4))                                             # [m, F]
    std = jnp.tile(std, (group, 1))                                                 # [n, F]: n -> n % m
    std = jnp.broadcast_to(std[:, None, None, :], (n, h, w, n_feat)).astype(x.dtype)
    return jnp.concatenate([x, std], axis=-1)


class Discriminator(nn.Module):
    """rosinality ``Discriminator`` (image-level logits) with the few-shot patch head (patch logits)."""
    config: DiscriminatorConfig

    @nn.compact
    def __call__(self, x, patch: bool = False):
        """x: NHWC images in [-1, 1]. patch=False -> image-level logits [N, 1] (rosinality forward: ConvLayer
        1x1 from RGB, ResBlocks down to 4x4, minibatch std-dev with group=min(N, stddev_group), final 3x3
        ConvLayer, EqualLinear(fused lrelu), EqualLinear -> 1).
        patch=True -> patch-level logits [N, r, r, 1] (few-shot-gan-adaptation ``Patch_Discriminator`` with
        ``Extra``): run the blocks until the ResBlock whose conv2 output has resolution
        r = ``resolved_patch_res``, take that conv2 output (before the skip-add, as the released code does),
        apply the head ``ConvLayer(C, 1, 3)`` (EqualConv2d 3x3 no bias + FusedLeakyReLU with bias) and
        return early."""
        cfg = self.config
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"discriminator input must be NHWC with 3 channels, got shape {x.shape}")
        if x.shape[1] != cfg.size or x.shape[2] != cfg.size:
            raise ValueError(f"discriminator of size {cfg.size} got {x.shape[1]}x{x.shape[2]} images")
        bk = cfg.blur_kernel
        out = ConvLayer(cfg.channel(cfg.size), 1, name="convs_0")(x)
        res = cfg.size
        patch_res = cfg.resolved_patch_res
        for i in range(1, cfg.n_blocks + 1):
            res //= 2
            block = ResBlock(cfg.channel(res), bk, name=f"convs_{i}")
            if patch and res == patch_res:
                feat = block(out, return_conv2=True)
                return ConvLayer(1, 3, name="patch_head")(feat)
            out = block(out)
        out = minibatch_stddev(out, cfg.stddev_group, cfg.stddev_feat)
        out = ConvLayer(cfg.channel(4), 3, name="final_conv")(out)
        out = jnp.transpose(out, (0, 3, 1, 2)).reshape(out.shape[0], -1)   # torch's NCHW flatten
        out = EqualLinear(cfg.channel(4), activation=True, name="final_linear_0")(out)
        return EqualLinear(1, name="final_linear_1")(out)


# --------------------------------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------------------------------
def _as_config(config) -> DiscriminatorConfig:
    return config if isinstance(config, DiscriminatorConfig) else DiscriminatorConfig.from_dict(config)


def _rosinality_init(shapes, key):
    """Fill a tree of parameter shapes: every ``weight`` N(0, 1), every ``bias`` 0.

    All weights come from one ``jax.random.normal`` draw, cut into pieces in tree order (one random
    kernel to compile instead of one per shape; XLA:CPU compiles threefry slowly).
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    names = [getattr(path[-1], "key", str(path[-1])) for path, _ in leaves]
    unknown = sorted({n for n in names if n not in ("weight", "bias")})
    if unknown:
        raise ValueError(f"no rosinality initialiser for parameters named {unknown}")
    sizes = [int(np.prod(leaf.shape)) if n == "weight" else 0 for n, (_, leaf) in zip(names, leaves)]
    flat = jax.random.normal(key, (max(sum(sizes), 1),), jnp.float32)
    try:
        flat = np.asarray(flat)
    except jax.errors.TracerArrayConversionError:  # called under a transformation: stay traced
        pass
    out, offset = [], 0
    for n, size, (_, leaf) in zip(names, sizes, leaves):
        if n == "weight":
            out.append(flat[offset:offset + size].reshape(leaf.shape))
            offset += size
        else:
            out.append(np.zeros(leaf.shape, np.float32))
    return jax.tree_util.tree_unflatten(treedef, out)


def init_params(config, key) -> dict:
    """Random params as rosinality initialises them (weights N(0, 1), biases 0), including ``patch_head``.

    The parameter tree is the union of the image path and the patch path (both traced, shapes only).
    """
    cfg = _as_config(config)
    x = jax.ShapeDtypeStruct((1, cfg.size, cfg.size, 3), jnp.float32)
    module = Discriminator(cfg)
    rng = jax.random.PRNGKey(0)

    def shapes():
        params = dict(module.init(rng, x)["params"])
        params["patch_head"] = module.init(rng, x, patch=True)["params"]["patch_head"]
        return params
    return _rosinality_init(jax.eval_shape(shapes), key)


def with_patch_head(config, params, key) -> dict:
    """``params`` plus a freshly initialised ``patch_head`` (N(0,1) weight, zero bias) if it has none."""
    cfg = _as_config(config)
    if "patch_head" in params:
        return params
    r = cfg.resolved_patch_res
    x = jax.ShapeDtypeStruct((1, r, r, cfg.channel(r)), jnp.float32)
    shapes = jax.eval_shape(lambda: ConvLayer(1, 3).init(jax.random.PRNGKey(0), x)["params"])
    out = dict(params)
    out["patch_head"] = dict(_rosinality_init(dict(shapes), key))
    return out


# --------------------------------------------------------------------------------------------------
# R1
# --------------------------------------------------------------------------------------------------
def r1_penalty(apply_fn: Callable[[Any, jnp.ndarray], jnp.ndarray], params, real):
    """few-shot ``d_r1_loss``: mean over the batch of ||d sum(logits) / d real||^2.

    ``apply_fn(params, x)`` returns logits of any shape [N, ...]; per-sample logits with more than one
    element (patch logits) are first averaged (train.py: ``real_pred.view(N, -1).mean(1)``).
    """
    n = real.shape[0]

    def total(x):
        logits = apply_fn(params, x).reshape(n, -1)
        if logits.shape[1] > 1:
            logits = jnp.mean(logits, axis=1)
        return jnp.sum(logits)

    grad = jax.grad(total)(real)
    return jnp.mean(jnp.sum(jnp.square(grad).reshape(n, -1), axis=1))


# --------------------------------------------------------------------------------------------------
# Conversion from the PyTorch state_dict
# --------------------------------------------------------------------------------------------------
def _select_discriminator(obj: Any, discriminator_key: str, source: str) -> Dict[str, np.ndarray]:
    if not isinstance(obj, dict):
        raise ConversionError(f"{source}: expected a dict, got {type(obj).__name__}")
    if discriminator_key in obj and isinstance(obj[discriminator_key], dict):
        sd = obj[discriminator_key]
    elif discriminator_key in obj:
        raise ConversionError(f"{source}: {discriminator_key!r} holds a {type(obj[discriminator_key]).__name__}, "
                              "not a discriminator state_dict (a dict of named tensors); name the entry "
                              "that holds one with --discriminator_key")
    elif not any(str(k).split(".", 2)[0] in ("convs", "final_conv", "final_linear")
                 or str(k).startswith("module.") for k in obj):
        present = sorted(str(k) for k in obj)
        raise ConversionError(f"{source}: no {discriminator_key!r} discriminator state_dict in the "
                              f"checkpoint (it holds {present})")
    else:
        sd = obj
    return strip_prefix(dict(sd), "module.")


def infer_config(sd, source: str = "state_dict") -> DiscriminatorConfig:
    """Size from the number of ResBlocks, channels from the conv weights, stddev_feat from final_conv."""
    if "convs.0.0.weight" not in sd or "final_conv.0.weight" not in sd:
        sample = list(sd)[:5]
        raise ConversionError(f"{source}: not a StyleGAN2 discriminator state_dict (no 'convs.0.0.weight' "
                              f"/ 'final_conv.0.weight'; first keys: {sample})")
    n_blocks = 0
    while f"convs.{n_blocks + 1}.conv1.0.weight" in sd:
        n_blocks += 1
    if n_blocks < 1:
        raise ConversionError(f"{source}: discriminator has no ResBlock ('convs.1.conv1.0.weight' missing)")
    size = 2 ** (n_blocks + 2)
    channels = {size: int(np.shape(sd["convs.0.0.weight"])[0])}
    res = size
    for i in range(1, n_blocks + 1):
        res //= 2
        key = f"convs.{i}.conv2.1.weight"
        if key not in sd:
            raise ConversionError(f"{source}: missing key {key!r}")
        channels[res] = int(np.shape(sd[key])[0])
    feat = int(np.shape(sd["final_conv.0.weight"])[1]) - channels[4]
    if feat < 1:
        raise ConversionError(f"{source}: 'final_conv.0.weight' has shape {tuple(np.shape(sd['final_conv.0.weight']))}"
                              f", expected [C4, C4 + stddev_feat, 3, 3] with C4 = {channels[4]}")
    return DiscriminatorConfig(size=size, channels=tuple(sorted(channels.items())), stddev_feat=feat)


def convert_state_dict(obj: Any, source: str = "state_dict", discriminator_key: str = "d"):
    """rosinality / few-shot-gan-adaptation discriminator -> (config dict, params without patch head).

    ``obj``: a training checkpoint ``{"d": state_dict, "g": ..., "g_ema": ...}`` or a bare D state_dict
    (``module.`` prefixes stripped). Every tensor must be used; blur kernels must be make_kernel([1,3,3,1]).
    """
    sd = _select_discriminator(obj, discriminator_key, source)
    cfg = infer_config(sd, source=source)
    r = StateDictReader(sd, source=source)
    blur = ops.make_kernel(cfg.blur_kernel)

    def check_kernel(key):
        value = r.take(key, blur.shape)
        if not np.allclose(value, blur, atol=1e-6):
            raise ConversionError(f"{source}: blur kernel {key!r} is not make_kernel({list(cfg.blur_kernel)}); "
                                  "other blur kernels are not supported")

    def conv(prefix, in_ch, out_ch, k, bias_key=None):
        p = {"weight": conv_oihw_to_hwio(r.take(f"{prefix}.weight", (out_ch, in_ch, k, k)))}
        if bias_key is not None:
            p["bias"] = r.take(bias_key, (out_ch,))
        return p

    def linear(prefix, in_dim, out_dim):
        return {"weight": linear_oi_to_io(r.take(f"{prefix}.weight", (out_dim, in_dim))),
                "bias": r.take(f"{prefix}.bias", (out_dim,))}

    params = {"convs_0": conv("convs.0.0", 3, cfg.channel(cfg.size), 1, "convs.0.1.bias")}
    in_ch, res = cfg.channel(cfg.size), cfg.size
    for i in range(1, cfg.n_blocks + 1):
        res //= 2
        out_ch = cfg.channel(res)
        b = f"convs.{i}"
        check_kernel(f"{b}.conv2.0.kernel")
        check_kernel(f"{b}.skip.0.kernel")
        params[f"convs_{i}"] = {
            "conv1": conv(f"{b}.conv1.0", in_ch, in_ch, 3, f"{b}.conv1.1.bias"),
            "conv2": conv(f"{b}.conv2.1", in_ch, out_ch, 3, f"{b}.conv2.2.bias"),
            "skip": conv(f"{b}.skip.1", in_ch, out_ch, 1),
        }
        in_ch = out_ch
    c4 = cfg.channel(4)
    params["final_conv"] = conv("final_conv.0", c4 + cfg.stddev_feat, c4, 3, "final_conv.1.bias")
    params["final_linear_0"] = linear("final_linear.0", c4 * 16, c4)
    params["final_linear_1"] = linear("final_linear.1", c4, 1)
    r.finish()
    return cfg.to_dict(), params


def load_discriminator(directory):
    """A discriminator converted with ``convert/torch_to_flax.py --kind=discriminator``
    -> (DiscriminatorConfig, Discriminator, params)."""
    from dds_jax import checkpoint
    m = checkpoint.load_model(directory, expect_kind="discriminator")
    cfg = DiscriminatorConfig.from_dict(m.config)
    return cfg, Discriminator(cfg), m.params
