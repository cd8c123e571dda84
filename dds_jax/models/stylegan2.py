"""StyleGAN2 generator (rosinality ``stylegan2-pytorch`` / DDS ``stylegan2.py``) in Flax, NHWC.

Parameters are stored raw, as in the PyTorch checkpoint; the equalised-learning-rate scales
(1/sqrt(fan_in), x lr_mul) are applied at run time exactly as rosinality does, so converted weights
reproduce the original numbers. The forward pass returns the image and every StyledConv output (the
features the one-shot segmenter consumes).

Variables of a ``Generator``:
  ``params``   the trainable weights;
  ``buffers``  ``noise_<i>`` [1, r, r, 1]: the checkpoint's fixed noise inputs (``randomize_noise=False``).
"""
import dataclasses
import functools
import math
import re
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.ad_checkpoint import checkpoint_name

from dds_jax import ops
from dds_jax.conversion.statedict import ConversionError, StateDictReader, strip_prefix

PRECISION = lax.Precision.HIGHEST
CONV_OUT = "modconv_out"   # checkpoint name of every modulated convolution's output (kept by remat)
REMAT = ("none", "convs", "layers", "layers_convs", "synthesis")


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------
def default_channels(size: int, channel_multiplier: int = 2) -> Dict[int, int]:
    """rosinality's channel table (config-f with channel_multiplier=2)."""
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier,
             128: 128 * channel_multiplier, 256: 64 * channel_multiplier,
             512: 32 * channel_multiplier, 1024: 16 * channel_multiplier}
    return {r: c for r, c in table.items() if r <= size}


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    size: int
    style_dim: int = 512
    n_mlp: int = 8
    channels: Tuple[Tuple[int, int], ...] = ()   # ((resolution, channels), ...) 4 .. size
    lr_mlp: float = 0.01
    blur_kernel: Tuple[int, ...] = (1, 3, 3, 1)

    def __post_init__(self):
        log_size = int(math.log2(self.size))
        if 2 ** log_size != self.size or self.size < 4:
            raise ValueError(f"generator size must be a power of two >= 4, got {self.size}")
        if not self.channels:
            object.__setattr__(self, "channels", tuple(sorted(default_channels(self.size).items())))
        object.__setattr__(self, "channels", tuple((int(r), int(c)) for r, c in self.channels))
        missing = [2 ** i for i in range(2, log_size + 1) if 2 ** i not in dict(self.channels)]
        if missing:
            raise ValueError(f"channels table lacks resolutions {missing}")

    @property
    def log_size(self) -> int:
        return int(math.log2(self.size))

    @property
    def n_latent(self) -> int:
        return self.log_size * 2 - 2

    @property
    def num_layers(self) -> int:
        return (self.log_size - 2) * 2 + 1

    def channel(self, res: int) -> int:
        return dict(self.channels)[res]

    @property
    def feature_sizes(self) -> Tuple[int, ...]:
        return (4,) + tuple(2 ** i for i in range(3, self.log_size + 1) for _ in range(2))

    @property
    def feature_channels(self) -> Tuple[int, ...]:
        return tuple(self.channel(r) for r in self.feature_sizes)

    def noise_shapes(self):
        """[(1, r, r, 1)] per noise input, in layer order (same sizes as the features)."""
        return [(1, r, r, 1) for r in self.feature_sizes]

    def to_dict(self) -> dict:
        return {"size": self.size, "style_dim": self.style_dim, "n_mlp": self.n_mlp,
                "channels": {str(r): c for r, c in self.channels}, "lr_mlp": self.lr_mlp,
                "blur_kernel": list(self.blur_kernel)}

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorConfig":
        channels = d.get("channels") or {}
        if not channels and "channel_multiplier" in d:
            channels = default_channels(int(d["size"]), int(d["channel_multiplier"]))
        return cls(size=int(d["size"]), style_dim=int(d.get("style_dim", 512)),
                   n_mlp=int(d.get("n_mlp", 8)),
                   channels=tuple(sorted((int(r), int(c)) for r, c in channels.items())),
                   lr_mlp=float(d.get("lr_mlp", 0.01)),
                   blur_kernel=tuple(int(k) for k in d.get("blur_kernel", (1, 3, 3, 1))))


# --------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------
class EqualLinear(nn.Module):
    """rosinality ``EqualLinear``: weight [in, out] stored raw, scaled by lr_mul/sqrt(in) at run time."""
    features: int
    lr_mul: float = 1.0
    bias_init: float = 0.0
    activation: bool = False
    precision: str = "float32"

    @nn.compact
    def __call__(self, x):
        in_dim = x.shape[-1]
        weight = self.param("weight", lambda k, s: jax.random.normal(k, s) / self.lr_mul,
                            (in_dim, self.features))
        bias = self.param("bias", lambda k, s: jnp.full(s, self.bias_init), (self.features,))
        scale = self.lr_mul / math.sqrt(in_dim)
        out = jnp.dot(x, weight * scale, precision=ops.precision_spec(self.precision).dense)
        if self.activation:
            return ops.fused_leaky_relu(out, bias * self.lr_mul)
        return out + bias * self.lr_mul


class MappingNetwork(nn.Module):
    """PixelNorm then ``n_mlp`` x EqualLinear(lr_mul) with fused leaky ReLU: z -> w."""
    style_dim: int
    n_mlp: int
    lr_mul: float
    precision: str = "float32"

    @nn.compact
    def __call__(self, z):
        x = z * lax.rsqrt(jnp.mean(z ** 2, axis=-1, keepdims=True) + 1e-8)
        for i in range(self.n_mlp):
            x = EqualLinear(self.style_dim, lr_mul=self.lr_mul, activation=True, precision=self.precision,
                            name=f"fc{i}")(x)
        return x




class ModulatedConv(nn.Module):
    """rosinality ``ModulatedConv2d`` (no down-sampling).

    ``fused=False`` (default; StyleGAN2's ``fused_modconv=False``) scales the input by the style, runs ONE
    convolution with the shared weight and scales the output by the demodulation coefficients, so a
    vmap over seeds stays one batched convolution; ``fused=True`` builds per-sample weights (rosinality's
    grouped conv). Both are the same function up to float rounding. Up-sampling is the transposed
    convolution (``ops.conv_transpose_stride2``) followed by the blur, as in rosinality.
    """
    out_channels: int
    kernel_size: int
    demodulate: bool = True
    upsample: bool = False
    blur_kernel: Tuple[int, ...] = (1, 3, 3, 1)
    fused: bool = False
    precision: str = "float32"

    @nn.compact
    def __call__(self, x, w):
        in_ch, k = x.shape[-1], self.kernel_size
        spec = ops.precision_spec(self.precision)
        weight = self.param("weight", nn.initializers.normal(1.0), (k, k, in_ch, self.out_channels))
        style = EqualLinear(in_ch, bias_init=1.0, precision=self.precision, name="modulation")(w)   # [N, in]
        weight = weight * (1.0 / math.sqrt(in_ch * k * k))

        def conv(inp, ker):
            # float32 / tf32 keep the input dtype (float64 under x64 stays float64); bf16 casts.
            dtype = inp.dtype if spec.dtype == jnp.float32 else spec.dtype
            acc = jnp.result_type(inp.dtype, jnp.float32)
            inp, ker = inp.astype(dtype), ker.astype(dtype)
            if self.upsample:
                out = ops.conv_transpose_stride2(inp, ker, spec.conv, acc)
            else:
                out = ops.conv2d(inp, ker, [(k // 2, k // 2)] * 2, spec.conv, acc)
            # the residual remat keeps (stored in the compute dtype); everything after it is recomputed
            return checkpoint_name(out.astype(dtype), CONV_OUT).astype(acc)

        if self.fused:
            per_sample = weight[None] * style[:, None, None, :, None]             # [N,k,k,in,out]
            if self.demodulate:
                d = lax.rsqrt(jnp.sum(per_sample ** 2, axis=(1, 2, 3), keepdims=True) + 1e-8)
                per_sample = per_sample * d
            out = jax.vmap(lambda xi, wi: conv(xi[None], wi)[0])(x, per_sample)
        else:
            out = conv(x * style[:, None, None, :], weight)
            if self.demodulate:
                sq = jnp.sum(weight ** 2, axis=(0, 1))                            # [in, out]
                d = lax.rsqrt(jnp.dot(style ** 2, sq, precision=spec.dense) + 1e-8)  # [N, out]
                out = out * d[:, None, None, :]
        if self.upsample:
            factor = 2
            p = (len(self.blur_kernel) - factor) - (k - 1)
            pad = ((p + 1) // 2 + factor - 1, p // 2 + 1)
            out = ops.upfirdn2d(out, ops.make_kernel(self.blur_kernel) * factor ** 2, pad=pad)
        return out


class StyledConv(nn.Module):
    """ModulatedConv + NoiseInjection (scalar strength) + FusedLeakyReLU (per-channel bias)."""
    out_channels: int
    upsample: bool = False
    blur_kernel: Tuple[int, ...] = (1, 3, 3, 1)
    fused: bool = False
    precision: str = "float32"

    @nn.compact
    def __call__(self, x, w, noise):
        out = ModulatedConv(self.out_channels, 3, upsample=self.upsample, blur_kernel=self.blur_kernel,
                            fused=self.fused, precision=self.precision, name="conv")(x, w)
        strength = self.param("noise_strength", nn.initializers.zeros, ())
        out = out + strength * noise
        bias = self.param("bias", nn.initializers.zeros, (self.out_channels,))
        return ops.fused_leaky_relu(out, bias)


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation + bias, plus the up-sampled skip (upfirdn2d up=2)."""
    blur_kernel: Tuple[int, ...] = (1, 3, 3, 1)
    fused: bool = False
    precision: str = "float32"

    @nn.compact
    def __call__(self, x, w, skip=None):
        out = ModulatedConv(3, 1, demodulate=False, fused=self.fused, precision=self.precision,
                            name="conv")(x, w)
        out = out + self.param("bias", nn.initializers.zeros, (3,))
        if skip is not None:
            factor = 2
            p = len(self.blur_kernel) - factor
            pad = ((p + 1) // 2 + factor - 1, p // 2)
            out = out + ops.upfirdn2d(skip, ops.make_kernel(self.blur_kernel) * factor ** 2,
                                      up=factor, pad=pad)
        return out


def _remat_policy(remat: str):
    return jax.checkpoint_policies.save_only_these_names(CONV_OUT) if remat.endswith("convs") else None


class Synthesis(nn.Module):
    """Constant input -> StyledConvs / ToRGBs. ``wplus`` [N, n_latent, style_dim].

    ``remat`` (memory of the gradient, not its value): ``"none"`` keeps every intermediate for the
    backward pass; ``"convs"`` keeps only the modulated convolutions' outputs and recomputes the cheap
    rest (modulation, noise, activation, blur); ``"layers"`` keeps only each layer's input and recomputes
    the layer, convolution included; ``"layers_convs"`` per layer, keeping conv outputs; ``"synthesis"``
    keeps nothing and recomputes the whole synthesis forward inside the backward pass (one extra forward
    pass; in DDS paper mode ``optimize.sequential_paper_grad`` also orders the two generators' backward
    passes, which is what keeps one generator's intermediates alive at a time)."""
    config: GeneratorConfig
    fused: bool = False
    remat: str = "none"
    precision: str = "float32"

    @nn.compact
    def __call__(self, wplus, noise: Sequence[jnp.ndarray]):
        cfg = self.config
        per_layer = self.remat.startswith("layers")
        styled = nn.remat(StyledConv, policy=_remat_policy(self.remat)) if per_layer else StyledConv
        to_rgb = nn.remat(ToRGB, policy=_remat_policy(self.remat)) if per_layer else ToRGB
        opts = dict(blur_kernel=cfg.blur_kernel, fused=self.fused, precision=self.precision)
        c4 = cfg.channel(4)
        const = self.param("const", nn.initializers.normal(1.0), (1, 4, 4, c4))
        out = jnp.broadcast_to(const, (wplus.shape[0], 4, 4, c4)).astype(wplus.dtype)
        out = styled(c4, name="conv1", **opts)(out, wplus[:, 0], noise[0])
        features = [out]
        skip = to_rgb(name="to_rgb1", **opts)(out, wplus[:, 1])
        i = 1
        for level, log_res in enumerate(range(3, cfg.log_size + 1)):
            ch = cfg.channel(2 ** log_res)
            out = styled(ch, upsample=True, name=f"convs_{2 * level}", **opts)(out, wplus[:, i], noise[i])
            features.append(out)
            out = styled(ch, name=f"convs_{2 * level + 1}", **opts)(out, wplus[:, i + 1], noise[i + 1])
            features.append(out)
            skip = to_rgb(name=f"to_rgbs_{level}", **opts)(out, wplus[:, i + 2], skip)
            i += 2
        return skip, features


class Generator(nn.Module):
    """rosinality ``Generator``: mapping network + synthesis network.

    ``__call__`` mirrors ``Generator.forward`` of the DDS code and returns ``(image NHWC, features)``.
    ``remat`` (see :class:`Synthesis`; values unchanged) and ``precision`` (``ops.PRECISIONS``: float32
    for parity, tf32 / bf16 for accelerators) change how it runs, not its variables.
    """
    config: GeneratorConfig
    fused: bool = False
    remat: str = "none"
    precision: str = "float32"

    def setup(self):
        cfg = self.config
        if self.remat not in REMAT:
            raise ValueError(f"Generator.remat = {self.remat!r}; one of {REMAT}")
        ops.precision_spec(self.precision)   # fails early on an unknown name
        self.mapping = MappingNetwork(cfg.style_dim, cfg.n_mlp, cfg.lr_mlp, precision=self.precision)
        synthesis = Synthesis if self.remat not in ("convs", "synthesis") else nn.remat(
            Synthesis, policy=_remat_policy(self.remat))
        self.synthesis = synthesis(cfg, fused=self.fused, remat=self.remat, precision=self.precision)
        self.noise_buffers = [self.variable("buffers", f"noise_{i}", jnp.zeros, s)
                              for i, s in enumerate(cfg.noise_shapes())]

    def style(self, z):
        """z [..., style_dim] -> w (rosinality ``g.style`` / ``get_latent``)."""
        return self.mapping(z)

    def buffer_noise(self):
        """The checkpoint's fixed noise inputs (``randomize_noise=False``)."""
        return [v.value for v in self.noise_buffers]

    def __call__(self, latents: Union[jnp.ndarray, Sequence[jnp.ndarray]], *,
                 input_is_latent: bool = False, truncation: float = 1.0,
                 truncation_latent: Optional[jnp.ndarray] = None,
                 inject_index: Optional[int] = None,
                 noise: Optional[Sequence[jnp.ndarray]] = None,
                 randomize_noise: bool = False):
        """latents: one array ([N, style_dim] z or w, or [N, n_latent, style_dim] W+) or two (style mixing,
        with ``inject_index``). ``noise``: a list of [N or 1, r, r, 1] arrays; else the checkpoint buffers,
        or fresh N(0,1) noise from the ``'noise'`` rng when ``randomize_noise``."""
        cfg = self.config
        styles = [latents] if isinstance(latents, jnp.ndarray) or hasattr(latents, "shape") else list(latents)
        if not input_is_latent:
            styles = [self.style(s) for s in styles]
        if truncation < 1:
            if truncation_latent is None:
                raise ValueError("truncation < 1 needs truncation_latent (see mean_latent)")
            styles = [truncate(s, truncation_latent, truncation) for s in styles]
        wplus = mix_styles(styles, cfg.n_latent, inject_index)
        batch = wplus.shape[0]
        if noise is None:
            if randomize_noise:
                rng = self.make_rng("noise")
                keys = jax.random.split(rng, cfg.num_layers)
                noise = [jax.random.normal(k, (batch,) + s[1:], wplus.dtype)
                         for k, s in zip(keys, cfg.noise_shapes())]
            else:
                noise = self.buffer_noise()
        if len(noise) != cfg.num_layers:
            raise ValueError(f"expected {cfg.num_layers} noise inputs, got {len(noise)}")
        return self.synthesis(wplus, noise)


def to_wplus(w, n_latent: int):
    """One w [B, D] for every layer: W+ [B, n_latent, D]."""
    return jnp.repeat(w[:, None, :], n_latent, axis=1)


def truncate(w, w_avg, psi):
    """rosinality's truncation trick ``w_avg + psi (w - w_avg)`` (psi may be traced)."""
    return w_avg + psi * (w - w_avg)


def mix_styles(styles, n_latent: int, inject_index: Optional[int] = None):
    """Broadcast one w to all ``n_latent`` layers (or pass W+ through), or mix two at ``inject_index``."""
    if len(styles) == 1:
        s = styles[0]
        if s.ndim == 3:
            if s.shape[1] != n_latent:
                raise ValueError(f"W+ latent has {s.shape[1]} layers, the generator needs {n_latent}")
            return s
        return to_wplus(s, n_latent)
    if len(styles) != 2:
        raise ValueError(f"style mixing takes 2 latents, got {len(styles)}")
    if inject_index is None or not 1 <= inject_index < n_latent:
        raise ValueError(f"style mixing needs inject_index in [1, {n_latent - 1}], got {inject_index}")
    a = jnp.repeat(styles[0][:, None, :], inject_index, axis=1)
    b = jnp.repeat(styles[1][:, None, :], n_latent - inject_index, axis=1)
    return jnp.concatenate([a, b], axis=1)


def describe_params(variables) -> dict:
    """The config fields that fix the parameter shapes (as ``GeneratorConfig.to_dict`` writes them),
    read from a variables tree: ``size``, ``style_dim``, ``n_mlp``, ``channels``."""
    mapping, synthesis = variables["params"]["mapping"], variables["params"]["synthesis"]
    n_mlp = sum(1 for k in mapping if re.fullmatch(r"fc\d+", k))
    n_up = sum(1 for k in synthesis if re.fullmatch(r"to_rgbs_\d+", k))
    channels = {"4": int(np.shape(synthesis["const"])[-1])}
    channels.update({str(8 * 2 ** i): int(np.shape(synthesis[f"convs_{2 * i}"]["bias"])[0]) for i in range(n_up)})
    return {"size": 4 * 2 ** n_up, "style_dim": int(np.shape(mapping["fc0"]["weight"])[0]), "n_mlp": n_mlp,
            "channels": channels}


# --------------------------------------------------------------------------------------------------
# Functional helpers
# --------------------------------------------------------------------------------------------------
def mean_latent(generator: Generator, variables, key, n: int = 4096):
    """Mean of ``style(z)`` over ``n`` z ~ N(0, I) drawn from ``key`` -> [style_dim]."""
    z = jax.random.normal(key, (n, generator.config.style_dim))
    return generator.apply(variables, z, method=Generator.style).mean(0)


def init_variables(config: GeneratorConfig, key, fused: bool = False):
    """Randomly initialised variables (params + noise buffers), as the PyTorch constructor does.

    One compiled program per architecture (a persistent-cache hit after the first): run eagerly, the
    init's forward pass and every initializer compile one small program per operation and shape."""
    return _init_variables(config, key, fused)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _init_variables(config: GeneratorConfig, key, fused: bool):
    gen = Generator(config, fused=fused)
    k1, k2 = jax.random.split(key)
    z = jnp.zeros((1, config.style_dim))
    variables = gen.init(k1, z)
    keys = jax.random.split(k2, config.num_layers)
    buffers = {f"noise_{i}": jax.random.normal(k, s) for i, (k, s) in enumerate(zip(keys, config.noise_shapes()))}
    return {"params": variables["params"], "buffers": buffers}


# --------------------------------------------------------------------------------------------------
# Conversion from the PyTorch state_dict
# --------------------------------------------------------------------------------------------------
def infer_config(sd: Dict[str, np.ndarray], lr_mlp: float = 0.01, source: str = "state_dict") -> GeneratorConfig:
    """Architecture from tensor shapes: size from the ToRGB count, channels from each conv weight."""
    missing = [k for k in ("style.1.weight", "conv1.conv.weight") if k not in sd]
    if len(missing) == 2:
        raise ConversionError(f"{source}: not a StyleGAN2 generator state_dict (neither 'style.1.weight' "
                              f"nor 'conv1.conv.weight'; first keys: {list(sd)[:5]})")
    if missing:
        raise ConversionError(f"{source}: missing key {missing[0]!r} of a StyleGAN2 generator state_dict; "
                              "re-export the complete generator (g_ema) state_dict")
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in sd:
        n_mlp += 1
    style_dim = int(sd["style.1.weight"].shape[1])
    n_rgbs = 0
    while f"to_rgbs.{n_rgbs}.conv.weight" in sd:
        n_rgbs += 1
    size = 2 ** (n_rgbs + 2)
    channels = {4: int(sd["conv1.conv.weight"].shape[1])}
    for level in range(n_rgbs):
        key = f"convs.{2 * level}.conv.weight"
        if key not in sd:
            raise ConversionError(f"{source}: missing key {key!r}")
        channels[2 ** (level + 3)] = int(sd[key].shape[1])
    blur = (1, 3, 3, 1)
    return GeneratorConfig(size=size, style_dim=style_dim, n_mlp=n_mlp,
                           channels=tuple(sorted(channels.items())), lr_mlp=lr_mlp, blur_kernel=blur)


def _select_generator(obj: Any, generator_key: str, source: str):
    """The generator state_dict inside a checkpoint: ``{'g_ema': ...}``, ``{'g': ...}`` or bare."""
    if not isinstance(obj, dict):
        raise ConversionError(f"{source}: expected a dict, got {type(obj).__name__}")
    latent_avg = None
    if generator_key in obj and isinstance(obj[generator_key], dict):
        sd = obj[generator_key]
        latent_avg = obj.get("latent_avg")
    elif generator_key in obj:
        raise ConversionError(f"{source}: {generator_key!r} holds a {type(obj[generator_key]).__name__}, not a "
                              "generator state_dict (a dict of named tensors); convert the checkpoint that "
                              "train.py saved, or name the entry that holds one with --generator_key")
    elif any(k in obj for k in ("g_ema", "g", "d")) and not any(k.startswith("style.") for k in obj):
        present = [k for k in obj if isinstance(obj[k], dict)]
        raise ConversionError(f"{source}: no {generator_key!r} in the checkpoint (it holds {present})")
    else:
        sd = obj
    sd = strip_prefix({k: v for k, v in sd.items()}, "module.")
    return sd, latent_avg


def convert_state_dict(obj: Any, source: str = "state_dict", generator_key: str = "g_ema",
                       lr_mlp: float = 0.01):
    """rosinality / few-shot-gan-adaptation generator -> (config dict, variables).

    ``variables`` = ``{"params": ..., "buffers": {"noise_i": ...}}`` (+ ``"latent_avg"`` in config-free
    form under ``variables["latent_avg"]`` when the checkpoint has one).
    """
    sd, latent_avg = _select_generator(obj, generator_key, source)
    cfg = infer_config(sd, lr_mlp=lr_mlp, source=source)
    r = StateDictReader(sd, source=source)
    D = cfg.style_dim
    from dds_jax.conversion.statedict import conv_oihw_to_hwio, linear_oi_to_io

    def linear(prefix, in_dim, out_dim):
        return {"weight": linear_oi_to_io(r.take(f"{prefix}.weight", (out_dim, in_dim))),
                "bias": r.take(f"{prefix}.bias", (out_dim,))}

    def modconv(prefix, in_ch, out_ch, k, upsample):
        w = r.take(f"{prefix}.weight", (1, out_ch, in_ch, k, k))[0]
        if upsample:
            _check_kernel(r, f"{prefix}.blur.kernel", ops.make_kernel(cfg.blur_kernel) * 4)
        return {"weight": conv_oihw_to_hwio(w), "modulation": linear(f"{prefix}.modulation", D, in_ch)}

    def styled(prefix, in_ch, out_ch, upsample):
        return {"conv": modconv(f"{prefix}.conv", in_ch, out_ch, 3, upsample),
                "noise_strength": r.take(f"{prefix}.noise.weight", (1,)).reshape(()),
                "bias": r.take(f"{prefix}.activate.bias", (out_ch,))}

    def to_rgb(prefix, in_ch, upsample):
        if upsample:
            _check_kernel(r, f"{prefix}.upsample.kernel", ops.make_kernel(cfg.blur_kernel) * 4)
        return {"conv": modconv(f"{prefix}.conv", in_ch, 3, 1, False),
                "bias": r.take(f"{prefix}.bias", (1, 3, 1, 1)).reshape(3)}

    mapping = {f"fc{i}": linear(f"style.{i + 1}", D, D) for i in range(cfg.n_mlp)}
    c4 = cfg.channel(4)
    synthesis = {"const": np.transpose(r.take("input.input", (1, c4, 4, 4)), (0, 2, 3, 1)),
                 "conv1": styled("conv1", c4, c4, False),
                 "to_rgb1": to_rgb("to_rgb1", c4, False)}
    in_ch = c4
    for level, log_res in enumerate(range(3, cfg.log_size + 1)):
        ch = cfg.channel(2 ** log_res)
        synthesis[f"convs_{2 * level}"] = styled(f"convs.{2 * level}", in_ch, ch, True)
        synthesis[f"convs_{2 * level + 1}"] = styled(f"convs.{2 * level + 1}", ch, ch, False)
        synthesis[f"to_rgbs_{level}"] = to_rgb(f"to_rgbs.{level}", ch, True)
        in_ch = ch
    buffers = {}
    for i, shape in enumerate(cfg.noise_shapes()):
        key = f"noises.noise_{i}"
        if key in r:
            buffers[f"noise_{i}"] = r.take(key, (1, 1, shape[1], shape[2])).reshape(shape)
        else:  # some exports drop buffers; fall back to zeros only with an explicit record
            raise ConversionError(f"{source}: missing noise buffer {key!r} (expected shape "
                                  f"{(1, 1, shape[1], shape[2])})")
    r.finish()
    variables = {"params": {"mapping": mapping, "synthesis": synthesis}, "buffers": buffers}
    config = cfg.to_dict()
    if latent_avg is not None:
        la = np.asarray(latent_avg, np.float32).reshape(-1)
        if la.shape != (D,):
            raise ConversionError(f"{source}: latent_avg has shape {la.shape}, expected {(D,)}")
        variables["latent_avg"] = la
    return config, variables


def _check_kernel(r: StateDictReader, key: str, expected: np.ndarray):
    value = r.take(key, expected.shape)
    if not np.allclose(value, expected, atol=1e-6):
        raise ConversionError(f"{r.source}: blur kernel {key!r} is not make_kernel([1, 3, 3, 1]) * 4; "
                              "other blur kernels are not supported")


# --------------------------------------------------------------------------------------------------
# Loading a converted model
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class LoadedGenerator:
    config: GeneratorConfig
    module: Generator
    variables: dict            # {"params", "buffers"}
    latent_avg: Optional[np.ndarray] = None


def from_variables(config: Union[dict, GeneratorConfig], variables: dict, fused: bool = False) -> LoadedGenerator:
    cfg = config if isinstance(config, GeneratorConfig) else GeneratorConfig.from_dict(config)
    latent_avg = variables.get("latent_avg")
    v = {"params": variables["params"], "buffers": variables["buffers"]}
    return LoadedGenerator(cfg, Generator(cfg, fused=fused), v,
                           None if latent_avg is None else np.asarray(latent_avg))


def load_generator(directory, fused: bool = False) -> LoadedGenerator:
    """A generator converted with ``convert/torch_to_flax.py --kind=stylegan2``."""
    from dds_jax import checkpoint
    m = checkpoint.load_model(directory, expect_kind="stylegan2")
    return from_variables(m.config, m.params, fused=fused)
