"""Read PyTorch ``.pt``/``.pth`` files without executing pickled code.

``torch.load(..., weights_only=True)`` only rebuilds tensors and plain containers. rosinality training
checkpoints also pickle an ``argparse.Namespace`` under ``args``; that one class (a plain attribute bag)
is allowed, nothing else. torch is an optional dependency (``pip install dds-jax[convert]``).
"""
import argparse
import pathlib
import re
import warnings
import zipfile
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


_REMEDY = "give a file written by torch.save(model.state_dict(), ...) or an .npz of the state_dict"


def _load_error(path: pathlib.Path, e: Exception) -> ValueError:
    """Our own one-line reason for a file torch.load(weights_only=True) refuses: never torch's text,
    which suggests weights_only=False (running the file's pickled code)."""
    found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", str(e))
    if found:
        return ValueError(f"{path}: pickles a Python object ({found.group(1)}) besides tensors; dds-jax "
                          f"never runs pickled code: {_REMEDY}")
    if path.stat().st_size == 0:
        what = "an empty file"
    elif "zip archive" in str(e):
        what = "a truncated or corrupted torch.save archive"
    else:
        what = "not a PyTorch checkpoint"
    return ValueError(f"{path}: {what}; {_REMEDY}")


def load_pt(path) -> Any:
    """Load a ``.pt`` file safely and return it with every tensor as a numpy array."""
    torch = _torch()
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's UserWarnings on legacy files: the error below says it
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, KeyError, ...
        raise _load_error(path, e) from None
    return to_numpy_tree(obj)


def load_any(path) -> Any:
    """``.pt``/``.pth`` through :func:`load_pt`; ``.npz`` as a flat {key: array} state_dict."""
    path = pathlib.Path(path)
    if path.suffix == ".npz":
        if not path.exists():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        try:
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
            reason = "holds object arrays (pickled code)" if "allow_pickle" in str(e) else "not a readable .npz"
            raise ValueError(f"{path}: {reason}; {_REMEDY}") from None
    return load_pt(path)
