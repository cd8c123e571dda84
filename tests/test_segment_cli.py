"""``python -m dds_jax.cli.segment`` (sample -> painted label -> train -> predict) on a tiny generator, its
label-file errors, and the segmenter converter CLI on the real ``segmenter.pt``."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dds_jax import checkpoint, files, generation
from dds_jax.segmentation import labels as label_io
from dds_jax.segmentation import workflow as segment
from dds_jax.segmentation import oneshot as segmentation
from dds_jax.models import segmenter as S
from fixture_utils import fixture_params, load_state_dict
from test_segmenter import TINY_CONFIG, _segmenter, blob_label, tiny_variables

REPO = pathlib.Path(__file__).resolve().parents[1]
PT_FIXTURES = [p for p in fixture_params("stylegan2_")
               if p.values[0] is None or (p.values[0] / "segmenter.pt").is_file()]
if not any(p.values[0] is not None for p in PT_FIXTURES):
    PT_FIXTURES = [pytest.param(None, marks=pytest.mark.skip(reason="no stylegan2_* fixture with segmenter.pt"))]


def _run(args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable] + args, cwd=REPO, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "gen"
    checkpoint.save_model(path, "stylegan2", TINY_CONFIG.to_dict(), tiny_variables())
    return path


def _paint(path, label: np.ndarray, colors):
    """A label PNG: class k painted colours[k] (RGB), or a grey-scale image if colours are ints."""
    rgb = np.zeros(label.shape + (3,), np.uint8)
    for k, c in colors.items():
        rgb[label == k] = c
    files.save_png(path, rgb)


def test_help_lists_commands_and_flags(program):
    r = program("dds_jax.cli.segment", "--help")
    text = r.stdout + r.stderr
    for word in ("sample", "train", "predict", "--parts", "--colors", "--labels", "--seg", "--color_tolerance",
                 "eyes+nose+mouth"):
        assert word in text, word
    r = program("dds_jax.cli.segment", "paint")
    assert r.returncode == 2 and "usage" in r.stderr


def test_cli_round_trip(gen_dir, tmp_path, program):
    samples, labels, seg_dir, masks = (tmp_path / n for n in ("samples", "labels", "seg", "masks"))
    r = program("dds_jax.cli.segment", "sample", f"--ckpt={gen_dir}", "--seeds=2-3", f"--out={samples}")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in samples.iterdir()) == ["latents.npz", "seed_2.png", "seed_3.png"]
    lat = segment.load_latents(samples)
    assert lat["seeds"] == [2, 3] and lat["truncation"] == 0.7
    np.testing.assert_array_equal(lat["z"], files.z_from_seeds([2, 3], TINY_CONFIG.style_dim))

    # "paint" seed 3: two parts (red, green) from the generator's own features
    gen = segmentation.sg.load_generator(gen_dir)
    images, feats = generation.generate(gen, lat["z"][1:], lat["truncation"], lat["truncation_latent"])
    np.testing.assert_array_equal(files.to_uint8(images[0]), files.read_image(samples / "seed_3.png"))
    label = blob_label([f[0] for f in feats]) + 2 * blob_label([f[0] for f in feats], quantile=0.85, level=1)
    label = np.minimum(label, 2)
    _paint(labels / "seed_3.png", label, {1: (255, 0, 0), 2: (0, 255, 0)})

    r = program("dds_jax.cli.segment", "train", f"--ckpt={gen_dir}", f"--samples={samples}", f"--labels={labels}",
              "--parts=eyes,nose", "--colors=eyes=#ff0000,nose=#00ff00", "--epochs=60", f"--out={seg_dir}")
    assert r.returncode == 0, r.stderr
    seg = segmentation.load_segmenter(seg_dir)
    assert seg.parts == ["eyes", "nose"] and seg.n_class == 3
    assert seg.config["colors"] == {"eyes": ["#ff0000"], "nose": ["#00ff00"]}
    assert seg.config["training"]["seeds"] == [3]

    r = program("dds_jax.cli.segment", "predict", f"--ckpt={gen_dir}", f"--seg={seg_dir}", "--seeds=3,5",
              f"--out={masks}")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in masks.iterdir()) == ["seed_3_mask.png", "seed_3_overlay.png",
                                                       "seed_5_mask.png", "seed_5_overlay.png"]
    mask = np.asarray(Image.open(masks / "seed_3_mask.png"))
    assert mask.dtype == np.uint8 and mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 1, 2}
    agree = (mask == label).mean()
    print(f"predicted classes agree with the painted label on {agree:.3f} of the pixels")
    assert agree > 0.9
    assert np.asarray(Image.open(masks / "seed_3_overlay.png")).shape == (32, 32, 3)

    # --parts merges classes into one binary mask (255 = part)
    segment.run_predict(str(gen_dir), str(seg_dir), str(masks / "merged"), "3", parts="eyes,nose")
    merged = np.asarray(Image.open(masks / "merged" / "seed_3_mask.png"))
    np.testing.assert_array_equal(merged, np.where(mask > 0, 255, 0))


def _label_setup(gen_dir, tmp_path, seeds=(1,)):
    samples = tmp_path / "samples"
    segment.run_sample(str(gen_dir), str(samples), ",".join(map(str, seeds)), truncation=0.7)
    return samples, tmp_path / "labels"


def test_label_errors_name_the_file(gen_dir, tmp_path):
    samples, labels = _label_setup(gen_dir, tmp_path)
    table = label_io.color_table([["eyes"], ["nose"]], label_io.parse_colors("eyes=red,nose=#00ff00"))
    good = np.zeros((32, 32), np.int32)
    good[4:10, 4:10] = 1

    _paint(labels / "seed_1.png", np.zeros((16, 16), np.int32), {})
    with pytest.raises(ValueError, match=r"seed_1\.png: label is 16x16 pixels, the images are 32x32"):
        label_io.read_label(labels / "seed_1.png", table, (32, 32))

    bad = good.copy()
    bad[20:22, 0:5] = 7
    _paint(labels / "seed_1.png", bad, {1: (255, 0, 0), 7: (10, 20, 30)})
    with pytest.raises(ValueError, match=r"seed_1\.png: 1 colour\(s\) not in the colour map: #0a141e \(10 px\)"):
        label_io.read_label(labels / "seed_1.png", table, (32, 32))
    near = good.copy()
    near[20:22, 0:5] = 7
    _paint(labels / "seed_1.png", near, {1: (255, 0, 0), 7: (250, 3, 2)})          # anti-aliased red
    out = label_io.read_label(labels / "seed_1.png", table, (32, 32), tolerance=8)
    assert (out == 1).sum() == 36 + 10

    _paint(labels / "seed_1.png", np.zeros((32, 32), np.int32), {})
    with pytest.raises(ValueError, match=r"seed_1\.png: the label has no foreground pixel"):
        label_io.read_label(labels / "seed_1.png", table, (32, 32))

    # a black/white PNG for a single part: white = part; transparent pixels are background
    bw = (good * 255).astype(np.uint8)
    files.save_png(labels / "bw.png", bw)
    single = label_io.color_table(label_io.parse_class_spec("blob"), {})
    np.testing.assert_array_equal(label_io.read_label(labels / "bw.png", single, (32, 32)), good)
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[good == 1] = (255, 255, 255, 255)
    rgba[0, 0] = (12, 34, 56, 0)
    files.save_png(labels / "rgba.png", rgba)
    np.testing.assert_array_equal(label_io.read_label(labels / "rgba.png", single, (32, 32)), good)

    # missing label for an explicitly requested sample; a label without a sample
    _paint(labels / "seed_1.png", good, {1: (255, 0, 0)})
    with pytest.raises(FileNotFoundError, match=r"seed_4\.png"):
        segment.run_train(str(gen_dir), str(samples), str(labels), "eyes", str(tmp_path / "s"),
                          colors="eyes=red", seeds=[1, 4], epochs=1, progress=False)
    _paint(labels / "seed_9.png", good, {1: (255, 0, 0)})
    with pytest.raises(ValueError, match=r"seed_9\.png.*no sample"):
        segment.run_train(str(gen_dir), str(samples), str(labels), "eyes", str(tmp_path / "s"),
                          colors="eyes=red", epochs=1, progress=False)
    (labels / "seed_9.png").unlink()
    # a part that is never painted
    with pytest.raises(ValueError, match=r"part 'nose'.*no pixel in any label"):
        segment.run_train(str(gen_dir), str(samples), str(labels), "eyes,nose", str(tmp_path / "s"),
                          colors="eyes=red,nose=#00ff00", epochs=1, progress=False)


def test_parts_and_colours_spec():
    assert label_io.parse_class_spec("eyes, nose+mouth") == [["eyes"], ["nose", "mouth"]]
    with pytest.raises(ValueError, match="no parts"):
        label_io.parse_class_spec(" , ")
    with pytest.raises(ValueError, match="more than once"):
        label_io.parse_class_spec("eyes,eyes+nose")
    colors = label_io.parse_colors('{"eyes": "#f00", "nose": [0, 255, 0], "mouth": "rgb(0,0,255)"}')
    assert colors == {"eyes": (255, 0, 0), "nose": (0, 255, 0), "mouth": (0, 0, 255)}
    assert label_io.parse_colors("eyes=rgb(255,0,0),nose=blue") == {"eyes": (255, 0, 0), "nose": (0, 0, 255)}
    # merged class: all three colours -> class 1; a colour only named in --colors -> background
    table = label_io.color_table(label_io.parse_class_spec("eyes+nose+mouth"),
                                dict(colors, hair=(9, 9, 9)))
    assert table == {(0, 0, 0): 0, (255, 0, 0): 1, (0, 255, 0): 1, (0, 0, 255): 1, (9, 9, 9): 0}
    with pytest.raises(ValueError, match=r"'eyes' and 'nose' share the colour #ff0000"):
        label_io.color_table([["eyes"], ["nose"]], {"eyes": (255, 0, 0), "nose": (255, 0, 0)})
    with pytest.raises(ValueError, match=r"no colour for part\(s\) \['mouth'\]"):
        label_io.color_table([["eyes"], ["mouth"]], {"eyes": (255, 0, 0)})
    defaults = label_io.color_table([["a"], ["b"]], {})
    assert defaults == {(0, 0, 0): 0, (255, 0, 0): 1, (0, 255, 0): 2}


def test_predict_rejects_an_incompatible_segmenter(gen_dir, tmp_path):
    seg = _segmenter(in_ch=5376, parts=("eyes", "nose", "mouth"))
    checkpoint.save_model(tmp_path / "seg", "segmenter", seg.config, seg.params)
    with pytest.raises(ValueError, match=r"5376.*112"):
        segment.run_predict(str(gen_dir), str(tmp_path / "seg"), str(tmp_path / "out"), "0")


@pytest.mark.parametrize("folder", PT_FIXTURES)
def test_converter_cli_on_real_segmenter_pt(folder, tmp_path, program):
    pytest.importorskip("torch")
    out = tmp_path / "seg"
    r = program("convert/torch_to_flax.py", "--kind=segmenter", f"--src={folder / 'segmenter.pt'}", f"--out={out}")
    assert r.returncode == 0, r.stderr
    seg = segmentation.load_segmenter(out)
    cfg, ref = S.convert_state_dict(load_state_dict(folder / "manifest_segmenter.json"))
    assert {k: seg.config[k] for k in cfg} == cfg
    for k in ref:                                   # logits of these weights: test_segmenter.py
        for n in ("kernel", "bias"):
            np.testing.assert_array_equal(seg.params[k][n], ref[k][n])


def test_train_into_an_existing_model_refuses_before_training(gen_dir, tmp_path, monkeypatch):
    """Issue 11 item 8: ``segment train`` into an --out that holds a model refuses at once, without
    the 100 epochs; --overwrite trains and writes."""
    samples, labels = _label_setup(gen_dir, tmp_path)
    good = np.zeros((32, 32), np.int32)
    good[4:12, 4:12] = 1
    _paint(labels / "seed_1.png", good, {1: (255, 255, 255)})
    out = tmp_path / "seg"
    segment.run_train(str(gen_dir), str(samples), str(labels), "eyes", str(out), epochs=1, progress=False)
    trained = []
    real = segmentation.train_segmenter
    monkeypatch.setattr(segmentation, "train_segmenter", lambda *a, **k: trained.append(1) or real(*a, **k))
    with pytest.raises(FileExistsError, match="--overwrite"):
        segment.run_train(str(gen_dir), str(samples), str(labels), "eyes", str(out), epochs=1, progress=False)
    assert trained == []
    segment.run_train(str(gen_dir), str(samples), str(labels), "eyes", str(out), epochs=1, overwrite=True,
                      progress=False)
    assert trained == [1]
