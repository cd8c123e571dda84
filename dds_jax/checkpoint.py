"""One place to save and load dds-jax models: an orbax checkpoint of the parameters + ``model.json``.

Layout of a model directory::

    DIR/model.json   {"kind": "stylegan2", "config": {...}, "format": 1, "dds_jax_version": ...}
    DIR/params/      orbax StandardCheckpointer pytree (nested dicts of float32 arrays)
"""
import dataclasses
import json
import os
import pathlib
import shutil
from typing import Any

import numpy as np

from dds_jax import __version__

FORMAT = 1


@dataclasses.dataclass
class Model:
    kind: str
    config: dict
    params: Any
    path: pathlib.Path = None


def _quiet_orbax_info() -> None:
    """Orbax logs every save/restore at INFO through absl; keep its warnings, drop the chatter."""
    import logging as std_logging
    from absl import logging
    handler = logging.get_absl_handler()
    if not any(getattr(f, "_dds_orbax", False) for f in handler.filters):
        def keep(record):
            return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname
        keep._dds_orbax = True
        handler.addFilter(keep)


def _checkpointer():
    import orbax.checkpoint as ocp
    _quiet_orbax_info()
    return ocp.StandardCheckpointer()


def write_json_atomic(path, obj) -> None:
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=_json_default)
        f.write("\n")
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def save_model(directory, kind: str, config: dict, params, overwrite: bool = False) -> pathlib.Path:
    """Write a model directory. ``model.json`` is written last and marks a complete model: a directory
    left by an interrupted write (params but no model.json) is replaced without ``overwrite``."""
    directory = pathlib.Path(directory).absolute()
    if (directory / "model.json").exists() and not overwrite:
        raise FileExistsError(f"{directory} already holds a model (pass overwrite=True / --overwrite)")
    directory.mkdir(parents=True, exist_ok=True)
    params = _to_numpy(params)
    tmp = directory / "params.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    ckptr = _checkpointer()
    ckptr.save(tmp, params)
    ckptr.wait_until_finished()
    (directory / "model.json").unlink(missing_ok=True)
    shutil.rmtree(directory / "params", ignore_errors=True)
    os.replace(tmp, directory / "params")
    write_json_atomic(directory / "model.json",
                      {"kind": kind, "config": config, "format": FORMAT, "dds_jax_version": __version__})
    return directory


REMEDY = "re-create it (convert/torch_to_flax.py --overwrite, or the command that wrote it)"


class CorruptCheckpointError(ValueError):
    """A model / checkpoint file that exists but cannot be read; the message names the file."""


def read_json(path, what: str = "file"):
    """``json.load`` of ``path``; a broken file raises CorruptCheckpointError naming it and the remedy."""
    path = pathlib.Path(path)
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise CorruptCheckpointError(f"{path}: broken {what} (invalid JSON at line {e.lineno} column "
                                     f"{e.colno}: {e.msg}); {REMEDY}") from None
    except UnicodeDecodeError:
        raise CorruptCheckpointError(f"{path}: broken {what} (not UTF-8 text); {REMEDY}") from None


def _restore(directory):
    """orbax restore of ``directory``; any failure raises CorruptCheckpointError naming the broken file
    (its JSON metadata when one does not parse, else the directory)."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise CorruptCheckpointError(f"{directory}: missing orbax checkpoint directory; {REMEDY}")
    try:
        return _checkpointer().restore(directory)
    except Exception as e:  # orbax / tensorstore raise many types; none names the file
        for meta in sorted(directory.glob("_*METADATA")):
            read_json(meta, "orbax metadata")
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CorruptCheckpointError(f"{directory}: unreadable orbax checkpoint ({reason}); {REMEDY}") from None


def load_model(directory, expect_kind: str = None) -> Model:
    directory = pathlib.Path(directory).absolute()
    meta_path = directory / "model.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{directory}: not a dds-jax model directory (no model.json); "
                                "convert a .pt first with convert/torch_to_flax.py")
    meta = read_json(meta_path, "model.json")
    if not isinstance(meta, dict) or not isinstance(meta.get("kind"), str) or not isinstance(meta.get("config"), dict):
        raise CorruptCheckpointError(f"{meta_path}: broken model.json (needs a \"kind\" string and a "
                                     f"\"config\" object); {REMEDY}")
    kind = meta["kind"]
    if expect_kind is not None and kind != expect_kind:
        raise ValueError(f"{directory}: holds a {kind!r} model, expected {expect_kind!r}")
    params = _to_numpy(_restore(directory / "params"))
    return Model(kind=kind, config=meta["config"], params=params, path=directory)


def _to_numpy(tree):
    import jax
    return jax.tree_util.tree_map(lambda x: np.asarray(x), tree)


# --------------------------------------------------------------------------------------------------
# Arbitrary pytrees (optimiser state of a long run), saved by leaf index so any structure restores
# --------------------------------------------------------------------------------------------------
def save_pytree(directory, tree) -> None:
    """Save ``tree``'s leaves with orbax into ``directory`` atomically (write aside, then swap)."""
    import jax
    directory = pathlib.Path(directory).absolute()
    leaves = jax.tree_util.tree_leaves(jax.device_get(tree))
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    ckptr = _checkpointer()
    ckptr.save(tmp, {str(i): np.asarray(x) for i, x in enumerate(leaves)})
    ckptr.wait_until_finished()
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def restore_pytree(directory, like):
    """Restore leaves saved by :func:`save_pytree` into the structure of ``like`` (shapes checked)."""
    import jax
    directory = pathlib.Path(directory).absolute()
    saved = _restore(directory)
    leaves, treedef = jax.tree_util.tree_flatten(like)
    if len(saved) != len(leaves):
        raise ValueError(f"{directory}: holds {len(saved)} arrays, expected {len(leaves)}")
    out = []
    for i, ref in enumerate(leaves):
        arr = np.asarray(saved[str(i)])
        if arr.shape != np.shape(ref):
            raise ValueError(f"{directory}: array {i} has shape {arr.shape}, expected {np.shape(ref)}")
        out.append(arr.astype(np.asarray(ref).dtype))
    return jax.tree_util.tree_unflatten(treedef, out)
