"""FID (Fréchet distance), SSIM and PSNR against pytorch-fid / pytorch-ssim (``inception_*``, ``ssim_*`` fixtures).

Tolerance: 1e-4 relative (max|diff| / max|expected|) for every fixture value (SSIM of [0, 255] images:
1e-3, see SSIM_TOL_U8); the inputs are read from the fixture, the [a, b] range of a pair from the manifest's
``cases`` (older fixtures without a manifest: from the key suffix, ``01`` -> [0, 1], ``11`` -> [-1, 1]).
"""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dds_jax.eval import metrics
from fixture_utils import fixture_params, load_data, max_rel_err, nchw_to_nhwc

pytestmark = pytest.mark.optimized     # runs faster compiled with the full XLA pipeline (conftest.py)

TOL = 1e-4
# SSIM of [0, 255] images: sigma^2 = E[x^2] - mu^2 cancels at the 255^2 scale in float32 (C1, C2 are not
# rescaled). Measured on the real pairs: torch float32 is 1.3e-4 abs from float64, metrics.ssim 3.6e-4 abs
# (2.5e-3 relative to the stored 0.13); [0, 1] and [-1, 1] stay within 1e-4.
SSIM_TOL_U8 = 5e-3
SUFFIX_RANGES = {"01": (0.0, 1.0), "11": (-1.0, 1.0)}


def _manifest_cases(folder) -> dict:
    """The ``config.cases`` of the fixture's manifest ({} for a fixture without a manifest)."""
    path = folder / "manifest.json"
    return json.loads(path.read_text())["config"].get("cases", {}) if path.is_file() else {}


def _first(data, *keys):
    """The first of ``keys`` the fixture holds (key names of the two fixture generations), else None."""
    return next((data[k] for k in keys if k in data), None)


def _pairs(folder, data):
    """[(suffix, x NHWC, y NHWC, (lo, hi))]: the seeded pairs ``x<s>``/``y<s>`` of the manifest's cases
    (ranges from the manifest), else of every ``ssim_mean_<s>`` key (ranges from the suffix)."""
    cases = {s: tuple(c["range"]) for s, c in _manifest_cases(folder).items() if not s.startswith("real_")}
    if not cases:
        cases = {k[len("ssim_mean_"):]: None for k in data if k.startswith("ssim_mean_")}
    out = []
    for s, rng in sorted(cases.items()):
        if rng is None:
            if s not in SUFFIX_RANGES:
                pytest.fail(f"fixture key ssim_mean_{s}: unknown range suffix {s!r}")
            rng = SUFFIX_RANGES[s]
        out.append((s, nchw_to_nhwc(data["x" + s]), nchw_to_nhwc(data["y" + s]), rng))
    if not out:
        pytest.skip("fixture has no seeded SSIM pairs")
    return out


@pytest.mark.parametrize("folder", fixture_params("ssim_"))
def test_ssim_matches_pytorch_ssim(folder):
    data = load_data(folder)
    for s, x, y, (lo, hi) in _pairs(folder, data):
        assert x.min() >= lo and x.max() <= hi and y.min() >= lo and y.max() <= hi, s
        assert max_rel_err(metrics.ssim(x, y), _first(data, "ssim_" + s, "ssim_mean_" + s)) <= TOL, s
        per_image = metrics.ssim(x, y, size_average=False)
        assert per_image.shape == (len(x),)
        assert max_rel_err(per_image, data["ssim_per_image_" + s]) <= TOL, s


@pytest.mark.parametrize("folder", fixture_params("ssim_"))
def test_psnr_matches_fixture(folder):
    data = load_data(folder)
    checked = 0
    for s, x, y, (lo, hi) in _pairs(folder, data):
        want = _first(data, "psnr_" + s, "psnr_per_image_" + s)
        if want is not None:
            assert max_rel_err(metrics.psnr(x, y, data_range=hi - lo), want) <= TOL, s
            checked += 1
    assert checked, "fixture has SSIM pairs but no PSNR values"


def _real_cases(folder, data):
    """[(name, a, b, (lo, hi), expected ssim [N], expected psnr [N])] for the real image pairs.

    Manifest ``real_<c>`` cases: ``real_dds`` vs ``real_<source|target>`` (uint8 HWC) mapped to the case's
    range as lo + u8/255·(hi - lo) (u8/255, u8/255·2 - 1, u8); older fixtures: ``real_a`` vs ``real_b`` in [0, 1].
    """
    out = []
    for name, case in sorted(_manifest_cases(folder).items()):
        if not name.startswith("real_"):
            continue
        c = name[len("real_"):]
        lo, hi = case["range"]
        for other in ("source", "target"):
            key = f"dds_vs_{other}_{c}"
            if f"real_ssim_{key}" in data:
                a, b = (lo + data[k].astype(np.float64) / 255.0 * (hi - lo) for k in ("real_dds", f"real_{other}"))
                out.append((key, a.astype(np.float32), b.astype(np.float32), (lo, hi), data[f"real_ssim_{key}"],
                            data[f"real_psnr_{key}"]))
    if not out and "real_a" in data:
        a, b = (data[k][None].astype(np.float32) / 255.0 for k in ("real_a", "real_b"))
        out.append(("01", a, b, (0.0, 1.0), np.atleast_1d(data["real_ssim_01"]),
                    np.atleast_1d(data["real_psnr_01"])))
    return out


@pytest.mark.parametrize("folder", fixture_params("ssim_"))
def test_real_image_pairs(folder):
    """SSIM per image and PSNR (R = the range's width) of real DDS outputs, in every stored convention."""
    data = load_data(folder)
    cases = _real_cases(folder, data)
    if not cases:
        pytest.skip("fixture has no real image pair")
    for name, a, b, (lo, hi), want_ssim, want_psnr in cases:
        tol = TOL if hi - lo <= 2 else SSIM_TOL_U8
        assert max_rel_err(metrics.ssim(a, b, size_average=False), want_ssim) <= tol, name
        assert max_rel_err(metrics.psnr(a, b, data_range=hi - lo), want_psnr) <= TOL, name


def _fid_cases(data):
    """[(name, feats_a, feats_b, expected)]: every ``fid_<name>`` with its ``fid_<name>_a/_b`` sets
    (``fid_small`` [64,16], ``fid_real`` pool3-sized [100,2048]), or the older ``feats_a/b`` -> ``fid_ab``."""
    out = [(k, data[k + "_a"], data[k + "_b"], data[k]) for k in sorted(data)
           if k.startswith("fid_") and k + "_a" in data and k + "_b" in data]
    if "fid_ab" in data:
        out.append(("fid_ab", data["feats_a"], data["feats_b"], data["fid_ab"]))
    return out


@pytest.mark.parametrize("folder", fixture_params("inception_"))
def test_frechet_distance_matches_pytorch_fid(folder):
    """Every stored FID; the statistics path (frechet_distance of feature_statistics) on the small sets
    only: a 2048x2048 sqrtm costs ~20-80 s of CPU, so the pool3-sized case runs once."""
    cases = _fid_cases(load_data(folder))
    if not cases:
        pytest.skip("fixture has no Frechet distance")
    for name, a, b, want in cases:
        assert max_rel_err(metrics.fid_from_features(a, b), want) <= TOL, name
        if a.shape[1] <= 64:
            mu_a, cov_a = metrics.feature_statistics(a)
            mu_b, cov_b = metrics.feature_statistics(b)
            assert max_rel_err(metrics.frechet_distance(mu_a, cov_a, mu_b, cov_b), want) <= TOL, name


def test_frechet_distance_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    v1, v2 = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    got = metrics.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-10)
    assert metrics.frechet_distance(mu1, np.diag(v1), mu1, np.diag(v1)) == pytest.approx(0, abs=1e-10)


def test_frechet_distance_errors():
    with pytest.raises(ValueError, match="Imaginary component"):
        metrics.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), -np.eye(2))
    with pytest.raises(ValueError, match="different lengths"):
        metrics.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="do not match"):
        metrics.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(3))
    feats = np.random.default_rng(0).normal(size=(4, 3))
    with pytest.raises(ValueError, match="at least 2"):
        metrics.fid_from_features(feats[:1], feats)
    with pytest.raises(ValueError, match="at least 2"):
        metrics.fid_from_features(feats, feats[:0])
    with pytest.raises(ValueError, match="dimensions differ"):
        metrics.fid_from_features(feats, feats[:, :2])
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        metrics.fid_from_features(feats[0], feats)


def test_ssim_properties():
    x = np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype(np.float32)
    y = np.clip(x + 0.1, 0, 1)
    assert float(metrics.ssim(x, x)) == pytest.approx(1.0, abs=1e-6)
    per_image = metrics.ssim(x, y, size_average=False)
    assert float(metrics.ssim(x, y)) == pytest.approx(float(per_image.mean()), rel=1e-6)
    jitted = jax.jit(lambda a, b: metrics.ssim(a, b, size_average=False))
    np.testing.assert_allclose(jitted(jnp.asarray(x), jnp.asarray(y)), per_image, rtol=1e-6)
    window = metrics.gaussian_window(11)
    assert window.dtype == np.float32 and window.sum() == pytest.approx(1.0) and window.argmax() == 5


def test_psnr_properties():
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 3))
    assert np.all(np.isinf(metrics.psnr(x, x)))
    np.testing.assert_allclose(metrics.psnr(x, x + 0.1), 20.0)
    np.testing.assert_allclose(metrics.psnr(2 * x - 1, 2 * x - 1 + 0.2, data_range=2.0), 20.0)


@pytest.mark.parametrize("fn", [metrics.ssim, metrics.psnr])
def test_image_metric_errors(fn):
    x = np.zeros((2, 8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="shapes differ"):
        fn(x, x[:1])
    with pytest.raises(ValueError, match="shapes differ"):
        fn(x, x[:, :4])
    with pytest.raises(ValueError, match="empty"):
        fn(x[:0], x[:0])
    with pytest.raises(ValueError, match="NHWC"):
        fn(x[0], x[0])


def test_ssim_rejects_integer_images():
    u8 = np.zeros((1, 16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="float images"):
        metrics.ssim(u8, u8)


def test_psnr_rejects_bad_range():
    x = np.zeros((1, 4, 4, 3))
    with pytest.raises(ValueError, match="data_range"):
        metrics.psnr(x, x, data_range=0)
