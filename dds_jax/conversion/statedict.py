"""Strict reading of a PyTorch state_dict (as ``dict[str, np.ndarray]``).

The original code loads with ``strict=False`` and silently ignores mistakes; here every tensor is
taken by name with its expected shape, and whatever is left over at the end is an error.
"""
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np


class ConversionError(ValueError):
    """A checkpoint does not have the layout a converter expects (names the key and shapes)."""


class StateDictReader:
    """Hands out tensors by key, checking shapes; ``finish()`` rejects unused keys."""

    def __init__(self, state_dict: Mapping[str, np.ndarray], source: str = "state_dict",
                 ignore: Iterable[str] = ()):
        self.source = source
        self._tensors = {k: np.asarray(v) for k, v in state_dict.items()}
        self._used = set()
        self._ignore = tuple(ignore)

    def __contains__(self, key):
        return key in self._tensors

    def keys(self):
        return self._tensors.keys()

    def shape(self, key) -> tuple:
        return tuple(self._require(key).shape)

    def _require(self, key):
        if key not in self._tensors:
            raise ConversionError(f"{self.source}: missing key {key!r}")
        return self._tensors[key]

    def take(self, key: str, shape: Optional[Sequence[int]] = None) -> np.ndarray:
        value = self._require(key)
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise ConversionError(f"{self.source}: key {key!r} has shape {tuple(value.shape)}, "
                                  f"expected {tuple(shape)}")
        self._used.add(key)
        return np.asarray(value, dtype=np.float32)

    def finish(self):
        left = [k for k in self._tensors if k not in self._used
                and not any(k.startswith(p) or k == p for p in self._ignore)]
        if left:
            more = f" (and {len(left) - 10} more)" if len(left) > 10 else ""
            raise ConversionError(f"{self.source}: unexpected keys {left[:10]}{more}")


def strip_prefix(state_dict: Mapping[str, np.ndarray], prefix: str = "module.") -> dict:
    """Drop the ``module.`` prefix that ``nn.DataParallel`` leaves, if every key has it."""
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def conv_oihw_to_hwio(w: np.ndarray) -> np.ndarray:
    """torch conv weight [O, I, kh, kw] -> lax/Flax kernel [kh, kw, I, O]."""
    return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)))


def linear_oi_to_io(w: np.ndarray) -> np.ndarray:
    """torch linear weight [O, I] -> Flax Dense kernel [I, O]."""
    return np.ascontiguousarray(w.T)
