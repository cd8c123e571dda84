"""``python -m dds_jax.main`` end to end on the shipped demo models: outputs, resume, errors.

The runs are shortened (a few iterations) with the same overrides a user would pass on the command
line; the in-process runs call ``pipeline.run_dds`` with the config the CLI builds.
"""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from dds_jax import cli_utils, pipeline, run_io
from dds_jax.dds import optimize as opt

from demo_utils import DEMO, ROOT
from demo_utils import demo_config as _demo_config


def test_demo_run_writes_every_output(demo_run):
    run = json.loads((demo_run / "run.json").read_text())
    assert run["seeds"] == [0, 1, 2] and run["directions"] == ["s2t"]
    size = None
    for seed in (0, 1, 2):
        d = run_io.seed_dir(demo_run, "s2t", seed)
        for name in run_io.IMAGE_NAMES:
            im = cli_utils.read_image(d / f"{name}.png")
            size = size or im.shape[0]
            assert im.shape[:2] == (size, size), name
        with np.load(d / "snapshots.npz") as z:
            np.testing.assert_array_equal(z["iterations"], [0, 2])
            assert z["images"].shape == (2, size, size, 3)
        assert (d / "optimisation.gif").stat().st_size > 0
        final = run["final_losses"]["s2t"][str(seed)]
        assert set(final) >= {"loss", "L_s", "L_t", "L_c"} and np.isfinite(final["loss"])
    sheet = cli_utils.read_image(demo_run / "contact_sheet_s2t.png")
    assert sheet.shape[0] >= 3 * size and sheet.shape[1] >= len(run_io.IMAGE_NAMES) * size
    assert run["versions"]["jax"] and run["timings"]["total_s"] > 0
    assert not (demo_run / "state").exists(), "the resume checkpoint is removed when a batch finishes"


def test_crossover_png_is_eq1_of_the_pngs(demo_run):
    """x_c = x_s·y_s + x_t·(1 − y_t) (Eq. 1) in the generators' [-1, 1] range, as the reference computes it."""
    d = run_io.seed_dir(demo_run, "s2t", 0)
    read = lambda n: cli_utils.read_image(d / f"{n}.png").astype(np.float32)
    to_g = lambda n: read(n) / 127.5 - 1.0
    y_s, y_t = read("mask_source")[..., None] / 255, read("mask_target")[..., None] / 255
    expect = cli_utils.to_uint8(to_g("source") * y_s + to_g("target") * (1 - y_t)).astype(np.float32)
    assert np.abs(expect - read("crossover")).max() <= 2.0   # uint8 rounding of the three PNGs


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, monkeypatch, demo_run):
    real = opt.make_run_chunk
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        run = real(*args, **kwargs)

        def call(state, inputs):
            calls["n"] += 1
            if calls["n"] == 4:          # batch 1 done (2 chunks), batch 2 checkpointed after its 1st chunk
                raise _Interrupt()
            return run(state, inputs)
        return call

    monkeypatch.setattr(opt, "make_run_chunk", flaky)
    with pytest.raises(_Interrupt):
        pipeline.run_dds(_demo_config(tmp_path))
    monkeypatch.setattr(opt, "make_run_chunk", real)
    assert run_io.finished_seeds(tmp_path, "s2t") == [0, 1]
    assert (tmp_path / "state" / "progress.json").is_file()
    first = (run_io.seed_dir(tmp_path, "s2t", 0) / "result.json").stat().st_mtime_ns

    with pytest.raises(FileExistsError, match="resume"):
        pipeline.run_dds(_demo_config(tmp_path))
    with pytest.raises(ValueError, match="alpha"):
        pipeline.run_dds(_demo_config(tmp_path, resume=True, alpha=0.1))
    pipeline.run_dds(_demo_config(tmp_path, resume=True))
    assert (run_io.seed_dir(tmp_path, "s2t", 0) / "result.json").stat().st_mtime_ns == first
    resumed = json.loads((tmp_path / "run.json").read_text())["final_losses"]["s2t"]
    reference = json.loads((demo_run / "run.json").read_text())["final_losses"]["s2t"]
    for seed in ("0", "1", "2"):
        for term, v in reference[seed].items():
            assert resumed[seed][term] == pytest.approx(v, rel=1e-5), (seed, term)
    for name in ("dds", "crossover"):
        a = run_io.read_images(tmp_path, "s2t", name, [2])
        b = run_io.read_images(demo_run, "s2t", name, [2])
        assert np.abs(a - b).max() <= 1 / 255


def test_empty_mask_seed_is_reported_not_optimised(tmp_path, monkeypatch):
    real = pipeline.load_models

    def empty_for_seed_1(c):
        models, seg_fn = real(c)

        def seg(images, feats):
            m = seg_fn(images, feats)
            return m.at[1].set(0.0) if m.shape[0] > 1 else m
        return models, seg
    monkeypatch.setattr(pipeline, "load_models", empty_for_seed_1)
    with pytest.warns(UserWarning, match="no foreground"):
        out = pipeline.run_dds(_demo_config(tmp_path, seeds="0,1", checkpoint_every=0))
    run = json.loads((out / "run.json").read_text())
    assert run["seeds"] == [0]
    assert run["failed_seeds"] == {"s2t": [1]}
    assert run["failures"][0]["reason"] == "empty mask"
    assert not run_io.seed_is_done(out, "s2t", 1)


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown config field"):
        c = _demo_config(tmp_path)
        with c.unlocked():
            c.nmu_seeds = 3
        pipeline.run_dds(c)
    with pytest.raises(ValueError, match="direction"):
        pipeline.run_dds(_demo_config(tmp_path, direction="sideways"))
    with pytest.raises(FileNotFoundError, match="model.json"):
        pipeline.run_dds(_demo_config(tmp_path, source_ckpt=str(tmp_path / "nowhere")))


def _cli(*args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "dds_jax.main", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def test_cli_help_and_bad_override():
    r = _cli("--helpfull")
    assert "--config" in r.stdout
    r = _cli(f"--config={DEMO}", "--config.no_such_field=1")
    assert r.returncode != 0 and "no_such_field" in (r.stderr + r.stdout)


def test_cli_runs_the_demo_with_overrides(tmp_path):
    r = _cli(f"--config={DEMO}", "--config.seeds=3", "--config.iterations=2", "--config.chunk=2",
             "--config.snapshot_every=1", f"--config.output_dir={tmp_path}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "contact_sheet_s2t.png").is_file()
    assert run_io.finished_seeds(tmp_path, "s2t") == [3]
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["config"]["iterations"] == 2


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "configs").glob("*.py")))
def test_every_experiment_config_is_valid(name, tmp_path):
    from dds_jax.config import validate
    spec = importlib.util.spec_from_file_location(name, ROOT / "configs" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    c = mod.get_config()
    validate(c)
    assert c.output_dir
    if name != "demo":      # real experiments point at checkpoints the user converts first
        c.output_dir = str(tmp_path)
        with pytest.raises(FileNotFoundError, match="convert"):
            pipeline.run_dds(c)
