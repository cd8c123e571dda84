"""The one-shot segmenter's two additions to the released recipe (issue 34): a class-balanced
cross-entropy for the tiny parts, and left-right flips of the labelled samples."""
import jax
import numpy as np
import pytest

from dds_jax.models import stylegan2 as sg
from dds_jax.segmentation import oneshot as segmentation


def test_balanced_weights_follow_the_pixel_frequency():
    labels = np.zeros((1, 10, 10), np.int32)
    labels[0, :1, :4] = 1                        # 4 pixels of class 1, 96 of class 0, none of class 2
    w = segmentation.balanced_class_weights(labels, 3, power=0.5)
    assert w[2] == 0 and w[1] / w[0] == pytest.approx(np.sqrt(96 / 4), rel=1e-5)
    assert (w[0] * 96 + w[1] * 4) / 100 == pytest.approx(1.0, rel=1e-5)          # mean 1 over the pixels
    w1 = segmentation.balanced_class_weights(labels, 3, power=1.0)
    assert w1[0] * 96 == pytest.approx(w1[1] * 4, rel=1e-5)                        # equal totals


def test_weighted_cross_entropy_is_torchs_weighted_mean():
    """``F.cross_entropy(logits, labels, weight=w)`` = sum_i w[y_i] ce_i / sum_i w[y_i]."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    labels = rng.integers(0, 5, (2, 3, 4))
    w = rng.uniform(0.1, 2.0, 5).astype(np.float32)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ce = -np.take_along_axis(logp, labels[..., None], -1)[..., 0]
    want = (w[labels] * ce).sum() / w[labels].sum()
    got = float(segmentation.pixel_cross_entropy(logits, labels, w))
    assert got == pytest.approx(want, rel=1e-5)
    assert float(segmentation.pixel_cross_entropy(logits, labels)) == pytest.approx(ce.mean(), rel=1e-5)


def test_training_with_balance_and_flips_records_them():
    cfg = sg.GeneratorConfig(size=8, style_dim=8, n_mlp=1, channels=((4, 8), (8, 8)))
    gen = sg.from_variables(cfg, sg.init_variables(cfg, jax.random.PRNGKey(0)))
    labels = np.zeros((2, 8, 8), np.int32)
    labels[:, 2:4, 1:3] = 1
    z = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (2, 8)))
    config, params = segmentation.train_segmenter(gen, z, labels, n_class=2, epochs=2, class_balance=0.5, flip=True)
    t = config["training"]
    assert t["n_samples"] == 2 and t["class_balance"] == 0.5 and t["flip"] is True
    assert np.isfinite(t["final_loss"])
