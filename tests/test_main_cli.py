"""``python -m dds_jax.main`` end to end on the shipped demo models: outputs, resume, errors.

The runs are shortened (a few iterations) with the same overrides a user would pass on the command
line; the in-process runs call ``pipeline.run_dds`` with the config the CLI builds.
"""
import importlib.util
import json
import logging
import shutil
import signal
import time
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dds_jax import files
from dds_jax.checkpoint import DEMO_DIR
from dds_jax.dds import pipeline
from dds_jax.dds import run_io
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
            im = files.read_image(d / f"{name}.png")
            size = size or im.shape[0]
            assert im.shape[:2] == (size, size), name
        with np.load(d / "snapshots.npz") as z:
            # every snapshot_every iterations, then the final x̂ after the last update (issue 11 item 12)
            np.testing.assert_array_equal(z["iterations"], [0, 2, 4])
            assert z["images"].shape == (3, size, size, 3)
            np.testing.assert_array_equal(z["images"][-1], files.read_image(d / "dds.png"))
        with Image.open(d / "optimisation.gif") as gif:
            assert gif.n_frames == 3
        final = run["final_losses"]["s2t"][str(seed)]
        assert set(final) >= {"loss", "L_s", "L_t", "L_c"} and np.isfinite(final["loss"])
    sheet = files.read_image(demo_run / "contact_sheet_s2t.png")
    assert sheet.shape[0] >= 3 * size and sheet.shape[1] >= len(run_io.IMAGE_NAMES) * size
    assert run["versions"]["jax"] and run["timings"]["total_s"] > 0
    assert not (demo_run / "state").exists(), "the resume checkpoint is removed when a batch finishes"


def test_crossover_png_is_eq1_of_the_pngs(demo_run):
    """x_c = x_s·y_s + x_t·(1 − y_t) (Eq. 1) in the generators' [-1, 1] range, as the reference computes it."""
    d = run_io.seed_dir(demo_run, "s2t", 0)
    read = lambda n: files.read_image(d / f"{n}.png").astype(np.float32)
    to_g = lambda n: read(n) / 127.5 - 1.0
    y_s, y_t = read("mask_source")[..., None] / 255, read("mask_target")[..., None] / 255
    expect = files.to_uint8(to_g("source") * y_s + to_g("target") * (1 - y_t)).astype(np.float32)
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


def test_empty_mask_seed_is_reported_not_optimised(tmp_path, monkeypatch, caplog):
    real = pipeline.load_models

    def empty_for_seed_1(c):
        models, seg_fn, *rest = real(c)

        def seg(images, feats):
            m = seg_fn(images, feats)
            return m.at[1].set(0.0) if m.shape[0] > 1 else m
        return (models, seg, *rest)
    monkeypatch.setattr(pipeline, "load_models", empty_for_seed_1)
    with caplog.at_level(logging.WARNING):
        out = pipeline.run_dds(_demo_config(tmp_path, seeds="0,1", checkpoint_every=0))
    assert sum("no foreground" in r.getMessage() for r in caplog.records) == 1   # once, not twice
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


def _cli(*args, module="dds_jax.main"):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def _lines(text):
    return [ln for ln in text.splitlines() if ln.strip()]


def test_cli_help(program):
    r = program("dds_jax.main", "--helpfull")
    assert "--config" in r.stdout


def _console_scripts():
    from importlib import metadata
    return sorted(e.name for e in metadata.entry_points(group="console_scripts") if e.value.startswith("dds_jax."))


@pytest.mark.parametrize("command", [[s] for s in _console_scripts()]
                         + [[sys.executable, "convert/torch_to_flax.py"]], ids=lambda c: c[-1])
def test_help_of_every_entry_point_lists_its_flags(command, program):
    """absl lists only the started file's flags; the dds-* scripts and the wrappers start another file
    than the program module that defines the flags (cli.common.run makes them the started file's).
    ``python -m dds_jax.demo_models``: tests/test_demo_models.py::test_cli_help. In this process (the
    started file is the script's path, as the console script's or the wrapper's own process would have
    it); tests/test_docs.py starts one console script as a real process."""
    if len(command) == 1:
        from importlib import metadata
        exe = shutil.which(command[0], path=os.path.dirname(sys.executable))
        if exe is None:
            pytest.skip(f"{command[0]} is not installed (pip install -e .)")
        target = next(e.value for e in metadata.entry_points(group="console_scripts") if e.name == command[0])
    else:
        exe, target = None, command[1]
    r = program(target, "--help", argv0=exe)
    assert "\nflags:\n" in r.stdout and "\n  --" in r.stdout, (r.stdout[-1000:], r.stderr[-1000:])


@pytest.mark.parametrize("arg, expect", [
    ("--config.foo=1", "unknown config field(s) 'foo'"),
    ("--config.iteration=5", "did you mean 'iterations'"),
    ("--config=configs/nope.py", "config file not found: configs/nope.py"),
    ("--config.iterations=many", "--config.iterations=many"),
], ids=["unknown", "typo", "no_file", "bad_value"])
def test_cli_bad_config_is_one_line(arg, expect, tmp_path, program):
    """Issue 11 items 4 and 11: one line on stderr (no traceback, no absl E-line), exit 2; unknown
    fields list the valid ones."""
    args = [f"--config={DEMO}", arg] if arg.startswith("--config.") else [arg]
    r = program("dds_jax.main", *args, f"--config.output_dir={tmp_path / 'run'}")
    assert r.returncode == 2, r.stderr[-2000:]
    lines = _lines(r.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], r.stderr[-2000:]
    if "field" in expect or "did you mean" in expect:
        assert "valid fields:" in lines[0] and "num_seeds" in lines[0] and "perceptual_weight" in lines[0]
    assert not (tmp_path / "run").exists()


def test_cli_runs_the_demo_after_a_failed_validation(tmp_path, program):
    """Item 5: a run refused by validation leaves nothing behind; the corrected command then runs (both in
    this process; real processes of the same program: the Ctrl-C, all-seeds-skipped and distributed tests)."""
    out = tmp_path / "run"
    r = program("dds_jax.main", f"--config={DEMO}", "--config.seeds=7-0", f"--config.output_dir={out}")
    assert r.returncode == 2 and _lines(r.stderr) == ["error: config.seeds: bad seed range '7-0': end before start"]
    assert not out.exists()
    # chunk and snapshots as the demo_run fixture's: the same compiled step
    r = program("dds_jax.main", f"--config={DEMO}", "--config.seeds=3", "--config.iterations=2",
                "--config.chunk=2", "--config.snapshot_every=2", f"--config.output_dir={out}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "contact_sheet_s2t.png").is_file()
    assert run_io.finished_seeds(out, "s2t") == [3]
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["iterations"] == 2


def test_cli_every_seed_skipped_is_an_error(tmp_path):
    """Item 6: a segmenter that finds no pixel of the part in seeds 0-1 (the demo's, its last layer
    biased to the background) -> exit 2 with one error line, no success message, each warning once (on
    the process's stderr: a real process), and nothing left that blocks the next command."""
    from dds_jax import checkpoint
    seg = checkpoint.load_model(DEMO_DIR / "segmenter")
    last = sorted(seg.params, key=lambda k: int(k[4:]))[-1]
    bias = np.array(seg.params[last]["bias"])
    bias[0] += 1e4                                                  # background wins every pixel
    params = dict(seg.params, **{last: dict(seg.params[last], bias=bias)})
    checkpoint.save_model(tmp_path / "blind", "segmenter", seg.config, params)
    out = tmp_path / "run"
    r = _cli(f"--config={DEMO}", f"--config.segmenter_ckpt={tmp_path / 'blind'}", "--config.seeds=0-1",
             "--config.iterations=2", "--config.chunk=2", f"--config.output_dir={out}")
    assert r.returncode == 2, r.stderr[-3000:]
    assert "DDS results" not in r.stdout
    errors = [ln for ln in _lines(r.stderr) if ln.startswith("error:")]
    assert len(errors) == 1 and "no seed could be optimised" in errors[0] and "config.parts" in errors[0]
    warned = [ln for ln in _lines(r.stderr) if "no foreground" in ln]
    assert len(warned) == 2 and "seed 0 (s2t)" in warned[0] and "seed 1 (s2t)" in warned[1], r.stderr
    assert not out.exists()


def test_cli_ctrl_c_prints_the_resume_command(tmp_path):
    """Item 11: Ctrl-C -> one line naming the command that resumes the run, exit 130, no traceback."""
    out = tmp_path / "run"
    # mode=outer: one generator, the cheapest compile (SIGINT is handled once a compile returns)
    args = [f"--config={DEMO}", "--config.mode=outer", "--config.seeds=0", "--config.iterations=100000",
            "--config.chunk=5", "--config.snapshot_every=0", f"--config.output_dir={out}"]
    p = subprocess.Popen([sys.executable, "-m", "dds_jax.main", *args], cwd=ROOT,
                         env=dict(os.environ, JAX_PLATFORMS="cpu"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         # a shell's background job ignores SIGINT; the child must get Python's handler
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 600
        while not (out / "run.json").is_file() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    resume = [ln for ln in _lines(err) if "interrupted" in ln]
    assert resume == ["interrupted; resume with: python -m dds_jax.main " + " ".join(args)
                      + " --config.resume=True"], err[-3000:]


def test_direction_alias_is_normalised(tmp_path, monkeypatch):
    """Item 1: the released loops' names are directions everywhere: d1 (the first loop) is t2s and d2 is
    s2t in the config; a d2 run is s2t in its result folder, run.json, contact sheet, evaluation, and a
    resume that rebuilds nothing (d2, so the run is the demo_run fixture's compiled step: the direction
    is compiled in)."""
    from dds_jax.eval import evaluate
    assert opt.DDSConfig(direction="d1").direction == "t2s" and opt.DDSConfig(direction="d2").direction == "s2t"
    c = _demo_config(tmp_path, direction="d2", seeds="0")
    out = pipeline.run_dds(c)
    run = json.loads((out / "run.json").read_text())
    assert run["directions"] == ["s2t"] and run_io.finished_seeds(out, "s2t") == [0]
    assert (out / "contact_sheet_s2t.png").is_file() and not (out / "contact_sheet_d2.png").exists()
    assert [r["direction"] for r in evaluate.evaluate_run(out)] == ["s2t"] * 3
    calls = []
    monkeypatch.setattr(pipeline, "_make_inputs", lambda *a: calls.append(a))
    pipeline.run_dds(_demo_config(tmp_path, direction="d2", seeds="0", resume=True))
    assert calls == []                               # the finished seed is not rebuilt
    run["directions"] = ["d2"]                       # a run.json written before the fix
    (out / "run.json").write_text(json.dumps(run))
    assert [r["direction"] for r in evaluate.evaluate_run(out)] == ["s2t"] * 3


@pytest.mark.parametrize("field, value", [
    ("perceptual_weight", 3.0), ("imagenet_normalize", True), ("truncation_mean", 100),
    ("backbone_ckpt", "ckpt/vgg16"), ("init", "mean"), ("perceptual_size", 64), ("b1", 0.5),
    ("eps", 1e-6), ("n_mean_latent", 5), ("latent_space", "w"), ("iterations", 5), ("parts", "skin"),
])
def test_resume_compares_every_result_changing_field(field, value, tmp_path):
    """Item 3: every field that changes results is compared on resume (DDS fields as resolved)."""
    old = pipeline._config_dict(_demo_config(tmp_path))
    assert pipeline.resume_differences(old, _demo_config(tmp_path, batch_size=7, gif=False)) == []
    diff = pipeline.resume_differences(old, _demo_config(tmp_path, **{field: value}))
    assert len(diff) == 1 and diff[0].startswith(f"{field}: ")


def test_resume_accepts_mode_defaults_and_aliases(tmp_path):
    old = pipeline._config_dict(_demo_config(tmp_path))
    mode = opt.DDSConfig(mode=_demo_config(tmp_path).mode).resolved()      # the demo mode's defaults
    assert pipeline.resume_differences(old, _demo_config(tmp_path, alpha=mode.alpha,
                                                         perceptual_weight=mode.perceptual_weight)) == []
    assert pipeline.resume_differences(old, _demo_config(tmp_path, direction="d2")) == []


def test_resume_with_another_objective_is_refused_in_one_line(tmp_path, demo_run):
    shutil.copy(demo_run / "run.json", tmp_path / "run.json")
    before = (tmp_path / "run.json").read_text()
    lp = opt.DDSConfig(mode=_demo_config(tmp_path).mode).resolved().perceptual_weight   # the run's λ_p
    with pytest.raises(ValueError) as e:
        pipeline.run_dds(_demo_config(tmp_path, resume=True, perceptual_weight=lp + 1.0))
    msg = str(e.value)
    assert "\n" not in msg and f"perceptual_weight: {lp} -> {lp + 1.0}" in msg and "output_dir" in msg
    assert (tmp_path / "run.json").read_text() == before


def test_every_dds_option_is_settable_from_a_config(tmp_path):
    """Point 2: the ConfigDict holds every DDSConfig field (one list), so init, perceptual_size and
    Adam's b1/b2/eps reach the optimiser."""
    import dataclasses
    from dds_jax.dds import config as config_lib
    c = _demo_config(tmp_path, init="mean", perceptual_size=64, b1=0.8, b2=0.99, eps=1e-6, direction="d2")
    d = config_lib.dds_config(c)
    assert (d.init, d.perceptual_size, d.b1, d.b2, d.eps, d.direction) == ("mean", 64, 0.8, 0.99, 1e-6, "s2t")
    assert set(f.name for f in dataclasses.fields(opt.DDSConfig)) <= set(config_lib.base_config().keys())
    assert set(config_lib.DDS_FIELDS) <= set(config_lib.RESUME_FIELDS)


def test_seed_is_the_same_image_in_every_command(tmp_path, program):
    """Items 2 and 7: with truncation < 1, main's x_s / x_t of a seed are what ``sample`` and
    ``segment sample`` draw for that seed (the same truncation centre), with demo:<name> models."""
    # the demo's objective, chunk and snapshots as the demo_run fixture's: its step is not compiled again
    out = pipeline.run_dds(_demo_config(tmp_path / "run", seeds="3", truncation_source=0.6,
                                        truncation_target=0.8, iterations=2, chunk=2, snapshot_every=2,
                                        checkpoint_every=0, batch_size=1))
    r = program("dds_jax.cli.sample", "--ckpt=demo:sketch", "--seeds=3", "--truncation=0.6",
                f"--out={tmp_path / 's'}")
    assert r.returncode == 0, r.stderr[-2000:]
    r = program("dds_jax.cli.segment", "sample", "--ckpt=demo:photo", "--seeds=3", "--truncation=0.8",
                f"--out={tmp_path / 'p'}")
    assert r.returncode == 0, r.stderr[-2000:]
    d = run_io.seed_dir(out, "s2t", 3)
    for mine, theirs in (("source", tmp_path / "s" / "seed_3.png"), ("target", tmp_path / "p" / "seed_3.png")):
        a = files.read_image(d / f"{mine}.png").astype(int)
        b = files.read_image(theirs)[..., :3].astype(int)
        assert np.abs(a - b).max() <= 1, mine                        # uint8 rounding only
    r = program("dds_jax.cli.segment", "predict", "--ckpt=demo:photo", "--seg=demo:segmenter", "--seeds=3",
                "--parts=hair", f"--out={tmp_path / 'm'}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "m" / "seed_3_mask.png").is_file()
    r = program("dds_jax.cli.sample", "--ckpt=demo:nope", "--seeds=3", f"--out={tmp_path / 'x'}")
    assert r.returncode == 2 and "demo:photo" in r.stderr


# DDS experiment configs (configs/benchmark.py configures python -m dds_jax.cli.benchmark instead)
@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "configs").glob("*.py")
                                        if "base_config" in p.read_text()))
def test_every_experiment_config_is_valid(name, tmp_path):
    from dds_jax.dds.config import validate
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
