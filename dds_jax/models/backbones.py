"""Perceptual feature extractors in Flax (NHWC): VGG16, AlexNet, SqueezeNet 1.1, ResNet-18.

``extract(name, params, images)`` maps NHWC float32 images in [-1, 1] (the generator's range) to the
list of feature maps F_j of the DDS perceptual loss (Eq. 3). Weights come from torchvision state_dicts
through ``convert_<name>`` (registered as checkpoint kinds in :mod:`dds_jax.conversion`).

Input convention (all four backbones, default ``imagenet_normalize=False``): the [-1, 1] images go into
the first conv as they are, with no ImageNet normalisation and no LPIPS ``ScalingLayer``. This is what the
released DDS code does for VGG16 and what every parity fixture (``tests/fixtures/*_perceptual``) used.
``imagenet_normalize=True`` maps [-1, 1] -> [0, 1] and then applies ``(x - mean) / std`` with the ImageNet
mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225), which is what torchvision's weights expect.

Layers (torchvision module indices are those of ``<net>.features``):

* ``vgg16``: relu1_1, relu1_2, relu3_2, relu4_2 = ``features[0:2]``, ``[2:4]``, ``[4:14]``,
  ``[14:21]``, the slices of the released DDS ``VGG16_for_Perceptual(n_layers=[2, 4, 14, 21])``. The paper
  text names them conv1.1, conv1.2, conv2.2 and conv3.3, but its Table 4 shapes are the released ones
  (256x256 input: 64@256, 64@256, 256@64, 512@32), and those are what is reproduced here.
* ``alexnet``: relu1..relu5 = ``features[0:2]``, ``[2:5]``, ``[5:8]``, ``[8:10]``, ``[10:12]`` (LPIPS's
  slicing; max-pools 3/2 in floor mode).
* ``squeezenet``: relu1..relu7 of SqueezeNet 1.1 = ``features[0:2]``, ``[2:5]``, ``[5:8]``, ``[8:10]``,
  ``[10]``, ``[11]``, ``[12]`` (LPIPS's slicing; max-pools 3/2 with ``ceil_mode=True``).
* ``resnet18``: relu1 = relu(bn1(conv1 x)) before the max-pool, conv2..conv5 = layer1 (after the
  max-pool) .. layer4; BatchNorm in inference mode (running statistics, eps 1e-5).

Conversion keeps only the tensors those layers need. Keys may carry a ``module.`` prefix
(``nn.DataParallel``) and, for the three ``features`` nets, a ``features.`` prefix (a whole torchvision
model) or none (a ``.features`` state_dict). Tensors that belong to the torchvision model but are not
needed (the classifier / ``fc``, VGG16 convs after relu4_2, ``num_batches_tracked``) are dropped
silently; any other key is an error (it usually means the wrong ``--kind``), as is a missing key or a
wrong shape, and the :class:`ConversionError` names the key and the shapes.

Convolutions run at ``Precision.HIGHEST`` by default (float32, no TF32/bf16 passes on accelerators): the
parity fixtures agree to ~2e-6 relative; pass ``precision=`` to :func:`extract` to trade that for speed.
"""
import dataclasses
import functools
from typing import Any, Callable, List, Mapping, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from dds_jax import ops
from dds_jax.conversion.statedict import ConversionError, StateDictReader, conv_oihw_to_hwio
from dds_jax.models.layers import BatchNormInference

HIGHEST = jax.lax.Precision.HIGHEST
BN_EPS = 1e-5
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_CONVENTION = "NHWC float32 in [-1, 1], fed as is (no ImageNet normalisation, no LPIPS ScalingLayer)"


# ----------------------------------------------------------------------------- building blocks


def conv(features: int, kernel: int, stride: int = 1, padding: int = 0, use_bias: bool = True,
         precision=HIGHEST, name: str = None) -> nn.Conv:
    """``nn.Conv2d(.., kernel, stride, padding)`` with symmetric zero padding."""
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                   padding=((padding, padding), (padding, padding)), use_bias=use_bias,
                   precision=precision, conv_general_dilated=ops.flax_conv_general_dilated, name=name)


def pool_output_size(n: int, kernel: int, stride: int, padding: int = 0, ceil_mode: bool = False) -> int:
    """Output length of ``F.max_pool2d`` along one axis of length ``n``."""
    span = n + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= n + padding:  # a window may not start in the right padding
        out -= 1
    return out


def _pool_pads(n: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> Tuple[int, int]:
    out = pool_output_size(n, kernel, stride, padding, ceil_mode)
    return padding, max((out - 1) * stride + kernel - n - padding, 0)


def max_pool(x, kernel: int, stride: int, padding: int = 0, ceil_mode: bool = False):
    """``F.max_pool2d(x, kernel, stride, padding, ceil_mode=...)`` on NHWC (pads with -inf).

    Ceil mode adds -inf on the bottom/right so the last, partial window exists.
    """
    pads = tuple(_pool_pads(n, kernel, stride, padding, ceil_mode) for n in x.shape[1:3])
    n, h, w, c = x.shape
    if kernel == stride and all(p == (0, 0) for p in pads) and h % kernel == 0 and w % kernel == 0:
        # Non-overlapping windows (VGG's 2x2 / 2) as a reshape + max: same values; its gradient needs no
        # index arrays, which XLA:CPU builds for reduce_window's gradient as full-size int32 iotas kept
        # live through the whole DDS loop (~0.17 GiB per seed at 256², BENCHMARKS.md).
        return jnp.max(x.reshape(n, h // kernel, kernel, w // kernel, kernel, c), axis=(2, 4))
    return nn.max_pool(x, (kernel, kernel), strides=(stride, stride), padding=pads)


def BatchNorm(name: str) -> nn.Module:
    """Inference BatchNorm with torchvision's eps (1e-5)."""
    return BatchNormInference(eps=BN_EPS, name=name)


# ----------------------------------------------------------------------------- networks


class VGG16Features(nn.Module):
    """relu1_1, relu1_2, relu3_2, relu4_2 of torchvision VGG16 (``features[:21]``)."""
    precision: Any = HIGHEST

    @nn.compact
    def __call__(self, x):
        def block(name, c, h):
            return nn.relu(conv(c, 3, padding=1, precision=self.precision, name=name)(h))

        x = relu1_1 = block("conv1_1", 64, x)
        x = relu1_2 = block("conv1_2", 64, x)
        x = max_pool(x, 2, 2)
        x = block("conv2_2", 128, block("conv2_1", 128, x))
        x = max_pool(x, 2, 2)
        x = relu3_2 = block("conv3_2", 256, block("conv3_1", 256, x))
        x = max_pool(block("conv3_3", 256, x), 2, 2)
        relu4_2 = block("conv4_2", 512, block("conv4_1", 512, x))
        return [relu1_1, relu1_2, relu3_2, relu4_2]


class AlexNetFeatures(nn.Module):
    """relu1..relu5 of torchvision AlexNet ``features``."""
    precision: Any = HIGHEST

    @nn.compact
    def __call__(self, x):
        def block(name, c, k, h, stride=1, padding=None):
            padding = k // 2 if padding is None else padding
            return nn.relu(conv(c, k, stride, padding, precision=self.precision, name=name)(h))

        relu1 = block("conv1", 64, 11, x, stride=4, padding=2)
        relu2 = block("conv2", 192, 5, max_pool(relu1, 3, 2))
        relu3 = block("conv3", 384, 3, max_pool(relu2, 3, 2))
        relu4 = block("conv4", 256, 3, relu3)
        relu5 = block("conv5", 256, 3, relu4)
        return [relu1, relu2, relu3, relu4, relu5]


class Fire(nn.Module):
    """SqueezeNet fire module: 1x1 squeeze, then concatenated 1x1 and 3x3 expands, all with ReLU."""
    squeeze: int
    expand: int
    precision: Any = HIGHEST

    @nn.compact
    def __call__(self, x):
        p = self.precision
        s = nn.relu(conv(self.squeeze, 1, precision=p, name="squeeze")(x))
        e1 = nn.relu(conv(self.expand, 1, precision=p, name="expand1x1")(s))
        e3 = nn.relu(conv(self.expand, 3, padding=1, precision=p, name="expand3x3")(s))
        return jnp.concatenate([e1, e3], axis=-1)


class SqueezeNet11Features(nn.Module):
    """relu1..relu7 of torchvision SqueezeNet 1.1 ``features`` (LPIPS slices)."""
    precision: Any = HIGHEST

    @nn.compact
    def __call__(self, x):
        def fire(name, s, e, h):
            return Fire(s, e, precision=self.precision, name=name)(h)

        def pool(h):
            return max_pool(h, 3, 2, ceil_mode=True)

        relu1 = nn.relu(conv(64, 3, 2, precision=self.precision, name="conv1")(x))
        relu2 = fire("fire3", 16, 64, fire("fire2", 16, 64, pool(relu1)))
        relu3 = fire("fire5", 32, 128, fire("fire4", 32, 128, pool(relu2)))
        relu4 = fire("fire6", 48, 192, pool(relu3))
        relu5 = fire("fire7", 48, 192, relu4)
        relu6 = fire("fire8", 64, 256, relu5)
        relu7 = fire("fire9", 64, 256, relu6)
        return [relu1, relu2, relu3, relu4, relu5, relu6, relu7]


class BasicBlock(nn.Module):
    """ResNet basic block; a 1x1 conv + BN projects the shortcut when the shape changes."""
    features: int
    stride: int = 1
    precision: Any = HIGHEST

    @nn.compact
    def __call__(self, x):
        c, p = self.features, self.precision
        y = conv(c, 3, self.stride, 1, use_bias=False, precision=p, name="conv1")(x)
        y = nn.relu(BatchNorm(name="bn1")(y))
        y = BatchNorm(name="bn2")(conv(c, 3, 1, 1, use_bias=False, precision=p, name="conv2")(y))
        if self.stride != 1 or x.shape[-1] != c:
            x = conv(c, 1, self.stride, use_bias=False, precision=p, name="downsample_0")(x)
            x = BatchNorm(name="downsample_1")(x)
        return nn.relu(x + y)


class ResNet18Features(nn.Module):
    """relu1 (before the max-pool), conv2..conv5 (= layer1..layer4) of torchvision ResNet-18."""
    precision: Any = HIGHEST

    @nn.compact
    def __call__(self, x):
        p = self.precision
        x = conv(64, 7, 2, 3, use_bias=False, precision=p, name="conv1")(x)
        x = relu1 = nn.relu(BatchNorm(name="bn1")(x))
        x = max_pool(x, 3, 2, padding=1)
        outs = [relu1]
        for i, (c, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), start=1):
            x = BasicBlock(c, stride, precision=p, name=f"layer{i}_0")(x)
            x = BasicBlock(c, 1, precision=p, name=f"layer{i}_1")(x)
            outs.append(x)
        return outs


# ----------------------------------------------------------------------------- registry


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """What a backbone is: its layers, input, module factory, converter and torch key layout.

    ``torch_names`` maps each top-level Flax module to its torch state_dict prefix (without ``features.``);
    ``unused`` (key prefixes) and ``unused_features`` (``features`` indices) name the torchvision tensors
    that conversion drops silently.
    """
    name: str
    input_size: int
    input_convention: str
    layer_names: Tuple[str, ...]
    module: Callable[..., nn.Module]
    converter: Callable[..., Tuple[dict, Any]]
    torch_names: Mapping[str, str]
    features_prefix: bool
    unused: Tuple[str, ...]
    unused_features: Tuple[int, ...] = ()
    notes: str = ""


def _index_names(pairs: Sequence[Tuple[str, int]]) -> dict:
    return {flax_name: str(idx) for flax_name, idx in pairs}


def _resnet_names() -> dict:
    table = {"conv1": "conv1", "bn1": "bn1"}
    table.update({f"layer{i}_{j}": f"layer{i}.{j}" for i in range(1, 5) for j in range(2)})
    return table


_INNER_NAMES = {"downsample_0": "downsample.0", "downsample_1": "downsample.1"}


# ----------------------------------------------------------------------------- parameters


def random_params(name: str, seed: int = 0):
    """Seeded random parameters (numpy, no compilation) for tests and benchmarks; not meaningful.

    Conv kernels ~ N(0, 2 / fan_in) so activations keep their scale; biases ~ N(0, 0.01^2); BatchNorm
    weight ~ 1 + N(0, 0.1^2), bias and running mean ~ N(0, 0.1^2), running var ~ 1 + |N(0, 0.05^2)|.
    """
    rng = np.random.default_rng(seed)
    shapes = param_shapes(name)
    batchnorms = {path[:-1] for path in shapes if path[-1] == "running_mean"}
    flat = {}
    for path, shape in shapes.items():
        leaf, is_bn = path[-1], path[:-1] in batchnorms
        if leaf == "kernel":
            value = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:-1]))
        elif leaf == "bias" and not is_bn:
            value = rng.standard_normal(shape) * 0.01
        elif leaf == "weight":
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif leaf == "running_var":
            value = 1.0 + np.abs(0.05 * rng.standard_normal(shape))
        else:  # BatchNorm bias / running_mean
            value = 0.1 * rng.standard_normal(shape)
        flat[path] = value.astype(np.float32)
    return traverse_util.unflatten_dict(flat)


@functools.lru_cache(maxsize=None)
def param_shapes(name: str) -> dict:
    """{Flax param path (tuple): shape} that backbone ``name`` declares."""
    spec = get_backbone(name)
    x = jax.ShapeDtypeStruct((1, spec.input_size, spec.input_size, 3), jnp.float32)
    abstract = jax.eval_shape(lambda x: spec.module().init(jax.random.PRNGKey(0), x), x)["params"]
    return {path: tuple(leaf.shape) for path, leaf in traverse_util.flatten_dict(abstract).items()}


def torch_key(spec: BackboneSpec, path: Sequence[str]) -> str:
    """Flax param path -> torch key without ``features.`` (conv ``kernel`` is torch's ``weight``)."""
    top, *inner, leaf = path
    parts = [spec.torch_names[top]] + [_INNER_NAMES.get(p, p) for p in inner]
    return ".".join(parts + ["weight" if leaf == "kernel" else leaf])


def _key_prefix(keys, features_prefix: bool) -> str:
    """``module.`` when every key has it, then ``features.`` when the keys use it."""
    root = "module." if keys and all(k.startswith("module.") for k in keys) else ""
    if features_prefix and any(k.startswith(root + "features.") for k in keys):
        return root + "features."
    return root


def _convert(name: str, obj: Any, source: str = "state_dict"):
    """torchvision state_dict -> (config, params) for backbone ``name`` (see the module docstring)."""
    spec = get_backbone(name)
    if not isinstance(obj, Mapping):
        raise ConversionError(f"{source}: expected a flat state_dict mapping, got {type(obj).__name__}")
    keys = list(obj)
    prefix = _key_prefix(keys, spec.features_prefix)
    root = "module." if prefix.startswith("module.") else ""
    unused = tuple(root + u for u in spec.unused) + tuple(f"{prefix}{i}." for i in spec.unused_features)
    sd = {k: v for k, v in obj.items() if not k.endswith(".num_batches_tracked")}
    reader = StateDictReader(sd, source=source, ignore=unused)
    flat = {}
    for path, shape in param_shapes(name).items():
        key = prefix + torch_key(spec, path)
        if path[-1] == "kernel":
            kh, kw, cin, cout = shape
            flat[path] = conv_oihw_to_hwio(_take(reader, key, (cout, cin, kh, kw)))
        else:
            flat[path] = _take(reader, key, shape)
    reader.finish()
    return default_config(name), traverse_util.unflatten_dict(flat)


def _take(reader: StateDictReader, key: str, shape) -> np.ndarray:
    if key not in reader:
        raise ConversionError(f"{reader.source}: missing key {key!r} (expected shape {tuple(shape)})")
    return reader.take(key, shape)


def default_config(name: str) -> dict:
    spec = get_backbone(name)
    return {"backbone": spec.name, "layers": list(spec.layer_names), "input_size": spec.input_size,
            "input_convention": spec.input_convention}


def convert_vgg16(obj: Any, source: str = "state_dict"):
    """torchvision VGG16 (whole model or ``.features``) state_dict -> (config, params)."""
    return _convert("vgg16", obj, source)


def convert_alexnet(obj: Any, source: str = "state_dict"):
    """torchvision AlexNet (whole model or ``.features``) state_dict -> (config, params)."""
    return _convert("alexnet", obj, source)


def convert_squeezenet(obj: Any, source: str = "state_dict"):
    """torchvision SqueezeNet 1.1 (whole model or ``.features``) state_dict -> (config, params)."""
    return _convert("squeezenet", obj, source)


def convert_resnet18(obj: Any, source: str = "state_dict"):
    """torchvision ResNet-18 state_dict -> (config, params); ``fc.*`` is dropped."""
    return _convert("resnet18", obj, source)


# ----------------------------------------------------------------------------- the registered backbones


_REGISTRY = {
    "vgg16": BackboneSpec(
        name="vgg16", input_size=256, input_convention=INPUT_CONVENTION,
        layer_names=("relu1_1", "relu1_2", "relu3_2", "relu4_2"),
        module=VGG16Features, converter=convert_vgg16,
        torch_names=_index_names([("conv1_1", 0), ("conv1_2", 2), ("conv2_1", 5), ("conv2_2", 7),
                                  ("conv3_1", 10), ("conv3_2", 12), ("conv3_3", 14), ("conv4_1", 17),
                                  ("conv4_2", 19)]),
        features_prefix=True, unused=("classifier.",), unused_features=(21, 24, 26, 28),
        notes="released DDS slices features[0:2], [2:4], [4:14], [14:21]; the paper text says conv1.1, "
              "conv1.2, conv2.2, conv3.3"),
    "alexnet": BackboneSpec(
        name="alexnet", input_size=224, input_convention=INPUT_CONVENTION,
        layer_names=("relu1", "relu2", "relu3", "relu4", "relu5"),
        module=AlexNetFeatures, converter=convert_alexnet,
        torch_names=_index_names([("conv1", 0), ("conv2", 3), ("conv3", 6), ("conv4", 8), ("conv5", 10)]),
        features_prefix=True, unused=("classifier.",),
        notes="LPIPS slices features[0:2], [2:5], [5:8], [8:10], [10:12]"),
    "squeezenet": BackboneSpec(
        name="squeezenet", input_size=256, input_convention=INPUT_CONVENTION,
        layer_names=tuple(f"relu{i}" for i in range(1, 8)),
        module=SqueezeNet11Features, converter=convert_squeezenet,
        torch_names=_index_names([("conv1", 0), ("fire2", 3), ("fire3", 4), ("fire4", 6), ("fire5", 7),
                                  ("fire6", 9), ("fire7", 10), ("fire8", 11), ("fire9", 12)]),
        features_prefix=True, unused=("classifier.",),
        notes="SqueezeNet 1.1, LPIPS slices features[0:2], [2:5], [5:8], [8:10], [10], [11], [12]; "
              "max-pools in ceil mode"),
    "resnet18": BackboneSpec(
        name="resnet18", input_size=256, input_convention=INPUT_CONVENTION,
        layer_names=("relu1", "conv2", "conv3", "conv4", "conv5"),
        module=ResNet18Features, converter=convert_resnet18,
        torch_names=_resnet_names(), features_prefix=False, unused=("fc.",),
        notes="relu1 before the max-pool; conv2..conv5 = layer1..layer4; inference BatchNorm, eps 1e-5"),
}


def names() -> List[str]:
    return sorted(_REGISTRY)


def get_backbone(name: str) -> BackboneSpec:
    """The spec of backbone ``name``; ValueError listing the known names otherwise."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown perceptual backbone {name!r}; known backbones: {', '.join(names())}")
    return _REGISTRY[name]


# ----------------------------------------------------------------------------- features


def normalize_imagenet(x):
    """[-1, 1] -> [0, 1] -> ``(x - mean) / std`` with the ImageNet statistics (NHWC)."""
    mean = jnp.asarray(IMAGENET_MEAN, x.dtype)
    std = jnp.asarray(IMAGENET_STD, x.dtype)
    return ((x + 1.0) * 0.5 - mean) / std


def extract(name: str, params, images, imagenet_normalize: bool = False, precision=HIGHEST) -> List:
    """NHWC images in [-1, 1] -> list of NHWC feature maps (``get_backbone(name).layer_names``).

    Pure and jit-friendly (``name`` and ``imagenet_normalize`` must be static). ``params`` is the pytree
    a converter returns (``{"params": ...}`` is accepted too).
    """
    spec = get_backbone(name)
    if isinstance(params, Mapping) and set(params) == {"params"}:
        params = params["params"]
    x = jnp.asarray(images, jnp.float32)
    if x.ndim != 4 or x.shape[-1] != 3:
        hint = " (NCHW? transpose to NHWC)" if x.ndim == 4 and x.shape[1] == 3 else ""
        raise ValueError(f"expected NHWC RGB images [N, H, W, 3], got shape {x.shape}{hint}")
    if imagenet_normalize:
        x = normalize_imagenet(x)
    return list(spec.module(precision=precision).apply({"params": params}, x))


@functools.lru_cache(maxsize=None)
def jitted(name: str, imagenet_normalize: bool = False) -> Callable:
    """``jax.jit`` of :func:`extract` for one backbone: ``fn(params, images) -> list of maps``."""
    get_backbone(name)
    return jax.jit(functools.partial(extract, name, imagenet_normalize=imagenet_normalize))
