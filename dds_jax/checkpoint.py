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

from dds_jax import __version__, files

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


def _save_orbax(directory: pathlib.Path, tree) -> None:
    """orbax save of ``tree`` into ``directory``, atomically: written beside it, then swapped in (an
    interrupted save leaves the previous checkpoint, or none, never half of one)."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    ckptr = _checkpointer()
    ckptr.save(tmp, tree)
    ckptr.wait_until_finished()
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def save_model(directory, kind: str, config: dict, params, overwrite: bool = False) -> pathlib.Path:
    """Write a model directory. ``model.json`` is written last and marks a complete model: a directory
    left by an interrupted write (params but no model.json) is replaced without ``overwrite``."""
    directory = pathlib.Path(directory).absolute()
    if (directory / "model.json").exists() and not overwrite:
        raise FileExistsError(f"{directory} already holds a model (pass overwrite=True / --overwrite)")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.json").unlink(missing_ok=True)
    _save_orbax(directory / "params", _to_numpy(params))
    files.write_json(directory / "model.json",
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
    _check_config_matches(kind, meta["config"], params, meta_path)
    return Model(kind=kind, config=meta["config"], params=params, path=directory)


# kind -> the function reading the shape-fixing config fields back from a parameter tree
_DESCRIBE_PARAMS = {"stylegan2": "dds_jax.models.stylegan2:describe_params",
                    "segmenter": "dds_jax.models.segmenter:describe_params"}


def config_mismatches(config: dict, stored: dict) -> list:
    """'field is X but the stored parameters have Y' for every field of ``config`` that differs from
    ``stored`` (what the parameters' shapes say; a dict field is compared entry by entry)."""
    out = []
    for field, have in stored.items():
        if field not in config:
            continue
        said = config[field]
        if isinstance(have, dict) and isinstance(said, dict):
            said = {str(k): v for k, v in said.items()}
            out += [f"{field}[{k!r}] is {said.get(k)!r} but the stored parameters have {have.get(k)!r}"
                    for k in sorted(set(said) | set(have), key=lambda k: (len(k), k)) if said.get(k) != have.get(k)]
        elif said != have:
            out.append(f"{field} is {said!r} but the stored parameters have {have!r}")
    return out


def _check_config_matches(kind: str, config: dict, params, meta_path: pathlib.Path) -> None:
    """model.json must describe the stored parameters: an edited field (n_mlp, a channel count) would
    load and silently drop layers, or fail deep inside the model with a traceback."""
    if kind not in _DESCRIBE_PARAMS:
        return
    import importlib
    module, fn = _DESCRIBE_PARAMS[kind].split(":")
    try:
        stored = getattr(importlib.import_module(module), fn)(params)
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise CorruptCheckpointError(f"{meta_path.parent / 'params'}: not the parameters of a {kind} model "
                                     f"({type(e).__name__}: {e}); {REMEDY}") from None
    wrong = config_mismatches(config, stored)
    if wrong:
        raise CorruptCheckpointError(f"{meta_path}: {'; '.join(wrong)}; correct model.json (or {REMEDY})")


def _to_numpy(tree):
    import jax
    return jax.tree_util.tree_map(lambda x: np.asarray(x), tree)


# --------------------------------------------------------------------------------------------------
# Run / training state: any pytree, stored and restored by key path
# --------------------------------------------------------------------------------------------------
class StateMismatchError(ValueError):
    """A saved state whose key paths or shapes differ from the state the program expects."""


def _key_name(entry) -> str:
    for attr in ("key", "name", "idx"):          # DictKey, GetAttrKey (NamedTuple / dataclass), SequenceKey
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def state_paths(tree) -> dict:
    """{"field/sub/0": leaf} for every leaf of ``tree``: NamedTuple and dataclass fields by name, dict
    keys, list indices. The order of fields plays no part."""
    import jax
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {"/".join(_key_name(k) for k in path): leaf for path, leaf in flat}


def _nested(flat: dict) -> dict:
    out = {}
    for path, leaf in flat.items():
        node = out
        *parents, last = path.split("/")
        for name in parents:
            node = node.setdefault(name, {})
        node[last] = leaf
    return out


def save_state(directory, tree) -> None:
    """Save ``tree`` with orbax into ``directory``, keyed by path (:func:`state_paths`), atomically:
    written aside, then swapped in, so an interrupted save keeps the previous state."""
    import jax
    directory = pathlib.Path(directory).absolute()
    flat = {k: np.asarray(v) for k, v in state_paths(jax.device_get(tree)).items()}
    _save_orbax(directory, _nested(flat))


def restore_state(directory, like):
    """The state saved by :func:`save_state`, in the structure of ``like``: each leaf is found by its
    key path, so reordered fields restore correctly; a missing, unexpected or reshaped entry raises
    StateMismatchError naming it (never a silent swap of two same-shaped arrays)."""
    import jax
    directory = pathlib.Path(directory).absolute()
    saved = {k: v for k, v in state_paths(_restore(directory)).items()}
    expected = state_paths(like)
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    if missing or unexpected:
        parts = ([f"missing {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "")] if missing else []) + \
                ([f"unexpected {', '.join(unexpected[:5])}" + (" ..." if len(unexpected) > 5 else "")]
                 if unexpected else [])
        raise StateMismatchError(f"{directory}: the saved state does not match this program's state "
                                 f"({'; '.join(parts)}); it was written by another version or setting: "
                                 "start the run again (overwrite)")
    leaves, treedef = jax.tree_util.tree_flatten(like)
    out = []
    for path, ref in expected.items():
        arr = np.asarray(saved[path])
        if arr.shape != np.shape(ref):
            raise StateMismatchError(f"{directory}: {path} has shape {arr.shape}, this program expects "
                                     f"{np.shape(ref)}; start the run again (overwrite)")
        out.append(arr.astype(np.asarray(ref).dtype))
    return jax.tree_util.tree_unflatten(treedef, out)


# --------------------------------------------------------------------------------------------------
# Where a model directory is: a path, or ``demo:<name>`` for the tiny models shipped with the package
# --------------------------------------------------------------------------------------------------
DEMO_DIR = pathlib.Path(__file__).parent / "assets" / "demo"
DEMO_PREFIX = "demo:"


def resolve_model_path(path) -> pathlib.Path:
    """A model directory; ``demo:<name>`` names one of the tiny models shipped with the package. Every
    command that takes a model (main, sample, segment, evaluate, ...) resolves its paths here."""
    path = str(path)
    if path.startswith(DEMO_PREFIX):
        name = path[len(DEMO_PREFIX):]
        p = DEMO_DIR / name
        if not name or not (p / "model.json").is_file():
            names = sorted(d.name for d in DEMO_DIR.iterdir() if (d / "model.json").is_file())
            raise FileNotFoundError(f"{path}: no such demo model; shipped: "
                                    f"{', '.join(DEMO_PREFIX + n for n in names)}")
        return p
    p = pathlib.Path(path).expanduser()
    if not (p / "model.json").is_file():
        raise FileNotFoundError(f"{path}: no converted model there (expected {p}/model.json); convert "
                                "a checkpoint with convert/torch_to_flax.py")
    return p
