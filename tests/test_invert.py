"""W+ inversion (dds_jax.dds.invert) and the IoU used to report the demo segmenter's accuracy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dds_jax import ops
from dds_jax.dds import invert
from dds_jax.segmentation import oneshot as segmentation
from dds_jax.models import stylegan2 as sg

G16 = sg.GeneratorConfig(size=16, style_dim=16, n_mlp=2, channels=((4, 16), (8, 16), (16, 16)))


def test_inversion_reconstructs_generated_images():
    gen = sg.from_variables(G16, jax.device_get(sg.init_variables(G16, jax.random.PRNGKey(0))))
    z = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    targets = np.asarray(jax.jit(gen.module.apply)(gen.variables, z)[0])       # one program, not op by op
    _, recon0, _, mse0 = invert.invert(gen, targets, steps=1, lr=1e-8)
    wplus, recon, feats, mse = invert.invert(gen, targets, steps=150, lr=0.05)
    assert wplus.shape == (3, G16.n_latent, 16) and recon.shape == targets.shape
    assert [f.shape[:3] for f in feats] == [(3, r, r) for r in G16.feature_sizes]
    assert np.all(mse < 0.25 * mse0), (mse, mse0)
    np.testing.assert_allclose(mse, np.mean((recon - targets) ** 2, axis=(1, 2, 3)), rtol=1e-5)
    with pytest.raises(ValueError, match=r"\[N, 16, 16, 3\]"):
        invert.invert(gen, np.zeros((1, 8, 8, 3), np.uint8))


def test_lowpass_inversion_fits_the_blurred_images():
    """lowpass_sigma > 0: the loss compares Gaussian-blurred images, so the blurred reconstruction gets
    closer to the blurred target than the first step's; the reported MSE is the plain pixel one."""
    gen = sg.from_variables(G16, jax.device_get(sg.init_variables(G16, jax.random.PRNGKey(0))))
    z = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    targets = np.asarray(jax.jit(gen.module.apply)(gen.variables, z)[0])
    blurred = lambda x: np.asarray(ops.gaussian_blur(jnp.asarray(x), 1.0))          # noqa: E731
    _, recon0, _, _ = invert.invert(gen, targets, steps=1, lr=1e-8, lowpass_sigma=1.0)
    _, recon, _, mse = invert.invert(gen, targets, steps=60, lr=0.05, lowpass_sigma=1.0)
    err = lambda a: np.mean((blurred(a) - blurred(targets)) ** 2, axis=(1, 2, 3))    # noqa: E731
    assert np.all(err(recon) < 0.25 * err(recon0)), (err(recon), err(recon0))
    np.testing.assert_allclose(mse, np.mean((recon - targets) ** 2, axis=(1, 2, 3)), rtol=1e-5)


def test_gaussian_blur_keeps_constants_and_spreads_an_impulse():
    flat = jnp.full((1, 9, 9, 3), 0.7)
    np.testing.assert_allclose(ops.gaussian_blur(flat, 1.5), flat, atol=1e-6)       # edges replicated
    impulse = np.zeros((1, 9, 9, 1), np.float32)
    impulse[0, 4, 4] = 1.0
    out = np.asarray(ops.gaussian_blur(jnp.asarray(impulse), 1.0))[0, :, :, 0]
    k = ops.gaussian_1d(1.0)
    np.testing.assert_allclose(out[1:8, 1:8], np.outer(k, k), atol=1e-6)            # separable kernel
    assert out.sum() == pytest.approx(1.0, abs=1e-5) and ops.gaussian_blur(flat, 0.0) is flat


def test_iou_per_class():
    truth = np.array([[0, 0, 1, 1], [0, 2, 2, 1]])
    pred = np.array([[0, 1, 1, 1], [0, 2, 0, 1]])
    # class 0: pred {00, 10, 12}, truth {00, 01, 10}: inter 2, union 4; class 1: inter 3, union 4;
    # class 2: inter 1, union 2; class 3 absent from both -> NaN.
    np.testing.assert_allclose(segmentation.iou_per_class(pred, truth, 4), [0.5, 0.75, 0.5, np.nan])
