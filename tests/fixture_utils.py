"""Find parity-fixture folders and rebuild their weights.

Fixtures live in ``tests/fixtures/`` unless the environment variable ``DDS_FIXTURES`` points at another
folder of fixtures in the same format. Each test family finds its folders by name prefix
(``stylegan2_*``, ``vgg16_*`` …); a family with no folder is skipped, not failed.
"""
import json
import os
import pathlib

import numpy as np
import pytest

from seeded_weights import load_state_dict  # noqa: F401  (re-exported for tests)

DEFAULT_ROOT = pathlib.Path(__file__).parent / "fixtures"


def fixtures_root() -> pathlib.Path:
    return pathlib.Path(os.environ.get("DDS_FIXTURES", DEFAULT_ROOT))


def fixture_dirs(prefix: str):
    root = fixtures_root()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix))


def fixture_params(prefix: str):
    """pytest params for every folder of a family, ids = folder names; one skip-param if none."""
    dirs = fixture_dirs(prefix)
    if not dirs:
        return [pytest.param(None, id=f"no-{prefix}-fixture",
                             marks=pytest.mark.skip(reason=f"no {prefix}* folder in {fixtures_root()}"))]
    return [pytest.param(d, id=d.name) for d in dirs]


def manifest_config(folder, name="manifest.json") -> dict:
    with open(pathlib.Path(folder) / name) as f:
        return json.load(f)["config"]


def load_data(folder) -> dict:
    with np.load(pathlib.Path(folder) / "data.npz") as z:
        return {k: z[k] for k in z.files}


def nchw_to_nhwc(x):
    return np.transpose(np.asarray(x), (0, 2, 3, 1))


def max_rel_err(actual, expected) -> float:
    """max|a - e| / max|e|: the fixtures' relative tolerance convention."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-30))


def max_abs_err(actual, expected) -> float:
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float(np.max(np.abs(actual - expected)))
