"""FID (Fréchet distance), SSIM and PSNR against pytorch-fid / pytorch-ssim (``inception_*``, ``ssim_*`` fixtures).

Tolerance: 1e-4 relative (max|diff| / max|expected|) for every fixture value; the inputs are read from
the fixture, and the [a, b] range of an ``x<s>``/``y<s>`` pair from its suffix (``01`` -> [0, 1],
``11`` -> [-1, 1], the fixture README's naming).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dds_jax import metrics
from fixture_utils import fixture_params, load_data, max_rel_err, nchw_to_nhwc

TOL = 1e-4
SUFFIX_RANGES = {"01": (0.0, 1.0), "11": (-1.0, 1.0)}


def _pairs(data):
    """[(suffix, x NHWC, y NHWC, (lo, hi))] for every ``ssim_mean_<suffix>`` in the fixture."""
    out = []
    for key in sorted(data):
        if key.startswith("ssim_mean_"):
            s = key[len("ssim_mean_"):]
            if s not in SUFFIX_RANGES:
                pytest.fail(f"fixture key {key}: unknown range suffix {s!r}")
            out.append((s, nchw_to_nhwc(data["x" + s]), nchw_to_nhwc(data["y" + s]), SUFFIX_RANGES[s]))
    if not out:
        pytest.skip("fixture has no ssim_mean_* keys")
    return out


@pytest.mark.parametrize("folder", fixture_params("ssim_"))
def test_ssim_matches_pytorch_ssim(folder):
    data = load_data(folder)
    for s, x, y, (lo, hi) in _pairs(data):
        assert x.min() >= lo and x.max() <= hi and y.min() >= lo and y.max() <= hi, s
        assert max_rel_err(metrics.ssim(x, y), data["ssim_mean_" + s]) <= TOL, s
        per_image = metrics.ssim(x, y, size_average=False)
        assert per_image.shape == (len(x),)
        assert max_rel_err(per_image, data["ssim_per_image_" + s]) <= TOL, s


@pytest.mark.parametrize("folder", fixture_params("ssim_"))
def test_psnr_matches_fixture(folder):
    data = load_data(folder)
    for s, x, y, (lo, hi) in _pairs(data):
        if "psnr_per_image_" + s in data:
            got = metrics.psnr(x, y, data_range=hi - lo)
            assert max_rel_err(got, data["psnr_per_image_" + s]) <= TOL, s


@pytest.mark.parametrize("folder", fixture_params("ssim_"))
def test_real_image_pair(folder):
    data = load_data(folder)
    if "real_a" not in data:
        pytest.skip("fixture has no real image pair")
    a, b = (data[k][None].astype(np.float32) / 255.0 for k in ("real_a", "real_b"))
    assert max_rel_err(metrics.ssim(a, b), data["real_ssim_01"]) <= TOL
    assert max_rel_err(metrics.psnr(a, b, data_range=1.0), np.atleast_1d(data["real_psnr_01"])) <= TOL
    u8 = metrics.psnr(data["real_a"][None], data["real_b"][None], data_range=255.0)
    assert max_rel_err(u8, np.atleast_1d(data["real_psnr_01"])) <= TOL


@pytest.mark.parametrize("folder", fixture_params("inception_"))
def test_frechet_distance_matches_pytorch_fid(folder):
    data = load_data(folder)
    if "fid_ab" not in data:
        pytest.skip("fixture has no fid_ab")
    a, b = data["feats_a"], data["feats_b"]
    assert max_rel_err(metrics.fid_from_features(a, b), data["fid_ab"]) <= TOL
    mu_a, cov_a = metrics.feature_statistics(a)
    mu_b, cov_b = metrics.feature_statistics(b)
    assert max_rel_err(metrics.frechet_distance(mu_a, cov_a, mu_b, cov_b), data["fid_ab"]) <= TOL


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
