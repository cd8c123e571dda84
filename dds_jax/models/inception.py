"""pytorch-fid's FID Inception-v3 in Flax (NHWC): images in [0, 1] -> pool3 features [N, 2048].

Reproduces ``pytorch_fid.inception.InceptionV3(output_blocks=[3], resize_input=True,
normalize_input=True)`` on top of ``fid_inception_v3()`` (the port of the 2015 TensorFlow graph that FID
is defined with):

* input resized to 299x299 with torch bilinear, ``align_corners=False`` (no antialias), then ``2x - 1``;
* stem ``Conv2d_1a_3x3`` (stride 2), ``Conv2d_2a_3x3``, ``Conv2d_2b_3x3`` (pad 1), max-pool 3/2,
  ``Conv2d_3b_1x1``, ``Conv2d_4a_3x3``, max-pool 3/2;
* ``Mixed_5b..5d`` (FID-A), ``Mixed_6a`` (B), ``Mixed_6b..6e`` (FID-C), ``Mixed_7a`` (D), ``Mixed_7b``
  (FID-E, average pool) and ``Mixed_7c`` (FID-E, max pool); the A/C/E_1 pool branches average 3x3
  windows with stride 1, pad 1 and ``count_include_pad=False``;
* global average pool -> pool3.

Every conv is ``BasicConv2d``: conv without bias, inference BatchNorm (eps 0.001), ReLU. Parameter names
follow the torch state_dict (``Mixed_5b/branch1x1/conv/kernel``, ``.../bn/running_mean`` ...), so the
converter is a name-for-name mapping checked against the shapes the module itself declares.
"""
import functools
from typing import Any, Mapping, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from dds_jax import ops
from dds_jax.models.layers import BatchNormInference
from dds_jax.conversion.statedict import (ConversionError, StateDictReader, conv_oihw_to_hwio,
                                          strip_prefix)

FEATURE_DIM = 2048
INPUT_SIZE = 299
BN_EPS = 1e-3
HIGHEST = jax.lax.Precision.HIGHEST


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm (eps 0.001) -> ReLU."""
    features: int
    kernel: Tuple[int, int] = (1, 1)
    stride: int = 1
    padding: Tuple[int, int] = (0, 0)

    @nn.compact
    def __call__(self, x):
        ph, pw = self.padding
        x = nn.Conv(self.features, self.kernel, strides=self.stride, padding=((ph, ph), (pw, pw)),
                    use_bias=False, precision=HIGHEST, name="conv")(x)
        return nn.relu(BatchNormInference(eps=BN_EPS, name="bn")(x))


def max_pool(x, stride: int, padding: int = 0):
    """``F.max_pool2d(x, 3, stride, padding)`` (pads with -inf, floor mode)."""
    return nn.max_pool(x, (3, 3), strides=(stride, stride), padding=((padding, padding),) * 2)


def avg_pool_exclude_pad(x):
    """``F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)``."""
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _cat(*xs):
    return jnp.concatenate(xs, axis=-1)


class FIDInceptionA(nn.Module):
    pool_features: int

    @nn.compact
    def __call__(self, x):
        b1 = BasicConv2d(64, name="branch1x1")(x)
        b5 = BasicConv2d(48, name="branch5x5_1")(x)
        b5 = BasicConv2d(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
        bd = BasicConv2d(64, name="branch3x3dbl_1")(x)
        bd = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(bd)
        bp = BasicConv2d(self.pool_features, name="branch_pool")(avg_pool_exclude_pad(x))
        return _cat(b1, b5, bd, bp)


class InceptionB(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = BasicConv2d(384, (3, 3), stride=2, name="branch3x3")(x)
        bd = BasicConv2d(64, name="branch3x3dbl_1")(x)
        bd = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = BasicConv2d(96, (3, 3), stride=2, name="branch3x3dbl_3")(bd)
        return _cat(b3, bd, max_pool(x, 2))


class FIDInceptionC(nn.Module):
    channels_7x7: int

    @nn.compact
    def __call__(self, x):
        c7 = self.channels_7x7
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        b1 = BasicConv2d(192, name="branch1x1")(x)
        b7 = BasicConv2d(c7, name="branch7x7_1")(x)
        b7 = BasicConv2d(c7, **row, name="branch7x7_2")(b7)
        b7 = BasicConv2d(192, **col, name="branch7x7_3")(b7)
        bd = BasicConv2d(c7, name="branch7x7dbl_1")(x)
        bd = BasicConv2d(c7, **col, name="branch7x7dbl_2")(bd)
        bd = BasicConv2d(c7, **row, name="branch7x7dbl_3")(bd)
        bd = BasicConv2d(c7, **col, name="branch7x7dbl_4")(bd)
        bd = BasicConv2d(192, **row, name="branch7x7dbl_5")(bd)
        bp = BasicConv2d(192, name="branch_pool")(avg_pool_exclude_pad(x))
        return _cat(b1, b7, bd, bp)


class InceptionD(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = BasicConv2d(192, name="branch3x3_1")(x)
        b3 = BasicConv2d(320, (3, 3), stride=2, name="branch3x3_2")(b3)
        b7 = BasicConv2d(192, name="branch7x7x3_1")(x)
        b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = BasicConv2d(192, (3, 3), stride=2, name="branch7x7x3_4")(b7)
        return _cat(b3, b7, max_pool(x, 2))


class FIDInceptionE(nn.Module):
    """E_1 (``pool="avg"``, count_include_pad=False) and E_2 (``pool="max"``, 3x3 stride 1 pad 1)."""
    pool: str

    @nn.compact
    def __call__(self, x):
        row, col = dict(kernel=(1, 3), padding=(0, 1)), dict(kernel=(3, 1), padding=(1, 0))
        b1 = BasicConv2d(320, name="branch1x1")(x)
        b3 = BasicConv2d(384, name="branch3x3_1")(x)
        b3 = _cat(BasicConv2d(384, **row, name="branch3x3_2a")(b3),
                  BasicConv2d(384, **col, name="branch3x3_2b")(b3))
        bd = BasicConv2d(448, name="branch3x3dbl_1")(x)
        bd = BasicConv2d(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = _cat(BasicConv2d(384, **row, name="branch3x3dbl_3a")(bd),
                  BasicConv2d(384, **col, name="branch3x3dbl_3b")(bd))
        pooled = avg_pool_exclude_pad(x) if self.pool == "avg" else max_pool(x, 1, padding=1)
        bp = BasicConv2d(192, name="branch_pool")(pooled)
        return _cat(b1, b3, bd, bp)


class FIDInceptionV3(nn.Module):
    """NHWC images in [0, 1] (any size) -> pool3 features [N, 2048]."""
    resize_input: bool = True
    normalize_input: bool = True

    @nn.compact
    def __call__(self, x):
        if self.resize_input:
            x = ops.resize_bilinear_torch(x, size=(INPUT_SIZE, INPUT_SIZE))
        if self.normalize_input:
            x = 2.0 * x - 1.0
        x = BasicConv2d(32, (3, 3), stride=2, name="Conv2d_1a_3x3")(x)
        x = BasicConv2d(32, (3, 3), name="Conv2d_2a_3x3")(x)
        x = BasicConv2d(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
        x = max_pool(x, 2)
        x = BasicConv2d(80, name="Conv2d_3b_1x1")(x)
        x = BasicConv2d(192, (3, 3), name="Conv2d_4a_3x3")(x)
        x = max_pool(x, 2)
        x = FIDInceptionA(32, name="Mixed_5b")(x)
        x = FIDInceptionA(64, name="Mixed_5c")(x)
        x = FIDInceptionA(64, name="Mixed_5d")(x)
        x = InceptionB(name="Mixed_6a")(x)
        x = FIDInceptionC(128, name="Mixed_6b")(x)
        x = FIDInceptionC(160, name="Mixed_6c")(x)
        x = FIDInceptionC(160, name="Mixed_6d")(x)
        x = FIDInceptionC(192, name="Mixed_6e")(x)
        x = InceptionD(name="Mixed_7a")(x)
        x = FIDInceptionE("avg", name="Mixed_7b")(x)
        x = FIDInceptionE("max", name="Mixed_7c")(x)
        return jnp.mean(x, axis=(1, 2))


# ----------------------------------------------------------------------------- configuration


def default_config(resize_input: bool = True, normalize_input: bool = True) -> dict:
    return {"resize_input": bool(resize_input), "normalize_input": bool(normalize_input),
            "output": "pool3", "feature_dim": FEATURE_DIM}


def model_from_config(config: Mapping[str, Any] = None) -> FIDInceptionV3:
    config = default_config() if config is None else config
    return FIDInceptionV3(resize_input=bool(config.get("resize_input", True)),
                          normalize_input=bool(config.get("normalize_input", True)))


def init_params(rng=None, config=None):
    """Random parameters with the module's own initialisers (tests / benchmarks; not meaningful)."""
    rng = jax.random.PRNGKey(0) if rng is None else rng
    x = jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32)
    return model_from_config(config).init(rng, x)["params"]


@functools.lru_cache(maxsize=1)
def param_shapes() -> dict:
    """{flax param path (tuple): shape} the module declares."""
    x = jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32)
    abstract = jax.eval_shape(lambda x: FIDInceptionV3().init(jax.random.PRNGKey(0), x), x)["params"]
    return {path: tuple(leaf.shape) for path, leaf in traverse_util.flatten_dict(abstract).items()}


# ----------------------------------------------------------------------------- conversion


def torch_key(path: Sequence[str]) -> str:
    """Flax param path -> torch state_dict key (``kernel`` is torch's conv ``weight``)."""
    *parents, leaf = path
    return ".".join(list(parents) + ["weight" if leaf == "kernel" else leaf])


def convert_state_dict(obj: Any, source: str = "state_dict", resize_input: bool = True,
                       normalize_input: bool = True):
    """pytorch-fid ``pt_inception-2015-12-05-6726825d.pth`` state_dict -> (config, params).

    ``obj`` is a flat ``{key: array}`` mapping (as :func:`dds_jax.conversion.torch_io.load_any` returns).
    ``fc.*`` (the unused 1008-way classifier) and ``*.num_batches_tracked`` are ignored; a ``module.``
    prefix is stripped; any missing, misshaped or unexpected key raises :class:`ConversionError`.
    """
    if not isinstance(obj, Mapping):
        raise ConversionError(f"{source}: expected a flat state_dict mapping, got {type(obj).__name__}")
    sd = {k: v for k, v in strip_prefix(obj).items() if not k.endswith(".num_batches_tracked")}
    reader = StateDictReader(sd, source=source, ignore=("fc.",))
    flat = {}
    for path, shape in param_shapes().items():
        key = torch_key(path)
        if path[-1] == "kernel":
            kh, kw, cin, cout = shape
            flat[path] = conv_oihw_to_hwio(reader.take(key, (cout, cin, kh, kw)))
        else:
            flat[path] = reader.take(key, shape)
    reader.finish()
    return default_config(resize_input, normalize_input), traverse_util.unflatten_dict(flat)


# ----------------------------------------------------------------------------- features


def check_images(images) -> np.ndarray:
    """``images`` as a numpy NHWC RGB batch, or a ValueError naming the shape."""
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] != 3:
        hint = " (NCHW? transpose to NHWC)" if x.ndim == 4 and x.shape[1] == 3 else ""
        raise ValueError(f"expected NHWC RGB images [N, H, W, 3], got shape {x.shape}{hint}")
    return x


def to_float01(x: np.ndarray) -> np.ndarray:
    """uint8 -> float32 / 255; floats -> float32 unchanged (expected in [0, 1])."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    return x.astype(np.float32, copy=False)


@functools.lru_cache(maxsize=None)
def _forward(resize_input: bool, normalize_input: bool):
    module = FIDInceptionV3(resize_input=resize_input, normalize_input=normalize_input)
    return jax.jit(lambda params, x: module.apply({"params": params}, x))


def pool3_features(params, images01, batch_size: int = 50, config: Mapping[str, Any] = None) -> np.ndarray:
    """pool3 features [N, 2048] (float32 numpy) of NHWC RGB images in [0, 1] (uint8 is divided by 255).

    Streams ``images01`` (e.g. a memory-mapped array) through the jitted network ``batch_size`` images
    at a time, converting one batch at a time; the last batch is zero-padded so there is one compilation.
    """
    config = default_config() if config is None else config
    if isinstance(params, Mapping) and set(params) == {"params"}:
        params = params["params"]
    params = jax.device_put(params)
    fwd = _forward(bool(config.get("resize_input", True)), bool(config.get("normalize_input", True)))
    return ops.map_batches(lambda chunk: fwd(params, to_float01(chunk)), check_images(images01), batch_size)
