"""Checkpoint conversion: PyTorch state_dicts (as numpy) -> (config, Flax params).

Every converter takes the object read from a ``.pt`` file (or a flat ``dict[str, np.ndarray]`` such as a
fixture manifest rebuilds) and returns ``(config: dict, params: pytree)``. Kinds are looked up lazily
so importing this package does not import every model.
"""
import importlib
from typing import Any, Callable, Dict, Tuple

from dds_jax.conversion.statedict import ConversionError  # noqa: F401

_CONVERTERS: Dict[str, str] = {
    "stylegan2": "dds_jax.models.stylegan2:convert_state_dict",
    "segmenter": "dds_jax.models.segmenter:convert_state_dict",
    "vgg16": "dds_jax.models.backbones:convert_vgg16",
    "alexnet": "dds_jax.models.backbones:convert_alexnet",
    "squeezenet": "dds_jax.models.backbones:convert_squeezenet",
    "resnet18": "dds_jax.models.backbones:convert_resnet18",
    "inception": "dds_jax.models.inception:convert_state_dict",
    "discriminator": "dds_jax.models.discriminator:convert_state_dict",
}


def kinds():
    return sorted(_CONVERTERS)


def get_converter(kind: str) -> Callable[..., Tuple[dict, Any]]:
    if kind not in _CONVERTERS:
        raise ValueError(f"unknown checkpoint kind {kind!r}; known kinds: {', '.join(kinds())}")
    module, fn = _CONVERTERS[kind].split(":")
    return getattr(importlib.import_module(module), fn)


def convert(kind: str, obj: Any, source: str = "state_dict", **options) -> Tuple[dict, Any]:
    return get_converter(kind)(obj, source=source, **options)
