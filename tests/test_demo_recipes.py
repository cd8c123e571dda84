"""The demo recipes (dds_jax.demo.models.RECIPES): the shipped 32x32 one and the 64x64 one of issue 34."""
import numpy as np
import pytest

from dds_jax import render
from dds_jax.demo import models as demo_models


def test_recipes_move_the_frozen_layers_with_the_size():
    r32, r64 = demo_models.RECIPES[32], demo_models.RECIPES[64]
    assert r32.g == demo_models.DEMO_G and r32.adapt == demo_models.ADAPT_TRAIN and r32.n_labels == 1
    assert r64.g.size == 64 and r64.g.log_size == r32.g.log_size + 1
    # only the top resolution and the ToRGBs learn the line style at either size
    assert (r32.adapt.freeze_res, r64.adapt.freeze_res) == (16, 32) and r64.adapt.freeze_mapping
    assert r64.n_labels <= 4                    # issue 34: at most 4 labelled faces per mask


def test_build_refuses_a_size_without_a_recipe(tmp_path):
    with pytest.raises(ValueError, match="--size=128: the demo recipes are for sizes \\[32, 64\\]"):
        demo_models.build(tmp_path / "w", tmp_path / "o", size=128)
    assert not (tmp_path / "w").exists()


def test_merged_iou_is_the_iou_of_the_union_of_the_parts():
    true = np.zeros((1, 8, 8), np.uint8)
    pred = np.zeros((1, 8, 8), np.uint8)
    eyes, nose, hair = (render.PARTS.index(p) for p in ("eyes", "nose", "hair"))
    true[0, 0, :4] = eyes
    true[0, 1, :4] = nose
    pred[0, 0, :4] = nose            # the right pixels with the wrong part label still count ...
    pred[0, 1, :2] = eyes
    pred[0, 2, :2] = hair            # ... another part does not
    assert demo_models.merged_iou(pred, true, ("eyes", "nose", "mouth")) == pytest.approx(6 / 8)
