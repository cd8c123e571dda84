"""Issue 36's bad inputs, as a new user hits them: each ends as one short line naming the input and the
remedy (exit 2 from the programs), leaves nothing behind that blocks the corrected command, and never
gives a silent wrong result. The programs run in this process (tests/cli_utils.run_program)."""
import json
import logging
import os
import pathlib
import shutil

import numpy as np
import pytest
from PIL import Image

from dds_jax import checkpoint, files, render
from dds_jax.dds import image_inputs, invert, pipeline, run_io

from cli_utils import run_program
from demo_utils import DEMO, demo_config

PHOTO = checkpoint.DEMO_DIR / "photo"


def error_lines(stderr: str):
    return [ln for ln in stderr.splitlines() if ln.startswith("error:")]


def run_main(capfd, *args):
    """``python -m dds_jax.main --config=configs/demo.py ARGS`` in this process."""
    return run_program(capfd, "dds_jax.main", f"--config={DEMO}", *args)


def edited_model(tmp_path, src, edit) -> pathlib.Path:
    """A copy of a shipped model whose model.json is changed by ``edit(config)``."""
    d = tmp_path / src.name
    shutil.copytree(src, d)
    meta = json.loads((d / "model.json").read_text())
    edit(meta["config"])
    (d / "model.json").write_text(json.dumps(meta))
    return d


# --------------------------------------------------------------------------------------------------
# model.json that does not describe the stored parameters
# --------------------------------------------------------------------------------------------------
def test_wrong_n_mlp_is_named_not_loaded_silently(tmp_path, capfd):
    d = edited_model(tmp_path, PHOTO, lambda c: c.update(n_mlp=2))
    with pytest.raises(checkpoint.CorruptCheckpointError) as e:
        checkpoint.load_model(d)
    assert str(e.value).startswith(f"{d / 'model.json'}: n_mlp is 2 but the stored parameters have 4; "
                                   "correct model.json")
    r = run_program(capfd, "dds_jax.cli.sample", f"--ckpt={d}", "--seeds=0", f"--out={tmp_path / 'out'}")
    assert r.returncode == 2 and error_lines(r.stderr) == [f"error: {e.value}"], r.stderr
    assert not (tmp_path / "out").exists()


def test_channel_count_mismatch_names_the_field(tmp_path, capfd):
    d = edited_model(tmp_path, PHOTO, lambda c: c["channels"].update({"32": 32}))
    msg = f"{d / 'model.json'}: channels['32'] is 32 but the stored parameters have 24"
    r = run_program(capfd, "dds_jax.cli.sample", f"--ckpt={d}", "--seeds=0", f"--out={tmp_path / 'out'}")
    assert r.returncode == 2 and error_lines(r.stderr)[0].startswith(f"error: {msg}; correct model.json"), r.stderr
    # main blamed the segmenter ("trained on another architecture"); now the model.json is named
    r = run_main(capfd, f"--config.target_ckpt={d}", f"--config.output_dir={tmp_path / 'run'}")
    assert r.returncode == 2 and len(error_lines(r.stderr)) == 1 and msg in r.stderr, r.stderr
    assert "segmenter" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_describe_params_reads_the_shipped_configs():
    from dds_jax.models import stylegan2 as sg
    for name in ("photo", "sketch"):
        m = checkpoint.load_model(checkpoint.DEMO_DIR / name)
        assert sg.describe_params(m.params) == {k: m.config[k] for k in ("size", "style_dim", "n_mlp", "channels")}


# --------------------------------------------------------------------------------------------------
# Images: EXIF orientation, GIF, huge images, painted masks of another shape
# --------------------------------------------------------------------------------------------------
def _upright(h=40, w=32):
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 4] = (255, 0, 0)                 # red band at the top
    return a


def test_exif_orientation_is_applied(tmp_path):
    """A phone photo held upside down: raw pixels upside down, EXIF orientation 3 turns it upright."""
    exif = Image.Exif()
    exif[0x0112] = 3
    Image.fromarray(_upright()[::-1, ::-1]).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    a = files.read_square_image(tmp_path / "phone.jpg", 32)
    assert a[:4, :, 0].mean() > 200 and a[-4:, :, 0].mean() < 50       # the red band is on top
    exif[0x0112] = 6                                                    # turned 90°: width and height swap
    Image.fromarray(np.zeros((32, 40, 3), np.uint8)).save(tmp_path / "side.jpg", exif=exif)
    assert files.image_size(tmp_path / "side.jpg") == (32, 40)


def test_gif_is_an_image(tmp_path):
    Image.fromarray(_upright(32, 32)).save(tmp_path / "face.gif")
    (tmp_path / "notes.txt").write_text("not an image")
    assert files.image_files(tmp_path) == [tmp_path / "face.gif"]
    assert files.read_square_image(tmp_path / "face.gif", 32)[0, 0].tolist() == [255, 0, 0]


def test_huge_image_warns_once(tmp_path, monkeypatch, caplog, recwarn):
    """PIL's DecompressionBombWarning (printed twice before) is one log line per file."""
    Image.fromarray(_upright(64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 - 1)       # 64x64 counts as huge here
    with caplog.at_level(logging.WARNING):
        files.image_size(tmp_path / "big.png")
        files.read_square_image(tmp_path / "big.png", 32)
        files.read_square_image(tmp_path / "big.png", 16)
    assert [r.getMessage() for r in caplog.records if "big.png" in r.getMessage()] == [
        f"{tmp_path / 'big.png'}: 64x64 pixels is a very large image; reading it takes much memory "
        "(shrink it to save time)"]
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 // 2 - 1)  # beyond twice the limit: refused
    with pytest.raises(ValueError) as e:
        files.read_square_image(tmp_path / "big.png", 32)
    assert str(e.value) == f"{tmp_path / 'big.png'}: more than 4094 pixels, too many to read safely; shrink the image"


def _faces(folder, n=2, seed=11, domain="photo"):
    faces, labels = render.render_faces(seed, n, 32, domain)
    for i, a in enumerate(faces):
        files.save_png(folder / f"face_{i}.png", a)
    return faces, labels


def test_mask_of_another_aspect_is_refused(tmp_path):
    folder, masks = tmp_path / "images", tmp_path / "masks"
    folder.mkdir()
    masks.mkdir()
    Image.fromarray(_upright(64, 48)).save(folder / "a.png")
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(masks / "a.png")     # square: does not line up
    with pytest.raises(ValueError) as e:
        image_inputs._read_masks(masks, "source", ["a"], 32, [folder / "a.png"])
    assert str(e.value) == (f"config.source_masks: {masks / 'a.png'} is 64x64 pixels but its image "
                            f"{folder / 'a.png'} is 48x64 (another aspect ratio: it would not line up); "
                            "paint the mask at the image's size")
    # the same aspect at half the size lines up with the image (both are cropped and resized alike)
    half = np.zeros((32, 24), np.uint8)
    half[:8] = 255
    Image.fromarray(half).save(masks / "a.png")
    m = image_inputs._read_masks(masks, "source", ["a"], 32, [folder / "a.png"])[0, ..., 0]
    image = files.read_square_image(folder / "a.png", 32)
    np.testing.assert_array_equal(m, image[..., 0] > 127)


# --------------------------------------------------------------------------------------------------
# Resume: an edited image, other seeds
# --------------------------------------------------------------------------------------------------
class _Bar:
    """Stands in for tqdm: records what the inversion reports."""
    made = []

    def __init__(self, total=None, **kwargs):
        self.total, self.n, self.desc = total, 0, kwargs.get("desc")
        _Bar.made.append(self)

    def update(self, n):
        self.n += n

    def set_postfix(self, **kwargs):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_resume_after_an_edited_image_redoes_it(tmp_path, monkeypatch, caplog):
    import tqdm
    src = tmp_path / "photos"
    faces, _ = _faces(src, n=3)
    c = lambda **k: demo_config(tmp_path / "run", target_images=str(src), invert_steps=3, iterations=2,
                                chunk=2, snapshot_every=2, checkpoint_every=0, batch_size=3, gif=False, **k)
    monkeypatch.setattr(tqdm, "tqdm", _Bar)
    _Bar.made.clear()
    with caplog.at_level(logging.WARNING):
        out = pipeline.run_dds(c())
    bars = [b for b in _Bar.made if b.desc == "inverting images"]
    assert [(b.total, b.n) for b in bars] == [(3, 3)]                  # the inversion shows its progress
    # 3 inversion steps cannot draw anything: every image is reported as one the generator cannot draw
    assert any("the generator cannot draw face_0 (target," in r.getMessage() for r in caplog.records)
    before = {i: files.read_image(run_io.seed_dir(out, "s2t", i) / "target.png") for i in range(3)}
    edited = np.ascontiguousarray(faces[1][:, ::-1])                    # face_1 edited (mirrored)
    files.save_png(src / "face_1.png", edited)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        pipeline.run_dds(c(resume=True))
    assert any("images changed since the run started: face_1; their old results are removed" in r.getMessage()
               for r in caplog.records)
    after = {i: files.read_image(run_io.seed_dir(out, "s2t", i) / "target.png") for i in range(3)}
    run = json.loads((out / "run.json").read_text())
    assert run["seeds"] == [0, 1, 2]
    assert run["images"][1]["sha1"] == image_inputs.problem_digests([[src / "face_1.png"]])[0]
    for i in (0, 2):
        np.testing.assert_array_equal(after[i], before[i])              # untouched images are kept
    assert np.abs(after[1].astype(int) - before[1].astype(int)).max() > 0
    # the new result is that of the edited image: its inversion is the one cached for it now
    with np.load(out / image_inputs.CACHE_FILE) as z:
        assert z["w_t"].shape[0] == 3
    sheet = files.read_image(out / "contact_sheet_s2t.png")
    tile = after[1].shape[0]
    np.testing.assert_array_equal(sheet[2 + (tile + 2) + 0:2 + (tile + 2) + tile, 2 + tile + 2:2 + 2 * tile + 2],
                                  after[1][..., :3])


def test_changed_problems_are_edited_inserted_and_gone_images(tmp_path):
    files.write_json(tmp_path / "run.json", {"images": [{"index": i, "name": n, "sha1": h}
                                                        for i, (n, h) in enumerate(zip("abc", "123"))]})
    assert image_inputs.changed_problems(tmp_path, ["a", "b", "c"], ["1", "2", "3"]) == []
    assert image_inputs.changed_problems(tmp_path, ["a", "b", "c"], ["1", "9", "3"]) == [1]      # edited
    assert image_inputs.changed_problems(tmp_path, ["a", "a2", "b", "c"], ["1", "5", "2", "3"]) == [1, 2]  # inserted
    assert image_inputs.changed_problems(tmp_path, ["a"], ["1"]) == [1, 2]                         # gone
    assert image_inputs.changed_problems(tmp_path / "new", ["a"], ["1"]) == []                     # no run yet


def test_resume_with_other_seeds_is_refused(tmp_path, capfd):
    out = tmp_path / "run"
    out.mkdir()
    config = pipeline._config_dict(demo_config(out, seeds="0-100000"))
    files.write_json(out / "run.json", {"config": config, "directions": ["s2t"], "seeds": list(range(7096)),
                                        "failed_seeds": {}, "failures": [], "final_losses": {}, "timings": {},
                                        "batches": []})
    before = (out / "run.json").read_text()
    r = run_main(capfd, "--config.seeds=0-15", "--config.resume=True", f"--config.output_dir={out}",
                 "--config.iterations=4", "--config.chunk=2", "--config.snapshot_every=2")
    assert r.returncode == 2 and error_lines(r.stderr) == [
        f"error: cannot resume {out}: the config differs in seeds: '0-100000' -> '0-15' (resume with the run's "
        "values or choose another --config.output_dir)"], r.stderr
    assert (out / "run.json").read_text() == before and sorted(os.listdir(out)) == ["run.json"]


# --------------------------------------------------------------------------------------------------
# One-line errors of the programs
# --------------------------------------------------------------------------------------------------
def test_unwritable_output_dir_is_one_line(tmp_path, monkeypatch, capfd):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):           # root ignores the mode: refuse the way the kernel would
        real = pathlib.Path.mkdir

        def mkdir(self, *a, **k):
            if locked in self.absolute().parents:
                raise PermissionError(13, "Permission denied", str(self))
            return real(self, *a, **k)
        monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    try:
        r = run_main(capfd, f"--config.output_dir={locked / 'run'}", "--config.seeds=0")
    finally:
        locked.chmod(0o755)
    assert r.returncode == 2 and error_lines(r.stderr) == [
        f"error: {locked / 'run'}: permission denied; choose a folder you may write (or fix its permissions) "
        "and run the command again"], r.stderr
    assert list(locked.iterdir()) == []


def test_non_finite_config_number_is_refused_up_front(tmp_path, capfd):
    for value in ("nan", "inf", "-inf"):
        r = run_main(capfd, f"--config.lr={value}", f"--config.output_dir={tmp_path / 'run'}")
        assert r.returncode == 2 and error_lines(r.stderr) == [
            f"error: config.lr: {float(value)} is not a finite number; pass a finite value"], r.stderr
    assert not (tmp_path / "run").exists()


def test_main_help_lists_the_config_fields(capfd):
    r = run_program(capfd, "dds_jax.main", "--help")
    text = " ".join((r.stdout + r.stderr).split())
    for field in ("b1=0.9", "seeds='0-7'", "parts=''", "output_dir='runs/dds'", "invert_steps=500"):
        assert field in text, field
    assert "--config.<field>=value" in text


def test_converter_list_under_g_ema_says_what_it_holds():
    from dds_jax import conversion
    with pytest.raises(conversion.ConversionError) as e:
        conversion.convert("stylegan2", {"g_ema": [np.zeros(3)]}, source="x.pt")
    assert str(e.value).startswith("x.pt: 'g_ema' holds a list, not a generator state_dict")
    assert "--generator_key" in str(e.value) and "it holds []" not in str(e.value)
    with pytest.raises(conversion.ConversionError, match="'d' holds a list, not a discriminator state_dict"):
        conversion.convert("discriminator", {"d": [np.zeros(3)]}, source="x.pt")


def test_converter_unknown_kind_is_one_line(tmp_path, capfd):
    from dds_jax import conversion
    r = run_program(capfd, "convert/torch_to_flax.py", "--kind=stylegan3", f"--src={tmp_path / 'x.pt'}",
                    f"--out={tmp_path / 'out'}")
    assert r.returncode == 2 and [ln for ln in r.stderr.splitlines() if ln.strip()] == [
        f"error: flag --kind=stylegan3: value should be one of <{'|'.join(conversion.kinds())}>"], r.stderr
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------------
# Inversion: progress and a warning when the generator cannot draw the image
# --------------------------------------------------------------------------------------------------
def test_poorly_inverted_images_are_named():
    inv = {"mse_s": np.array([0.01, np.nan, 0.2]), "mse_t": np.array([np.nan, 0.09, 0.001])}
    s = image_inputs.ImageSet(["a", "b", "c"], inv)
    assert s.poorly_inverted(0.05) == ["b (target, 0.090)", "c (source, 0.200)"]


def test_invert_reports_progress_per_batch():
    from dds_jax.models import stylegan2 as sg
    gen = sg.load_generator(PHOTO)
    faces, _ = render.render_faces(3, 5, gen.config.size, "photo")
    seen = []
    invert.invert(gen, faces, steps=2, batch_size=2, progress=seen.append)
    assert seen == [0, 2, 2, 1]


# --------------------------------------------------------------------------------------------------
# The demo with parts the segmenter cannot find (README)
# --------------------------------------------------------------------------------------------------
def test_demo_eyes_nose_mouth_has_masks_in_every_seed(tmp_path):
    """README: configs/demo.py:eyes_nose_mouth (the paper's M1 mask) finds eyes, nose and mouth pixels
    in both domains of every one of the demo's seeds 0-7 (the 32x32 pair found them in 4 of 8)."""
    from dds_jax.dds import config as config_lib
    from dds_jax.dds import optimize as opt
    c = demo_config(tmp_path, parts="eyes,nose,mouth", seeds="0-7")
    models, seg_fn, *_ = pipeline.load_models(c)
    seeds = config_lib.select_seeds(c)
    inputs = pipeline._make_inputs(models, seg_fn, config_lib.dds_config(c), c, seeds)
    empty = np.asarray(opt.mask_is_empty(inputs.y_s)) | np.asarray(opt.mask_is_empty(inputs.y_t))
    assert not empty.any(), [seeds[int(inputs.seed[i])] for i in np.flatnonzero(empty)]
