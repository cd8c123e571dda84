"""DDS on the user's own images (issue 14, Deliver 3): rendered faces in two folders, inverted into the
shipped demo pair, optimised, written like seeds; painted masks; bad files named in one line."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from dds_jax import files, render
from dds_jax.dds import image_inputs, invert, pipeline

from demo_utils import DEMO, DEMO_SIZE, demo_config

N = 3
SIZE = DEMO_SIZE


def _folders(tmp_path, n=N, seed=11):
    """Rendered faces: sketches (source domain) and photos (target) of the same faces, + true hair masks."""
    sketch, labels = render.render_faces(seed, n, SIZE, "sketch")
    photo, _ = render.render_faces(seed, n, SIZE, "photo")
    hair = (labels == render.PARTS.index("hair")).astype(np.uint8) * 255
    for name, arrays in (("sketch", sketch), ("photo", photo), ("hair_s", hair), ("hair_t", hair)):
        for i, a in enumerate(arrays):
            files.save_png(tmp_path / name / f"face_{i}.png", a)
    return tmp_path / "sketch", tmp_path / "photo", hair > 0


def test_own_images_end_to_end(tmp_path, monkeypatch):
    src, tgt, hair = _folders(tmp_path)
    calls = []
    real_invert = invert.invert
    monkeypatch.setattr(invert, "invert", lambda *a, **k: calls.append(1) or real_invert(*a, **k))
    # 40 inversion steps reach MSE < 0.03 (photos) / < 0.05 (sketches) on these faces; reconstruction
    # quality itself is test_invert's and test_demo_models' subject
    c = demo_config(tmp_path / "run", source_images=str(src), target_images=str(tgt), invert_steps=40,
                    iterations=4, chunk=2, snapshot_every=2, batch_size=2)
    out = pipeline.run_dds(c)
    run = json.loads((out / "run.json").read_text())
    assert [e["name"] for e in run["images"]] == [f"face_{i}" for i in range(N)]
    # one batched inversion per domain, and one of the sources aligned to their targets (two folders)
    assert run["seeds"] == list(range(N)) and len(calls) == 3
    for e in run["images"]:                                             # inversion error is reported
        assert 0 <= e["inversion_mse_target"] < 0.05 and 0 <= e["inversion_mse_source"] < 0.15
    assert (out / "contact_sheet_s2t.png").is_file()
    for i in range(N):
        d = out / "s2t" / f"seed_{i}"
        target = files.read_image(d / "target.png").astype(np.float32)
        truth = np.asarray(Image.open(tgt / f"face_{i}.png"), np.float32)
        assert np.mean((target - truth) ** 2) / 255 ** 2 < 0.05        # x_t is the user's photo, inverted
        for name in ("source", "mask_source", "crossover", "dds"):
            assert (d / f"{name}.png").is_file()
    # resuming with more images' worth of work reuses the cached inversion (no new inversion)
    calls.clear()
    c2 = demo_config(tmp_path / "run", source_images=str(src), target_images=str(tgt), invert_steps=40,
                     iterations=4, chunk=2, snapshot_every=2, batch_size=2, resume=True)
    pipeline.run_dds(c2)
    assert calls == []


def test_painted_masks_and_one_folder(tmp_path):
    """Painted masks replace the segmenter; one folder alone gives the other domain from its latent."""
    src, tgt, hair = _folders(tmp_path, n=2)
    c = demo_config(tmp_path / "run", target_images=str(tgt), source_masks=str(tmp_path / "hair_s"),
                    target_masks=str(tmp_path / "hair_t"), invert_steps=60, iterations=2, chunk=2,
                    snapshot_every=2, batch_size=2, seeds="0")
    out = pipeline.run_dds(c)
    run = json.loads((out / "run.json").read_text())
    assert run["images"][0]["inversion_mse_source"] is None              # not inverted: drawn from w_t
    for i in range(2):
        mask = files.read_image(out / "s2t" / f"seed_{i}" / "mask_source.png") > 127
        np.testing.assert_array_equal(mask, hair[i])


def _break(tgt, problem):
    bad = tgt / "face_1.png"
    if problem == "unreadable":
        bad.write_bytes(b"not a png")
    elif problem == "16-bit":
        Image.fromarray(np.zeros((32, 32), np.uint16) + 300).save(bad)
    elif problem == "tiny":
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(bad)
    else:
        os.rename(bad, tgt / "other.png")
    return {"unreadable": "face_1.png: unreadable image", "16-bit": "face_1.png: image mode",
            "tiny": "face_1.png: 4x4 pixels is too small", "unmatched": "unmatched: face_1, other"}[problem]


def test_bad_image_cli_is_one_line_and_leaves_nothing(tmp_path, program):
    src, tgt, _ = _folders(tmp_path, n=2)
    expect = _break(tgt, "unreadable")
    out = tmp_path / "run"
    r = program("dds_jax.main", f"--config={DEMO}", f"--config.source_images={src}",
                f"--config.target_images={tgt}", f"--config.output_dir={out}")
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], lines
    assert not out.exists()


@pytest.mark.parametrize("problem", ["16-bit", "tiny", "unmatched"])
def test_bad_images_are_named_and_leave_nothing(tmp_path, problem):
    src, tgt, _ = _folders(tmp_path, n=2)
    expect = _break(tgt, problem)
    c = demo_config(tmp_path / "run", source_images=str(src), target_images=str(tgt))
    with pytest.raises(ValueError, match=expect.replace("(", r"\(")):
        pipeline.run_dds(c)
    assert not (tmp_path / "run").exists()


def test_image_paths_pair_by_name(tmp_path):
    src, tgt, _ = _folders(tmp_path, n=2)
    os.rename(src / "face_0.png", src / "z_face_0.png")
    os.rename(tgt / "face_0.png", tgt / "z_face_0.png")
    paths = image_inputs.image_paths({"source_images": str(src), "target_images": str(tgt)})
    assert [p.name for p in paths["source"]] == [p.name for p in paths["target"]] == ["face_1.png", "z_face_0.png"]
