"""The one-shot part segmenter (RepurposingGAN FewShotCNN, paper Sec. 3.2): parity with the PyTorch
original (``segmenter_*`` fixtures and the tiny ``.pt`` of ``stylegan2_*``), the memory-light first layer
against the concatenated input, conversion errors, the segmentation API and one-shot training.

Tolerances: logits <= 1e-4 relative (max|diff| / max|logits|, the fixture READMEs' target); masks must
agree wherever the reference margin |logit_a - logit_b| exceeds twice the absolute logit tolerance.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dds_jax import checkpoint, files, generation
from dds_jax.segmentation import oneshot as segmentation
from dds_jax.conversion import ConversionError, convert
from dds_jax.models import segmenter as S
from dds_jax.models import stylegan2 as sg
from fixture_utils import (fixture_params, load_data, load_state_dict, manifest_config, max_rel_err,
                           nchw_to_nhwc)

LOGIT_TOL = 1e-4
STAT_TOL = 1e-3
SEG_FIXTURES = fixture_params("segmenter_")
_PT = [p for p in fixture_params("stylegan2_")
       if p.values[0] is None or (p.values[0] / "manifest_segmenter.json").is_file()]
TINY_PT_FIXTURES = _PT if any(p.values[0] is not None for p in _PT) else [
    pytest.param(None, marks=pytest.mark.skip(reason="no stylegan2_* fixture with a segmenter"))]


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------
TINY_CONFIG = sg.GeneratorConfig(size=32, style_dim=32, n_mlp=2, channels=((4, 16), (8, 16), (16, 16), (32, 16)))


@functools.lru_cache(maxsize=None)
def tiny_variables(seed: int = 0):
    """Random variables of a 32x32 generator with rosinality's init, drawn with numpy (no compile)."""
    shapes = jax.eval_shape(lambda k: sg.init_variables(TINY_CONFIG, k), jax.random.PRNGKey(0))
    rng = np.random.default_rng(seed)

    def init(path, s):
        names = [getattr(p, "key", str(p)) for p in path]
        if names[-1] == "bias" and "modulation" in names:
            return np.ones(s.shape, np.float32)
        if names[-1] in ("bias", "noise_strength"):
            return np.zeros(s.shape, np.float32)
        std = 1.0 / TINY_CONFIG.lr_mlp if ("mapping" in names and names[-1] == "weight") else 1.0
        return (rng.standard_normal(s.shape) * std).astype(np.float32)
    return jax.tree_util.tree_map_with_path(init, shapes)


def tiny_generator(seed: int = 0) -> sg.LoadedGenerator:
    return sg.from_variables(TINY_CONFIG, tiny_variables(seed))


def blob_label(features, level: int = 2, quantile: float = 0.7, size: int = 32) -> np.ndarray:
    """A blob-shaped 'part': where a feature map (8x8) projects high on a fixed direction. [H, W] 0/1."""
    f = np.asarray(features[level])
    score = f @ np.random.default_rng(0).standard_normal(f.shape[-1])
    label = (score >= np.quantile(score, quantile)).astype(np.int32)
    s = size // label.shape[0]
    return np.repeat(np.repeat(label, s, 0), s, 1)


def _torch_state_dict(params) -> dict:
    """Flax segmenter params -> a PyTorch-layout state_dict (layers.{2k}.weight/bias)."""
    sd = {}
    for k in range(len(params)):
        sd[f"layers.{2 * k}.weight"] = np.transpose(np.asarray(params[f"conv{k}"]["kernel"]), (3, 2, 0, 1))
        sd[f"layers.{2 * k}.bias"] = np.asarray(params[f"conv{k}"]["bias"])
    return sd


def _check_parity(logits, data, record_property=None, label=""):
    expected = nchw_to_nhwc(data["logits"])
    err = max_rel_err(logits, expected)
    print(f"{label} logits max rel err {err:.2e}")
    if record_property:
        record_property(f"{label}_logits_rel_err", err)
    assert err <= LOGIT_TOL, err
    top2 = np.sort(expected, axis=-1)[..., -2:]
    margin = top2[..., 1] - top2[..., 0]
    confident = margin > 2 * LOGIT_TOL * np.max(np.abs(expected))
    mask = np.asarray(logits).argmax(-1)
    assert np.array_equal(mask[confident], data["mask"][confident]), int((mask != data["mask"])[confident].sum())
    assert confident.mean() > 0.99


@functools.lru_cache(maxsize=None)
def _features_fn(config):
    module = sg.Generator(config)

    @jax.jit
    def f(variables, z):
        return module.apply(variables, z, input_is_latent=False, truncation=1.0)[1]
    return f


# ------------------------------------------------------------------------------------------------
# Parity with the PyTorch original
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("folder", SEG_FIXTURES)
def test_segmenter_fixture_parity(folder, record_property):
    """``segmenter_*``: FewShotCNN on the features of the manifest_generator.json generator."""
    expected_cfg = manifest_config(folder)
    cfg, params = convert("segmenter", load_state_dict(folder / "manifest.json"), source=folder.name)
    assert (cfg["size"], cfg["in_ch"], cfg["n_class"]) == (expected_cfg["size"], expected_cfg["in_ch"],
                                                          expected_cfg["n_class"])
    gcfg, gvars = sg.convert_state_dict(load_state_dict(folder / "manifest_generator.json"))
    gen = sg.from_variables(gcfg, gvars)
    assert segmentation.generator_feature_channels(gen.config) == cfg["in_ch"]
    data = load_data(folder)
    size = gen.config.size

    @jax.jit
    def run(gv, p, z):
        feats = _features_fn(gen.config)(gv, z)
        return S.FewShotCNN(cfg["n_class"], cfg["size"], memory_light=True).apply(
            {"params": p}, feats, size, mutable=["intermediates"])

    logits, state = run(gen.variables, params, jnp.asarray(data["z"]))
    _check_parity(np.asarray(logits), data, record_property, folder.name)
    # per-layer statistics (locate a mismatch): mean / population std over H, W of every conv
    for k in range(len(params)):
        if f"conv{k}_mean" not in data:
            continue
        y = np.asarray(state["intermediates"][f"out{k}"][0], np.float64)
        for stat, fn in (("mean", np.mean), ("std", np.std)):
            ref = data[f"conv{k}_{stat}"]
            assert max_rel_err(fn(y, axis=(1, 2)), ref) <= STAT_TOL, (k, stat)


@pytest.mark.parametrize("folder", TINY_PT_FIXTURES)
def test_tiny_pt_segmenter_parity(folder, record_property):
    """The real ``segmenter.pt`` of ``stylegan2_tiny_pt`` equals its manifest and matches its logits,
    through both the memory-light and the concatenated first layer."""
    cfg, params = convert("segmenter", load_state_dict(folder / "manifest_segmenter.json"), source="manifest")
    if (folder / "segmenter.pt").is_file():
        pytest.importorskip("torch")
        from dds_jax.conversion import torch_io
        cfg_pt, params_pt = convert("segmenter", torch_io.load_pt(folder / "segmenter.pt"), source="segmenter.pt")
        assert cfg_pt == cfg
        for k in params:
            for n in ("kernel", "bias"):
                np.testing.assert_array_equal(params_pt[k][n], params[k][n])
    gcfg, gvars = sg.convert_state_dict(load_state_dict(folder / "manifest.json"))
    gen = sg.from_variables(gcfg, gvars)
    data = load_data(folder)
    size = gen.config.size

    @jax.jit
    def run(gv, p, z):
        feats = _features_fn(gen.config)(gv, z)
        return [S.logits_from_features(p, feats, size, memory_light=ml) for ml in (True, False)]

    for memory_light, logits in zip((True, False), run(gen.variables, params, jnp.asarray(data["z"]))):
        _check_parity(np.asarray(logits), data, record_property, f"{folder.name}_ml{int(memory_light)}")


# ------------------------------------------------------------------------------------------------
# Memory-light first layer == the concatenated input
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("s,d", [(1, 3), (2, 1), (2, 4), (3, 1), (4, 2), (4, 8), (16, 1)])
def test_upsampled_conv_exact(s, d):
    rng = np.random.default_rng(s * 10 + d)
    f = jnp.asarray(rng.standard_normal((2, 16 // s if s != 3 else 5, 16 // s if s != 3 else 4, 3)), jnp.float32)
    size = (f.shape[1] * s, f.shape[2] * s)
    k = jnp.asarray(rng.standard_normal((3, 3, 3, 5)), jnp.float32)
    fast, naive = jax.jit(lambda f, k: (S.upsampled_conv([f], [k], size, d),
                                        S.dilated_conv(S.upsample_nearest(f, size), k, 0.0, d)))(f, k)
    assert fast.shape == naive.shape
    np.testing.assert_allclose(np.asarray(fast), np.asarray(naive), rtol=0, atol=1e-5)


def test_axis_phases():
    # s=2, d=1: phase 0 reads rows (q-1, q, q), phase 1 reads (q, q, q+1)
    classes, runs, lo, hi = S.axis_phases(2, 1)
    assert classes == [(-1, 0, 0), (0, 0, 1)] and runs == [(0, 1), (1, 1)] and (lo, hi) == (-1, 1)
    classes, runs, _, _ = S.axis_phases(8, 1)
    assert classes == [(-1, 0, 0), (0, 0, 0), (0, 0, 1)] and runs == [(0, 1), (1, 6), (2, 1)]
    classes, _, lo, hi = S.axis_phases(1, 2)
    assert classes == [(-2, 0, 2)] and (lo, hi) == (-2, 2)


@pytest.mark.parametrize("size", ["S", "M", "L"])
def test_memory_light_equals_concatenated(size):
    rng = np.random.default_rng(0)
    shapes = [(4, 8), (8, 8), (8, 8), (16, 4), (16, 4), (32, 4), (32, 4)]
    feats = [jnp.asarray(rng.standard_normal((2, r, r, c)), jnp.float32) for r, c in shapes]
    params = S.init_params(jax.random.PRNGKey(1), sum(c for _, c in shapes), 3, size)
    fast, naive, concatenated = jax.jit(lambda p, f: (
        S.logits_from_features(p, f, 32, memory_light=True),
        S.logits_from_features(p, f, 32, memory_light=False),
        S.FewShotCNN(3, size).apply({"params": p}, S.concat_features(f, 32))))(params, feats)
    assert fast.shape == (2, 32, 32, 3)
    assert max_rel_err(fast, naive) <= 1e-5
    np.testing.assert_array_equal(np.asarray(naive), np.asarray(concatenated))


def test_chunked_first_layer_equals_unchunked():
    rng = np.random.default_rng(2)
    feats = [jnp.asarray(rng.standard_normal((1, r, r, 6)), jnp.float32) for r in (4, 8, 16, 16)]
    k = jnp.asarray(rng.standard_normal((3, 3, 24, 8)), jnp.float32)
    b = jnp.asarray(rng.standard_normal(8), jnp.float32)
    one, four, naive = jax.jit(lambda f, k, b: (
        S.feature_conv(f, k, b, 16, chunks=1), S.feature_conv(f, k, b, 16, chunks=4),
        S.dilated_conv(S.concat_features(f, 16), k, b, 1)))(feats, k, b)
    assert max_rel_err(one, naive) <= 1e-5 and max_rel_err(four, naive) <= 1e-5
    with pytest.raises(ValueError, match="channels"):
        S.feature_conv(feats[:3], k, b, 16)


def test_gradient_memory_light_equals_concatenated():
    rng = np.random.default_rng(3)
    feats = [jnp.asarray(rng.standard_normal((1, r, r, 4)), jnp.float32) for r in (4, 8, 16)]
    params = S.init_params(0, 12, 2, "S")
    labels = jnp.asarray(rng.integers(0, 2, (1, 16, 16)), jnp.int32)

    def loss(p, ml):
        return segmentation.pixel_cross_entropy(S.logits_from_features(p, feats, 16, memory_light=ml), labels)
    g1, g2 = jax.jit(lambda p: (jax.grad(loss)(p, True), jax.grad(loss)(p, False)))(params)
    for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2)):
        assert max_rel_err(a, b) <= 1e-4


# ------------------------------------------------------------------------------------------------
# Conversion
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", ["S", "M", "L"])
def test_convert_infers_size_and_round_trips(size):
    params = S.init_params(5, 40, 4, size)
    sd = _torch_state_dict(params)
    cfg, out = convert("segmenter", sd)
    assert cfg == {"size": size, "in_ch": 40, "n_class": 4}
    cfg2, out2 = convert("segmenter", {f"module.{k}": v for k, v in sd.items()}, parts=["a", "b", "c"])
    assert cfg2["parts"] == ["a", "b", "c"]
    for k in params:
        np.testing.assert_array_equal(out[k]["kernel"], params[k]["kernel"])
        np.testing.assert_array_equal(out2[k]["bias"], params[k]["bias"])


def test_convert_errors_name_key_and_shapes():
    sd = _torch_state_dict(S.init_params(0, 40, 2, "S"))
    bad = dict(sd, **{"layers.4.weight": np.zeros((64, 63, 3, 3), np.float32)})
    with pytest.raises(ConversionError, match=r"layers\.4\.weight.*\(64, 63, 3, 3\).*\(64, 64, 3, 3\)"):
        convert("segmenter", bad)
    missing = {k: v for k, v in sd.items() if k != "layers.6.bias"}
    with pytest.raises(ConversionError, match=r"layers\.6\.bias"):
        convert("segmenter", missing)
    with pytest.raises(ConversionError, match=r"unexpected keys.*layers\.1\.weight"):
        convert("segmenter", dict(sd, **{"layers.1.weight": np.zeros(1, np.float32)}))
    with pytest.raises(ConversionError, match="4 convolutions"):
        convert("segmenter", {k: v for k, v in sd.items() if not k.startswith("layers.8")})
    with pytest.raises(ConversionError, match="not a FewShotCNN"):
        convert("segmenter", {"style.1.weight": np.zeros((4, 4), np.float32)})


# ------------------------------------------------------------------------------------------------
# Segmentation API
# ------------------------------------------------------------------------------------------------
def _segmenter(in_ch=112, n_class=4, parts=("eyes", "nose", "mouth")):
    cfg = {"size": "S", "in_ch": in_ch, "n_class": n_class}
    if parts is not None:
        cfg["parts"] = list(parts)
    return segmentation.from_params(cfg, S.init_params(0, in_ch, n_class, "S"))


def test_parse_parts():
    seg = _segmenter()
    assert segmentation.parse_parts("eyes,mouth", seg) == [1, 3]
    assert segmentation.parse_parts(["nose", 3, "nose"], seg) == [2, 3]
    assert segmentation.parse_parts("1, 2", seg) == [1, 2]
    assert segmentation.parse_parts("", seg) == [1, 2, 3]
    assert segmentation.parse_parts(None, seg) == [1, 2, 3]
    assert segmentation.parse_parts("background", seg) == [0]
    with pytest.raises(ValueError, match=r"unknown part 'hair'.*eyes \(1\), nose \(2\), mouth \(3\)"):
        segmentation.parse_parts("eyes,hair", seg)
    with pytest.raises(ValueError, match="no parts selected"):
        segmentation.parse_parts(" , ", seg)
    with pytest.raises(ValueError, match="no parts selected"):
        segmentation.parse_parts([], seg)
    with pytest.raises(ValueError, match="out of range"):
        segmentation.parse_parts("4", seg)
    with pytest.raises(ValueError, match="no part besides the background"):
        segmentation.parse_parts("", _segmenter(n_class=1, parts=None))


def test_check_compatible_names_both_channel_counts():
    seg = _segmenter(in_ch=112)
    segmentation.check_compatible(TINY_CONFIG, seg)               # 7 maps x 16 channels
    segmentation.check_compatible(TINY_CONFIG.to_dict(), seg)
    other = sg.GeneratorConfig(size=64, style_dim=32, n_mlp=2, channels=tuple((2 ** i, 16) for i in range(2, 7)))
    with pytest.raises(ValueError, match=r"112.*144"):
        segmentation.check_compatible(other, seg)
    assert segmentation.generator_feature_channels(sg.GeneratorConfig(size=256)) == 5376


def test_load_segmenter_and_binary_mask(tmp_path):
    seg = _segmenter(parts=("a", "b", "c"))
    checkpoint.save_model(tmp_path / "seg", "segmenter", seg.config, seg.params)
    loaded = segmentation.load_segmenter(tmp_path / "seg")
    assert loaded.parts == ["a", "b", "c"] and loaded.n_class == 4 and loaded.in_ch == 112
    rng = np.random.default_rng(0)
    feats = [jnp.asarray(rng.standard_normal((2,) + s[1:3] + (16,)), jnp.float32)
             for s in TINY_CONFIG.noise_shapes()]
    images = jnp.zeros((2, 32, 32, 3))
    parts = segmentation.parse_parts("a,c", loaded)
    mask = np.asarray(segmentation.binary_mask_fn(loaded, parts)(images, feats))
    assert mask.shape == (2, 32, 32, 1) and mask.dtype == np.float32
    classes = np.asarray(jax.jit(lambda f: loaded.logits(f, 32))(feats)).argmax(-1)
    np.testing.assert_array_equal(mask[..., 0], np.isin(classes, [1, 3]).astype(np.float32))
    checkpoint.save_model(tmp_path / "gen", "stylegan2", TINY_CONFIG.to_dict(), tiny_variables())
    with pytest.raises(ValueError, match="expected 'segmenter'"):
        segmentation.load_segmenter(tmp_path / "gen")
    with pytest.raises(ValueError, match="n_class"):
        segmentation.from_params({"size": "S", "in_ch": 112, "n_class": 3}, seg.params)


# ------------------------------------------------------------------------------------------------
# One-shot training
# ------------------------------------------------------------------------------------------------
def test_training_reproduces_a_synthetic_label():
    gen = tiny_generator()
    z = files.z_from_seeds([3], TINY_CONFIG.style_dim)
    w_avg = generation.truncation_mean(gen)
    images, feats = generation.generate(gen, z, 0.7, w_avg)
    label = blob_label([f[0] for f in feats])
    history = []
    cfg, params = segmentation.train_segmenter(gen, z, label[None], n_class=2, epochs=100, truncation=0.7,
                                               truncation_latent=w_avg, key=jax.random.PRNGKey(1),
                                               parts=["blob"], callback=lambda e, l: history.append((e, l)))
    assert [e for e, _ in history] == list(range(1, 101))
    losses = np.array([l for _, l in history])
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    assert losses[-1] < 0.25 * losses[0] and losses[-1] < 0.15
    assert cfg["size"] == "S" and cfg["in_ch"] == 112 and cfg["n_class"] == 2 and cfg["parts"] == ["blob"]
    assert cfg["training"]["epochs"] == 100
    seg = segmentation.from_params(cfg, params)
    mask = np.asarray(segmentation.binary_mask_fn(seg, [1])(jnp.asarray(images), [jnp.asarray(f) for f in feats]))
    pred = mask[0, ..., 0] > 0.5
    iou = (pred & (label == 1)).sum() / (pred | (label == 1)).sum()
    print(f"IoU on the labelled sample {iou:.3f}")
    assert iou > 0.9


def test_optimizer_is_torch_adam_with_l2_and_step_lr():
    """One step equals torch.optim.Adam(weight_decay) by hand; the lr drops x0.1 after 50 epochs."""
    tx = segmentation.make_optimizer(lr=1e-3, weight_decay=1e-3, steps_per_epoch=2, decay_every=50)
    p = {"w": jnp.asarray([1.0, -2.0])}
    g = {"w": jnp.asarray([0.5, 0.25])}
    state = tx.init(p)
    upd, state = tx.update(g, state, p)
    gd = np.array([0.5, 0.25]) + 1e-3 * np.array([1.0, -2.0])
    m, v = 0.1 * gd, 0.001 * gd ** 2
    expected = -1e-3 * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8)
    np.testing.assert_allclose(np.asarray(upd["w"]), expected, rtol=1e-4)
    for _ in range(99):
        upd, state = tx.update(g, state, p)
    small, state = tx.update(g, state, p)                        # step 100 = epoch 50 with 2 steps/epoch
    assert np.all(np.abs(np.asarray(small["w"])) < 0.2 * np.abs(np.asarray(upd["w"])))


def test_training_rejects_bad_labels():
    gen = tiny_generator()
    z = files.z_from_seeds([0], TINY_CONFIG.style_dim)
    with pytest.raises(ValueError, match=r"labels must be \[N=1, 32, 32\]"):
        segmentation.train_segmenter(gen, z, np.zeros((1, 16, 16), np.int32), 2, epochs=1, truncation=1.0)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        segmentation.train_segmenter(gen, z, np.full((1, 32, 32), 2, np.int32), 2, epochs=1, truncation=1.0)
