"""Perceptual backbones: parity with torchvision (fixtures), conversion layouts, strict errors, CLI round trip.

Parity: every case of every ``<family>_*`` fixture folder (manifest ``config.cases``, key prefix "" or
``extra_``; test id ``<folder>-<case>``) is run once; each stored map is compared
with max|a - e| / max|e| <= 1e-4: whole maps where stored, else the top-left 16x16 crop plus the
per-channel spatial mean and std (population std, ddof=0, computed in float64 — what the fixtures hold).
"""
import functools
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dds_jax import checkpoint
from dds_jax.conversion import ConversionError, convert
from dds_jax.models import backbones
from fixture_utils import (fixture_dirs, fixture_params, load_data, load_state_dict, manifest_config,
                           max_rel_err, nchw_to_nhwc)

REPO = pathlib.Path(__file__).resolve().parents[1]
REL_TOL = 1e-4
FAMILIES = {"vgg16": "vgg16_", "alexnet": "alexnet_", "squeezenet": "squeezenet_", "resnet18": "resnet18_"}


def _cases(folder):
    """The key prefixes of a fixture's cases (manifest ``config.cases[].prefix``; "" when it lists none)."""
    return [c["prefix"] for c in manifest_config(folder).get("cases", [])] or [""]


def _family_params():
    """(kind, folder, case prefix) for every case of every fixture; ids ``<folder>`` / ``<folder>-<case>``."""
    out = []
    for kind, prefix in FAMILIES.items():
        for p in fixture_params(prefix):
            folder = p.values[0]
            if folder is None:
                out.append(pytest.param(kind, None, "", id=p.id, marks=p.marks))
                continue
            for case in _cases(folder):
                out.append(pytest.param(kind, folder, case, id=folder.name + (f"-{case.rstrip('_')}" if case else "")))
    return out


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _flatten(v, f"{prefix}{k}/")
    else:
        yield prefix.rstrip("/"), np.asarray(tree)


def _assert_same_params(a, b):
    fa, fb = dict(_flatten(a)), dict(_flatten(b))
    assert set(fa) == set(fb)
    for k, v in fa.items():
        np.testing.assert_array_equal(fb[k], v, err_msg=k)


def _bare(kind, sd):
    """A fixture state_dict in the bare layout (``0.weight``, ``conv1.weight``): without the ``module.``
    and ``features.`` prefixes a fixture may use (torchvision's whole-model keys), so tests can build
    every layout from it whatever the fixture holds."""
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    if backbones.get_backbone(kind).features_prefix and any(k.startswith("features.") for k in sd):
        sd = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
    return sd


def _smallest_state_dict(kind):
    """The bare state_dict (see :func:`_bare`) of the family's smallest fixture."""
    dirs = fixture_dirs(FAMILIES[kind])
    if not dirs:
        pytest.skip(f"no {FAMILIES[kind]}* fixture")
    folder = min(dirs, key=lambda d: (d / "manifest.json").stat().st_size)
    return _bare(kind, load_state_dict(folder / "manifest.json"))


def _input_for(config, data, case=""):
    """The fixture input as ``extract`` takes it (NHWC; [-1, 1] if normalised) and the imagenet_normalize flag."""
    x = nchw_to_nhwc(data[case + "input"]).astype(np.float32)
    norm = str(config.get("input_normalisation", "none")).lower()
    if norm.startswith("none"):
        return x, False
    if "imagenet" in norm:
        lo, hi = config.get("input_range", [-1, 1])
        return (x - lo) / (hi - lo) * 2.0 - 1.0, True
    pytest.fail(f"unsupported input_normalisation {norm!r}")


def _stats(f):
    f = np.asarray(f, np.float64)
    return f.mean(axis=(2, 3)), f.std(axis=(2, 3))


# ------------------------------------------------------------------------------------------------
# Parity with torchvision
# ------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _converted(kind, folder):
    return convert(kind, load_state_dict(folder / "manifest.json"), source=str(folder))[1]


@pytest.mark.parametrize("kind,folder,case", _family_params())
def test_parity_with_torchvision(kind, folder, case, record_property):
    config = manifest_config(folder)
    spec = backbones.get_backbone(kind)
    layers = [str(o).split()[0] for o in config["outputs"]]
    assert tuple(layers) == spec.layer_names
    data = load_data(folder)
    x, imagenet = _input_for(config, data, case)
    params = _converted(kind, folder)
    feats = backbones.jitted(kind, imagenet)(params, jnp.asarray(x))
    assert len(feats) == len(layers)
    errors = {}
    for name, f in zip(layers, feats):
        f = np.transpose(np.asarray(f), (0, 3, 1, 2))  # NCHW like the fixture
        mean, std = _stats(f)
        key = case + name
        errors[f"{name}_mean"] = max_rel_err(mean, data[f"{key}_mean"])
        errors[f"{name}_std"] = max_rel_err(std, data[f"{key}_std"])
        if key in data:
            assert f.shape == data[key].shape, (name, f.shape, data[key].shape)
            errors[name] = max_rel_err(f, data[key])
        else:
            crop = data[f"{key}_crop"]
            assert f.shape[:2] == crop.shape[:2] and f.shape[2] >= crop.shape[2] and f.shape[3] >= crop.shape[3]
            errors[f"{name}_crop"] = max_rel_err(f[:, :, :crop.shape[2], :crop.shape[3]], crop)
    for k, v in errors.items():
        record_property(k, f"{v:.2e}")
    print(f"\n{folder.name} {case or 'main'} case: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    bad = {k: v for k, v in errors.items() if not v <= REL_TOL}
    assert not bad, f"relative error above {REL_TOL}: {bad}"


# ------------------------------------------------------------------------------------------------
# Building blocks and API
# ------------------------------------------------------------------------------------------------
def _max_pool_reference(x, k, s, p, ceil_mode):
    """numpy F.max_pool2d on NCHW (-inf padding)."""
    n = x.shape[2]
    out = backbones.pool_output_size(n, k, s, p, ceil_mode)
    pad = np.full(x.shape[:2] + (n + 2 * p + k, n + 2 * p + k), -np.inf)
    pad[:, :, p:p + n, p:p + n] = x
    res = np.empty(x.shape[:2] + (out, out))
    for i in range(out):
        for j in range(out):
            res[:, :, i, j] = pad[:, :, i * s:i * s + k, j * s:j * s + k].max(axis=(2, 3))
    return res


@pytest.mark.parametrize("n,k,s,p,ceil_mode", [(7, 3, 2, 0, True), (8, 3, 2, 0, True), (127, 3, 2, 0, True),
                                               (8, 3, 2, 1, True), (9, 2, 2, 0, True), (8, 3, 2, 0, False),
                                               (64, 3, 2, 1, False), (55, 3, 2, 0, False)])
def test_max_pool_matches_torch_semantics(n, k, s, p, ceil_mode):
    x = np.random.default_rng(n).normal(size=(1, 2, n, n)).astype(np.float32)
    got = np.transpose(np.asarray(backbones.max_pool(jnp.asarray(nchw_to_nhwc(x)), k, s, p, ceil_mode)),
                       (0, 3, 1, 2))
    np.testing.assert_array_equal(got, _max_pool_reference(x, k, s, p, ceil_mode))
    try:
        import torch
    except ImportError:
        return
    ref = torch.nn.functional.max_pool2d(torch.from_numpy(x), k, s, p, ceil_mode=ceil_mode).numpy()
    np.testing.assert_array_equal(got, ref)


def test_registry_and_unknown_name():
    assert backbones.names() == sorted(FAMILIES)
    for name in backbones.names():
        spec = backbones.get_backbone(name)
        assert spec.name == name and spec.layer_names and spec.input_size > 0
        assert "[-1, 1]" in spec.input_convention
    with pytest.raises(ValueError, match="vgg19.*alexnet, resnet18, squeezenet, vgg16"):
        backbones.get_backbone("vgg19")
    with pytest.raises(ValueError, match="known backbones"):
        backbones.extract("vgg19", {}, jnp.zeros((1, 32, 32, 3)))
    from dds_jax.dds import perceptual
    with pytest.raises(ValueError, match="known backbones"):
        perceptual.check_backbone("lenet")


def test_imagenet_normalize_and_input_checks():
    """imagenet_normalize = [-1,1] -> [0,1] -> (x - mean) / std before the first conv; NCHW is refused."""
    params = backbones.random_params("vgg16", seed=1)
    x = jax.random.uniform(jax.random.PRNGKey(2), (1, 32, 32, 3), minval=-1.0, maxval=1.0)
    manual = (np.asarray(x) * 0.5 + 0.5 - np.array(backbones.IMAGENET_MEAN)) / np.array(backbones.IMAGENET_STD)

    @jax.jit
    def both(p, x, manual):
        return (backbones.extract("vgg16", {"params": p}, x, imagenet_normalize=True),
                backbones.extract("vgg16", p, manual))

    a, b = both(params, x, jnp.asarray(manual, jnp.float32))
    assert [f.shape[-1] for f in a] == [64, 64, 256, 512]
    for fa, fb in zip(a, b):
        np.testing.assert_allclose(np.asarray(fa), np.asarray(fb), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="NCHW"):
        backbones.extract("vgg16", params, jnp.zeros((1, 3, 32, 32)))


def test_gradients_flow_to_the_images():
    """The DDS loss differentiates the features with respect to the images (inside one jit)."""
    params = backbones.random_params("alexnet", seed=2)
    x = jax.random.uniform(jax.random.PRNGKey(4), (1, 64, 64, 3), minval=-1.0, maxval=1.0)
    grad = jax.jit(jax.grad(lambda im, p: sum(jnp.mean(f ** 2) for f in backbones.extract("alexnet", p, im))))
    g = np.asarray(grad(x, params))
    assert g.shape == x.shape and np.all(np.isfinite(g)) and np.abs(g).max() > 0


@pytest.mark.parametrize("kind", sorted(FAMILIES))
def test_random_params_match_declared_shapes(kind):
    flat = {tuple(k.split("/")): v.shape for k, v in _flatten(backbones.random_params(kind))}
    assert flat == backbones.param_shapes(kind)
    assert all(v.dtype == np.float32 for _, v in _flatten(backbones.random_params(kind)))


# ------------------------------------------------------------------------------------------------
# Conversion: layouts and strict errors
# ------------------------------------------------------------------------------------------------
def _torchvision_layout(kind, sd, data_parallel=False):
    """A whole-model torchvision state_dict: ``features.`` keys plus the tensors conversion drops."""
    extra = {"fc.weight": np.zeros((10, 512), np.float32), "fc.bias": np.zeros(10, np.float32)}
    if backbones.get_backbone(kind).features_prefix:
        sd = {f"features.{k}": v for k, v in sd.items()}
        extra = {"classifier.1.weight": np.zeros((10, 4), np.float32), "classifier.1.bias": np.zeros(10, np.float32)}
        if kind == "vgg16":
            extra.update({f"features.{i}.{p}": np.zeros(3, np.float32)
                          for i in (21, 24, 26, 28) for p in ("weight", "bias")})
    sd = dict(sd, **extra)
    return {f"module.{k}": v for k, v in sd.items()} if data_parallel else sd


@pytest.mark.parametrize("kind", sorted(FAMILIES))
def test_torchvision_layouts_are_equivalent(kind):
    sd = _smallest_state_dict(kind)
    cfg, bare = convert(kind, sd)
    assert cfg["backbone"] == kind and cfg["layers"] == list(backbones.get_backbone(kind).layer_names)
    for dp in (False, True):
        _, tree = convert(kind, _torchvision_layout(kind, sd, data_parallel=dp))
        _assert_same_params(bare, tree)


def test_missing_key_names_key_and_shape():
    sd = _smallest_state_dict("vgg16")
    shape = sd.pop("0.weight").shape
    with pytest.raises(ConversionError, match=r"missing key '0\.weight'.*" + _re_shape(shape)):
        convert("vgg16", sd)
    sd = _torchvision_layout("resnet18", _smallest_state_dict("resnet18"))
    del sd["layer2.0.downsample.1.running_var"]
    with pytest.raises(ConversionError, match=r"layer2\.0\.downsample\.1\.running_var"):
        convert("resnet18", sd)


def test_wrong_shape_names_key_and_both_shapes():
    sd = _torchvision_layout("alexnet", _smallest_state_dict("alexnet"))
    shape = sd["features.3.weight"].shape
    sd["features.3.weight"] = np.zeros((192, 64, 3, 3), np.float32)
    with pytest.raises(ConversionError, match=r"features\.3\.weight.*\(192, 64, 3, 3\).*" + _re_shape(shape)):
        convert("alexnet", sd)


def test_unknown_keys_are_rejected():
    sd = _smallest_state_dict("squeezenet")
    sd["3.squeeze.extra"] = np.zeros(3, np.float32)
    with pytest.raises(ConversionError, match=r"unexpected keys.*3\.squeeze\.extra"):
        convert("squeezenet", sd)
    # a VGG16 checkpoint given as ResNet-18 fails loudly instead of converting garbage
    with pytest.raises(ConversionError, match="missing key 'bn1.bias'"):
        convert("resnet18", _smallest_state_dict("vgg16"))
    with pytest.raises(ConversionError, match="flat state_dict"):
        convert("vgg16", [np.zeros(3)])


def _re_shape(shape):
    return r"\(" + r", ".join(str(s) for s in shape) + r"\)"


# ------------------------------------------------------------------------------------------------
# .pt / .npz -> convert/torch_to_flax.py -> model directory -> load_model -> extract
# ------------------------------------------------------------------------------------------------
PT_KINDS = ("vgg16", "resnet18")  # through torch.save/.pt; the others through .npz (no torch start-up)


def _save_state_dict(path, sd):
    if path.suffix == ".pt":
        import torch
        torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}, path)
    else:
        np.savez(path, **sd)


@pytest.fixture(scope="module")
def converted_models(tmp_path_factory):
    """Every family with a fixture, converted by the CLI from a whole-model torchvision state_dict
    (``features.``/``classifier.``/``fc.`` keys; ResNet-18 also with ``module.``), plus one broken input.

    VGG16 and ResNet-18 go through a ``torch.save``'d ``.pt`` (the real torchvision format), AlexNet and
    SqueezeNet through ``.npz`` to spare two torch start-ups; the CLI processes run concurrently.
    """
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("backbones")
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    jobs = {}

    def start(kind, sd, src, out):
        _save_state_dict(src, sd)
        cmd = [sys.executable, "convert/torch_to_flax.py", f"--kind={kind}", f"--src={src}", f"--out={out}"]
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    for kind, prefix in FAMILIES.items():
        dirs = fixture_dirs(prefix)
        if dirs:
            sd = _bare(kind, load_state_dict(dirs[0] / "manifest.json"))
            src = root / (f"{kind}.pt" if kind in PT_KINDS else f"{kind}.npz")
            proc = start(kind, _torchvision_layout(kind, sd, data_parallel=kind == "resnet18"), src, root / kind)
            jobs[kind] = (proc, sd, root / kind)
    if "vgg16" in jobs:  # a broken state_dict: exit 2 naming the missing key
        bad = {k: v for k, v in jobs["vgg16"][1].items() if k != "19.bias"}
        jobs["bad"] = (start("vgg16", bad, root / "bad.npz", root / "bad"), bad, root / "bad")
    results = {}
    for kind, (proc, sd, out) in jobs.items():
        stdout, stderr = proc.communicate(timeout=300)
        results[kind] = (proc.returncode, stdout + stderr, sd, out)
    return results


@pytest.mark.parametrize("kind", sorted(FAMILIES))
def test_converter_cli_round_trip(kind, converted_models):
    if kind not in converted_models:
        pytest.skip(f"no {FAMILIES[kind]}* fixture")
    rc, log, sd, out = converted_models[kind]
    assert rc == 0, log
    model = checkpoint.load_model(out, expect_kind=kind)
    cfg, direct = convert(kind, sd)
    assert model.config == cfg
    _assert_same_params(direct, model.params)
    x = jax.random.uniform(jax.random.PRNGKey(3), (1, 96, 96, 3), minval=-1.0, maxval=1.0)
    fn = backbones.jitted(kind)
    for a, b in zip(fn(model.params, x), fn(direct, x)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_converter_cli_reports_conversion_errors(converted_models):
    if "bad" not in converted_models:
        pytest.skip("no vgg16_* fixture")
    rc, log, _, out = converted_models["bad"]
    assert rc == 2 and "19.bias" in log, log
    assert not (out / "model.json").exists()
