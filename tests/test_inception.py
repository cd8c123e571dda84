"""pytorch-fid Inception-v3 in Flax: pool3 parity (``inception_*`` fixtures), strict converter, round trip, CLI.

Tolerance: pool3 features <= 1e-4 relative (max|diff| / max|expected|, the fixture README's target for
float32 convolutions summed in a different order).
"""
import functools

import jax
import numpy as np
import pytest
from flax import traverse_util

from dds_jax import checkpoint, ops
from dds_jax.eval import metrics
from dds_jax.conversion import ConversionError, convert
from dds_jax.models import inception as inc
from fixture_utils import fixture_params, load_data, load_state_dict, manifest_config, max_rel_err, nchw_to_nhwc

pytestmark = pytest.mark.optimized     # runs faster compiled with the full XLA pipeline (conftest.py)

FEATURE_TOL = 1e-4
FIXTURES = fixture_params("inception_")


def _case_params():
    """(folder, case prefix) for every case of the manifest's ``config.cases`` ("" when none listed);
    ids ``<folder>`` / ``<folder>-<case>`` (e.g. the 400x336 ``extra_`` down-sampling case)."""
    out = []
    for p in FIXTURES:
        folder = p.values[0]
        if folder is None:
            out.append(pytest.param(None, "", id=p.id, marks=p.marks))
            continue
        for c in [c["prefix"] for c in manifest_config(folder).get("cases", [])] or [""]:
            out.append(pytest.param(folder, c, id=folder.name + (f"-{c.rstrip('_')}" if c else "")))
    return out


@functools.lru_cache(maxsize=None)
def _state_dict(folder):
    return load_state_dict(folder / "manifest.json")


@functools.lru_cache(maxsize=None)
def _converted(folder):
    return inc.convert_state_dict(_state_dict(folder), source=folder.name)


@functools.lru_cache(maxsize=None)
def _features(folder, case=""):
    """(input NHWC, our pool3, expected pool3) of one case: one forward per case, shared by the tests."""
    data = load_data(folder)
    images = nchw_to_nhwc(data[case + "input"])
    _, params = _converted(folder)
    return images, inc.pool3_features(params, images, batch_size=len(images)), data[case + "pool3"]


def _leaves_equal(a, b):
    fa, fb = jax.tree_util.tree_flatten_with_path(a)[0], jax.tree_util.tree_flatten_with_path(b)[0]
    assert [p for p, _ in fa] == [p for p, _ in fb]
    for (path, x), (_, y) in zip(fa, fb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=str(path))


@pytest.mark.parametrize("folder,case", _case_params())
def test_pool3_matches_pytorch_fid(folder, case):
    images, ours, expected = _features(folder, case)
    assert ours.shape == expected.shape == (len(images), inc.FEATURE_DIM)
    assert ours.dtype == np.float32
    assert max_rel_err(ours, expected) <= FEATURE_TOL


@pytest.mark.parametrize("folder", FIXTURES)
def test_config_matches_manifest(folder):
    config, params = _converted(folder)
    assert config["resize_input"] and config["normalize_input"]
    assert list(manifest_config(folder).get("input_range", [0, 1])) == [0, 1]
    shapes = {p: tuple(v.shape) for p, v in traverse_util.flatten_dict(params).items()}
    assert shapes == inc.param_shapes()
    assert params["Mixed_7c"]["branch_pool"]["conv"]["kernel"].shape == (1, 1, 2048, 192)


@pytest.mark.parametrize("folder", FIXTURES)
def test_fid_from_images_uses_pool3(folder, monkeypatch):
    # The 2048x2048 sqrtm itself takes ~10 s on 2 cores: capture the features instead of computing it.
    images, feats, _ = _features(folder)
    _, params = _converted(folder)
    seen = []
    monkeypatch.setattr(metrics, "fid_from_features", lambda a, b: seen.append((a, b)) or 0.0)
    metrics.fid_from_images(params, images, images[::-1], batch_size=len(images))
    (a, b), = seen
    np.testing.assert_array_equal(a, feats)
    np.testing.assert_allclose(b, feats[::-1], rtol=0, atol=1e-6 * np.abs(feats).max())


@pytest.mark.parametrize("folder", FIXTURES)
def test_registry_and_module_prefix(folder):
    sd = _state_dict(folder)
    _, params = _converted(folder)
    _, via_registry = convert("inception", {f"module.{k}": v for k, v in sd.items()}, source="x")
    _leaves_equal(params, via_registry)


@pytest.mark.parametrize("folder", FIXTURES)
def test_converter_is_strict(folder):
    sd = {k: v for k, v in _state_dict(folder).items() if not k.startswith("fc.")}
    key = next(k for k in sd if k.endswith("conv.weight"))
    with pytest.raises(ConversionError, match="missing key"):
        inc.convert_state_dict({k: v for k, v in sd.items() if k != key})
    with pytest.raises(ConversionError, match="has shape"):
        inc.convert_state_dict({**sd, key: sd[key][:1]})
    with pytest.raises(ConversionError, match="unexpected keys"):
        inc.convert_state_dict({**sd, "AuxLogits.conv0.conv.weight": np.zeros((128, 768, 1, 1))})
    with pytest.raises(ConversionError, match="mapping"):
        inc.convert_state_dict([1, 2, 3])


@pytest.mark.parametrize("folder", FIXTURES)
def test_checkpoint_round_trip(folder, tmp_path):
    config, params = _converted(folder)
    checkpoint.save_model(tmp_path / "inc", "inception", config, params)
    model = checkpoint.load_model(tmp_path / "inc", expect_kind="inception")
    assert model.config == config
    _leaves_equal(params, model.params)


@pytest.mark.parametrize("folder", FIXTURES)
def test_cli_converts_a_torch_file(folder, tmp_path, program):
    torch = pytest.importorskip("torch")
    sd = _state_dict(folder)
    src = tmp_path / "pt_inception.pth"
    torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}, src)
    run = program("convert/torch_to_flax.py", "--kind=inception", f"--src={src}", f"--out={tmp_path / 'out'}")
    assert run.returncode == 0, run.stderr[-2000:]
    model = checkpoint.load_model(tmp_path / "out", expect_kind="inception")
    _leaves_equal(_converted(folder)[1], model.params)

    bad = tmp_path / "bad.pth"
    torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in list(sd.items())[1:]}, bad)
    run = program("convert/torch_to_flax.py", "--kind=inception", f"--src={bad}", f"--out={tmp_path / 'bad'}")
    assert run.returncode == 2 and "missing key" in run.stderr


def test_map_batches_pads_and_trims():
    calls = []

    def fn(chunk):
        calls.append(chunk.shape)
        return chunk.sum(axis=(1, 2, 3))

    x = np.arange(5 * 2 * 2 * 3, dtype=np.float32).reshape(5, 2, 2, 3)
    np.testing.assert_array_equal(ops.map_batches(fn, x, 2), x.sum(axis=(1, 2, 3)))
    assert calls == [(2, 2, 2, 3)] * 3
    calls.clear()
    ops.map_batches(fn, x, 50)
    assert calls == [(5, 2, 2, 3)]
    with pytest.raises(ValueError, match="empty"):
        ops.map_batches(fn, x[:0], 2)
    with pytest.raises(ValueError, match="batch_size"):
        ops.map_batches(fn, x, 0)


def test_image_checks():
    with pytest.raises(ValueError, match="NCHW"):
        inc.check_images(np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="NHWC"):
        inc.check_images(np.zeros((8, 8, 3), np.float32))
    u8 = np.full((1, 2, 2, 3), 255, np.uint8)
    np.testing.assert_array_equal(inc.to_float01(u8), np.ones((1, 2, 2, 3), np.float32))
