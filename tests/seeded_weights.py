"""Rebuild a state_dict from a *seeded-normal-v1* manifest (the parity fixtures' weight format).

Each entry of ``manifest["entries"]`` is either ``{key, shape, seed, mean, std}`` (float32 of
``default_rng(seed).standard_normal(shape) * std + mean``) or ``{key, shape, value}`` (exact values).
"""
import json

import numpy as np

RECIPE = "seeded-normal-v1"


def tensor_from_entry(entry: dict) -> np.ndarray:
    shape = tuple(entry["shape"])
    if "value" in entry:
        return np.asarray(entry["value"], dtype=np.float32).reshape(shape)
    normal = np.random.default_rng(entry["seed"]).standard_normal(shape)
    return (normal * entry["std"] + entry["mean"]).astype(np.float32)


def load_manifest(path) -> dict:
    with open(path) as f:
        manifest = json.load(f)
    if manifest.get("recipe") != RECIPE:
        raise ValueError(f"{path}: recipe {manifest.get('recipe')!r}, expected {RECIPE!r}")
    return manifest


def load_state_dict(path) -> dict:
    """{torch key: float32 array} in state_dict order."""
    return {e["key"]: tensor_from_entry(e) for e in load_manifest(path)["entries"]}
