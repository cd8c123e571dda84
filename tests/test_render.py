"""The procedural face data set (dds_jax/render.py): determinism, shapes, part masks, the sketch style
and the CLI."""
import json

import numpy as np
import pytest

from dds_jax import files
from dds_jax import render as R


@pytest.fixture(scope="module")
def faces32():
    """200 faces at 32x32 in both styles (the same parameters)."""
    p = R.sample_params(np.random.default_rng(11), 200)
    photo, mask = R.render(p, 32, "photo")
    sketch, mask_s = R.render(p, 32, "sketch")
    return p, photo, sketch, mask, mask_s


def test_parts_order():
    assert R.PARTS == ("background", "hair", "skin", "eyes", "nose", "mouth")
    assert R.STYLES == ("photo", "sketch")


def test_render_faces_deterministic():
    a_img, a_mask = R.render_faces(0, 6)
    b_img, b_mask = R.render_faces(0, 6)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_mask, b_mask)
    c_img, _ = R.render_faces(1, 6)
    assert not np.array_equal(a_img, c_img)
    # all faces of a seed differ from each other
    assert len({im.tobytes() for im in a_img}) == 6


def test_render_faces_prefix_property():
    img10, mask10 = R.render_faces(3, 10, style="sketch")
    img5, mask5 = R.render_faces(3, 5, style="sketch")
    np.testing.assert_array_equal(img10[:5], img5)
    np.testing.assert_array_equal(mask10[:5], mask5)
    # across the sampling block boundary (faces 256.. come from the next block)
    img_a, _ = R.render_faces(3, R._SAMPLE_BLOCK + 3, size=16)
    img_b, _ = R.render_faces(3, R._SAMPLE_BLOCK + 1, size=16)
    np.testing.assert_array_equal(img_a[:R._SAMPLE_BLOCK + 1], img_b)
    assert R.render_faces(3, 0)[0].shape == (0, 32, 32, 3)


def test_render_does_not_depend_on_the_batch():
    p = R.sample_params(np.random.default_rng(5), 40)
    img, mask = R.render(p, 32, "sketch")
    sub = {k: v[13:21] for k, v in p.items()}
    img_s, mask_s = R.render(sub, 32, "sketch")
    np.testing.assert_array_equal(img[13:21], img_s)
    np.testing.assert_array_equal(mask[13:21], mask_s)


def test_batches_resume_and_range():
    it = R.batches(7, 4, size=32)
    first = [next(it) for _ in range(3)]
    for b in first:
        assert b.dtype == np.float32 and b.shape == (4, 32, 32, 3)
        assert b.min() >= -1.0 and b.max() <= 1.0
    assert not np.array_equal(first[0], first[1])
    resumed = next(R.batches(7, 4, size=32, start=2))
    np.testing.assert_array_equal(resumed, first[2])
    again = next(R.batches(7, 4, size=32))
    np.testing.assert_array_equal(again, first[0])
    assert not np.array_equal(next(R.batches(8, 4, size=32)), first[0])
    # batch k is the rendering of batch_params(seed, k, batch)
    img, _ = R.render(R.batch_params(7, 1, 4), 32)
    np.testing.assert_array_equal(first[1], img.astype(np.float32) / 127.5 - 1.0)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("style", ["photo", "sketch"])
def test_shapes_dtypes_ranges(size, style):
    img, mask = R.render_faces(2, 5, size=size, style=style)
    assert img.shape == (5, size, size, 3) and img.dtype == np.uint8
    assert mask.shape == (5, size, size) and mask.dtype == np.uint8
    assert mask.max() < len(R.PARTS)
    assert img.std() > 10                      # not blank
    p = R.sample_params(np.random.default_rng(0), 3)
    assert all(np.shape(v)[0] == 3 for v in p.values())


def test_every_part_in_every_face_with_plausible_areas(faces32):
    _, photo, _, mask, _ = faces32
    n, size = mask.shape[0], mask.shape[1]
    area = np.stack([(mask == k).sum((1, 2)) for k in range(len(R.PARTS))], 1) / size ** 2   # [n, 6]
    present = (area > 0).mean(0)
    assert (present >= 0.98).all(), dict(zip(R.PARTS, present))
    skin, eyes, nose, mouth = area[:, 2], area[:, 3], area[:, 4], area[:, 5]
    assert (skin > np.maximum.reduce([eyes, nose, mouth])).all()        # skin: the largest inner part
    assert 0.08 < skin.mean() < 0.35 and 0.03 < area[:, 1].mean() < 0.3   # skin, hair
    assert 0.4 < area[:, 0].mean() < 0.85                                 # background
    for part, a in (("eyes", eyes), ("nose", nose), ("mouth", mouth)):   # small but there
        assert 0.001 < a.mean() < 0.04, (part, a.mean())
    assert eyes.mean() > nose.mean()
    # the head is in the picture: hair+skin rows span 55-100% of the height (neck to the bottom edge)
    rows = ((mask == 1) | (mask == 2)).any(2)
    assert 0.55 < rows.mean() <= 1.0
    # photo colours vary across faces: background, skin and hair
    for part in (0, 1, 2):
        mean_col = np.array([photo[i][mask[i] == part].mean(0) for i in range(n)])
        assert mean_col.std(0).max() > 20, R.PARTS[part]


def test_masks_identical_between_styles(faces32):
    _, _, _, mask, mask_s = faces32
    np.testing.assert_array_equal(mask, mask_s)


def test_sketch_is_light_paper_with_dark_strokes(faces32):
    _, photo, sketch, mask, _ = faces32
    lum = sketch.astype(np.float32).mean(-1)                              # [n, h, w]
    assert np.median(lum) > 200 and lum.mean() > 170
    # background pixels far from any boundary are paper: near-white, slightly warm (R >= B)
    boundary = np.zeros(mask.shape, bool)
    boundary[:, :, 1:] |= mask[:, :, 1:] != mask[:, :, :-1]
    boundary[:, :, :-1] |= mask[:, :, 1:] != mask[:, :, :-1]
    boundary[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    boundary[:, :-1] |= mask[:, 1:] != mask[:, :-1]
    paper = (mask == 0) & ~boundary
    assert lum[paper].mean() > 220
    assert sketch[..., 0][paper].astype(float).mean() >= sketch[..., 2][paper].astype(float).mean()
    # strokes: boundary pixels are much darker than the paper; nearly every face has dark pixels
    assert lum[boundary].mean() < lum[paper].mean() - 60
    assert ((lum < 110).sum((1, 2)) > 20).mean() > 0.98
    # and the sketch is not the photo
    assert np.abs(sketch.astype(int) - photo.astype(int)).mean() > 40
    # sketch colours are nearly grey (graphite on paper)
    assert np.abs(sketch[..., 0].astype(int) - sketch[..., 2].astype(int)).mean() < 20


@pytest.mark.parametrize("s", [1, 3, 8])
def test_other_supersampling(s):
    p = R.sample_params(np.random.default_rng(2), 6)
    img4, mask4 = R.render(p, 32, "sketch")
    img, mask = R.render(p, 32, "sketch", supersample=s)
    assert img.shape == img4.shape and mask.shape == mask4.shape
    assert (mask == mask4).mean() > 0.9
    assert np.abs(img.astype(int) - img4.astype(int)).mean() < 25


def test_full_grid_fallback_matches_windowed(monkeypatch):
    """Faces whose eyes/nose/mouth do not fit the window are drawn on the full grid: same result."""
    p = R.sample_params(np.random.default_rng(9), 5)
    ref = R.render(p, 32, "sketch")
    monkeypatch.setattr(R, "_WIN_W", 0.05)
    monkeypatch.setattr(R, "_WIN_H", 0.05)
    out = R.render(p, 32, "sketch")
    np.testing.assert_array_equal(out[1], ref[1])
    np.testing.assert_array_equal(out[0], ref[0])


def test_unknown_style_names_valid_styles():
    p = R.sample_params(np.random.default_rng(0), 2)
    for call in (lambda: R.render(p, 32, "oil"), lambda: R.render_faces(0, 2, style="oil"),
                 lambda: R.batches(0, 2, style="oil")):
        with pytest.raises(ValueError, match="photo, sketch"):
            call()


def test_cli_end_to_end(tmp_path, program):
    out, grid = tmp_path / "faces", tmp_path / "grid.png"
    r = program("dds_jax.cli.render", f"--out={out}", "--n=5", "--size=32", "--style=sketch", "--seed=4",
                f"--grid={grid}")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:06d}.png" for i in range(5)]
    assert sorted(p.name for p in (out / "masks").glob("*.png")) == [f"{i:06d}.png" for i in range(5)]
    assert json.loads((out / "parts.json").read_text()) == list(R.PARTS)
    img, mask = R.render_faces(4, 5, 32, "sketch")
    for i in range(5):
        im = files.read_image(out / f"{i:06d}.png")
        m = files.read_image(out / "masks" / f"{i:06d}.png")
        assert im.shape == (32, 32, 3) and m.shape == (32, 32) and m.dtype == np.uint8
        np.testing.assert_array_equal(im, img[i])
        np.testing.assert_array_equal(m, mask[i])
    g = files.read_image(grid)
    assert g.shape == (2 + 34, 2 + 5 * 34, 3)
    r = program("dds_jax.cli.render", f"--out={out}", "--style=oil")
    assert r.returncode != 0 and "photo" in r.stderr and "sketch" in r.stderr


def test_inner_feature_windows_hold_sampled_faces():
    """The fixed window for eyes/nose/mouth (a speed-up) holds every face that sample_params draws."""
    import math
    p = R.sample_params(np.random.default_rng(21), 20000)
    cos, sin = R._cos_sin(p["rot"])
    for res in (32, 128, 256):
        frame = R._Frame(p["tx"], p["ty"], p["scale"], cos, sin, res)
        ww, wh = (min(res, math.ceil(f * res) + 3) for f in (R._WIN_W, R._WIN_H))
        assert R._windows(R._inner_bbox(R._features(p), frame), res, ww, wh)[2].all()


@pytest.mark.parametrize("s", [2, 3, 4, 8])
def test_fraction_and_edge_counting(s):
    layer = np.random.default_rng(s).integers(0, R.N_LAYERS, (3, 8 * s, 8 * s)).astype(np.uint8)
    blocks = lambda a: a.reshape(3, 8, s, 8, s).sum((2, 4))           # noqa: E731
    counts = R._layer_counts(layer, s)
    np.testing.assert_array_equal(counts, np.stack([blocks(layer == k) for k in range(R.N_LAYERS)]))
    # the mask: the part with the most sub-pixels, ties to the lower id
    parts = np.stack([counts[R.LAYER_PART == k].sum(0) for k in range(len(R.PARTS))])
    np.testing.assert_array_equal(R._part_argmax(counts), parts.argmax(0))
    e = np.zeros(layer.shape, bool)
    e[:, :, :-1] = layer[:, :, 1:] != layer[:, :, :-1]
    e[:, :-1] |= layer[:, 1:] != layer[:, :-1]
    np.testing.assert_allclose(R._edge_fraction(layer, s), blocks(e) / s, atol=1e-6)
