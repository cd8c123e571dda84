"""Read PyTorch ``.pt``/``.pth`` files without executing pickled code.

``torch.load(..., weights_only=True)`` only rebuilds tensors and plain containers. rosinality training
checkpoints also pickle an ``argparse.Namespace`` under ``args``; that one class (a plain attribute bag)
is allowed, nothing else. torch is an optional dependency (``pip install dds-jax[convert]``).
"""
import argparse
import pathlib
from typing import Any

import numpy as np


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("reading .pt files needs torch: pip install 'dds-jax[convert]' "
                          "(torch==2.13.0 is a CPU wheel)") from e
    return torch


def to_numpy_tree(obj: Any) -> Any:
    """Tensors -> float32/int numpy arrays, recursively through dicts/lists; other leaves kept."""
    torch = _torch()
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        if t.is_floating_point():
            t = t.float()
        return t.numpy()
    if isinstance(obj, dict):
        return {k: to_numpy_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_numpy_tree(v) for v in obj)
    return obj


def load_pt(path) -> Any:
    """Load a ``.pt`` file safely and return it with every tensor as a numpy array."""
    torch = _torch()
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: cannot be read as a weights-only PyTorch checkpoint "
                         f"({type(e).__name__}: {e})") from e
    return to_numpy_tree(obj)


def load_any(path) -> Any:
    """``.pt``/``.pth`` through :func:`load_pt`; ``.npz`` as a flat {key: array} state_dict."""
    path = pathlib.Path(path)
    if path.suffix == ".npz":
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    return load_pt(path)
