"""Two-generator feature blending: ONE image that is G_in inside a part and G_out outside it.

A few-shot adapted pair shares the architecture, and the feature maps of the same latent correspond
position by position. The blended synthesis runs one stream of activations through the layers of both
generators and mixes their outputs at every layer by the part mask at that layer's resolution
(internal-representation collaging, Suzuki et al. 2018; the masked structure tensor of Barbershop,
Zhu et al. 2021)::

    h_l   = m_l · L_l^in(h_{l-1}, w_in) + (1 - m_l) · L_l^out(h_{l-1}, w_out)      (every StyledConv)
    rgb_l = m_l · RGB_l^in(h_l, rgb_{l-1}) + (1 - m_l) · RGB_l^out(h_l, rgb_{l-1})  (every ToRGB skip)

Below ``start_res`` only G_out runs (m_l = 0): the coarse layers then fix the shared layout and the
part keeps the outside generator's geometry. m_l is the part mask pooled down to the layer's
resolution (area average or max) and feathered (a Gaussian of ``feather`` pixels of that layer), times the layer's weight.
Each generator uses its own fixed noise inputs. Because the next layers of BOTH generators read the
mixed activations, the seam is healed by the network instead of being a pixel cut.

Everything here is a pure function of the variables of the two generators (plain pytrees), one problem
or a batch ([N, ...] arrays), so it jits and vmaps like the rest of :mod:`dds_jax.dds.optimize`.
"""
from typing import List, Optional, Sequence, Tuple

import jax.numpy as jnp

from dds_jax import ops
from dds_jax.models import stylegan2 as sg


def check_same_architecture(config_in: sg.GeneratorConfig, config_out: sg.GeneratorConfig) -> None:
    """ValueError unless both generators have the same layers (the blend mixes them position by position)."""
    for field in ("size", "style_dim", "channels", "blur_kernel"):
        a, b = getattr(config_in, field), getattr(config_out, field)
        if a != b:
            raise ValueError(f"the two-generator blend needs generators of the same architecture; they differ "
                             f"in {field}: {a} vs {b}")


def layer_resolutions(config: sg.GeneratorConfig) -> Tuple[int, ...]:
    """The resolution of every mixed layer in synthesis order: conv1, to_rgb1, then per resolution r
    (upsampling conv, conv, to_rgb) -> (4, 4, 8, 8, 8, 16, 16, 16, ...). len = ``n_layers``."""
    out = [4, 4]
    for log_res in range(3, config.log_size + 1):
        out += [2 ** log_res] * 3
    return tuple(out)


def n_layers(config: sg.GeneratorConfig) -> int:
    return len(layer_resolutions(config))


POOLS = ("max", "area")


def downsample(mask, res: int, pool: str = "area"):
    """[N, H, W, 1] -> [N, res, res, 1] (H a multiple of res): ``area``, the fraction of each cell
    covered by the mask; ``max``, 1 where the cell touches the part (StyleMapGAN's max-pooled masks:
    the part keeps ITS generator's features at every layer, so inside it the blend is G_in's own image)."""
    n, h, w, c = mask.shape
    if pool not in POOLS:
        raise ValueError(f"blend pool {pool!r}; one of {POOLS}")
    if h == res and w == res:
        return mask
    if h % res or w % res:
        raise ValueError(f"mask of {h}x{w} cannot be pooled to {res}x{res}")
    cells = mask.reshape(n, res, h // res, res, w // res, c)
    return jnp.max(cells, axis=(2, 4)) if pool == "max" else jnp.mean(cells, axis=(2, 4))


def soft_masks(mask, config: sg.GeneratorConfig, start_res: int, feather: float,
               weights: Optional[Sequence[float]] = None, pool: str = "area") -> List[jnp.ndarray]:
    """m_l for every layer of :func:`layer_resolutions`: 0 below ``start_res``, else the mask pooled
    to the layer's resolution (:func:`downsample`), feathered by ``feather`` pixels of that layer, times
    ``weights[l]`` (default 1). ``mask`` [N, H, W, 1] in [0, 1] at the image resolution."""
    res = layer_resolutions(config)
    if not 1 <= int(start_res) <= config.size:
        raise ValueError(f"blend_start = {start_res}: the first blended resolution must be between 4 and the "
                         f"generator's size {config.size}")
    if weights is not None and len(weights) != len(res):
        raise ValueError(f"blend weights: {len(weights)} given, the generator has {len(res)} mixed layers")
    mask = jnp.asarray(mask, jnp.float32)
    by_res = {}
    out = []
    for i, r in enumerate(res):
        if r < start_res:
            out.append(None)
            continue
        if r not in by_res:
            by_res[r] = jnp.clip(ops.gaussian_blur(downsample(mask, r, pool), float(feather)), 0.0, 1.0)
        m = by_res[r]
        out.append(m if weights is None else m * weights[i])
    return out


def _mix(m, a_fn, b_fn):
    """m·a + (1 - m)·b; only b when m is None (a layer below the start resolution)."""
    if m is None:
        return b_fn()
    return m * a_fn() + (1.0 - m) * b_fn()


def _layer(module, variables, name, *args):
    return module.apply({"params": variables["params"]["synthesis"][name]}, *args)


def blend_synthesis(config: sg.GeneratorConfig, var_in, var_out, w_in, w_out, masks: Sequence,
                    noise_in=None, noise_out=None, precision: str = "float32"):
    """(image [N, H, W, 3], mixed features) of the blended synthesis (module docstring).

    var_in / var_out: the two generators' variables (``params`` and ``buffers``); w_in / w_out: their
    W+ latents [N, n_latent, D] (the same array for one shared latent); masks: :func:`soft_masks`.
    noise_*: lists of [N or 1, r, r, 1] (default: each generator's fixed buffers). The features are the
    mixed StyledConv outputs, in the order of ``Generator`` (for the generator perceptual backbone)."""
    opts = dict(blur_kernel=config.blur_kernel, precision=precision)
    n_noise = config.num_layers
    noise_in = noise_in or [var_in["buffers"][f"noise_{i}"] for i in range(n_noise)]
    noise_out = noise_out or [var_out["buffers"][f"noise_{i}"] for i in range(n_noise)]
    batch = w_out.shape[0]
    c4 = config.channel(4)

    def const(v):
        return jnp.broadcast_to(v["params"]["synthesis"]["const"], (batch, 4, 4, c4)).astype(w_out.dtype)

    def styled(name, ch, up, idx, h, m):
        conv = sg.StyledConv(ch, upsample=up, **opts)
        return _mix(m, lambda: _layer(conv, var_in, name, h, w_in[:, idx], noise_in[idx]),
                    lambda: _layer(conv, var_out, name, h, w_out[:, idx], noise_out[idx]))

    def to_rgb(name, idx, h, skip, m):
        rgb = sg.ToRGB(**opts)
        return _mix(m, lambda: _layer(rgb, var_in, name, h, w_in[:, idx], skip),
                    lambda: _layer(rgb, var_out, name, h, w_out[:, idx], skip))

    h = _mix(masks[0], lambda: const(var_in), lambda: const(var_out))
    h = styled("conv1", c4, False, 0, h, masks[0])
    features = [h]
    skip = to_rgb("to_rgb1", 1, h, None, masks[1])
    i, layer = 1, 2
    for level, log_res in enumerate(range(3, config.log_size + 1)):
        ch = config.channel(2 ** log_res)
        h = styled(f"convs_{2 * level}", ch, True, i, h, masks[layer])
        features.append(h)
        h = styled(f"convs_{2 * level + 1}", ch, False, i + 1, h, masks[layer + 1])
        features.append(h)
        skip = to_rgb(f"to_rgbs_{level}", i + 2, h, skip, masks[layer + 2])
        i += 2
        layer += 3
    return skip, features
