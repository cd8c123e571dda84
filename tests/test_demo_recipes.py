"""The demo recipes (dds_jax.demo.models.RECIPES): the shipped 32x32 one and the 64x64 one of issue 34."""
import jax
import numpy as np
import pytest

from dds_jax import files, render
from dds_jax.checkpoint import DEMO_DIR
from dds_jax.demo import models as demo_models
from dds_jax.models import stylegan2 as sg
from dds_jax.segmentation import oneshot as segmentation


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
    with pytest.raises(ValueError, match="--sketch=s needs --photo"):
        demo_models.build(tmp_path / "w", tmp_path / "o", sketch_source="s")
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


def test_the_64_recipe_labels_its_faces_in_both_domains():
    """Issue 34: the shipped segmenter sees its 4 labelled faces as photos and as sketches (sketch
    eyes+nose+mouth IoU 0.45 -> 0.52 on report.json's faces); the 32x32 recipe stays photo-only."""
    assert demo_models.RECIPES[64].label_sketches and not demo_models.RECIPES[32].label_sketches
    shipped = segmentation.load_segmenter(DEMO_DIR / "segmenter").config["training"]
    assert shipped["n_labelled_faces"] <= 4 and shipped["n_samples"] == 2 * shipped["n_labelled_faces"]
    assert set(shipped["inversion_mse"]) == {"photo", "sketch"}


def test_segmenter_trains_on_each_labelled_face_as_photo_and_as_sketch(tmp_path):
    """``demo.models.train_segmenter`` with a sketch generator: every labelled face is inverted into both
    generators (its rendered photo and its rendered sketch) under the same label map; the label sheet
    shows, per face, photo, its inversion, sketch, its inversion and the labels."""
    cfg = sg.GeneratorConfig(size=16, style_dim=16, n_mlp=2, channels=((4, 16), (8, 16), (16, 8)))
    photo, sketch = (sg.from_variables(cfg, sg.init_variables(cfg, jax.random.PRNGKey(k))) for k in (0, 1))
    out = demo_models.train_segmenter(tmp_path, photo, epochs=1, invert_steps=2, n_labels=2, class_balance=0.5,
                                      sketch_gen=sketch)
    training = segmentation.load_segmenter(out).config["training"]
    assert training["n_samples"] == 4 and training["n_labelled_faces"] == 2
    assert set(training["inversion_mse"]) == {"photo", "sketch"} and "sketches" in training["label_source"]
    assert files.read_image(tmp_path / "label_sample.png").shape[:2] == (2 * 16 + 3 * 2, 5 * 16 + 6 * 2)
