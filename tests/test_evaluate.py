"""Table 1 / Fig. 7 / Fig. 8: ``python -m dds_jax.cli.evaluate`` and ``dds_jax.eval.sweep`` end to end.

FID uses a pytorch-fid Inception built from the ``inception_*`` fixture's seeded weights (real weights
cannot be downloaded here); the metric code paths are the same as with the real checkpoint.
"""
import json

import numpy as np
import pytest

from dds_jax import checkpoint, files
from dds_jax.eval import evaluate
from dds_jax.eval import metrics
from dds_jax.dds import run_io
from dds_jax.eval import sweep
from dds_jax.dds import optimize as opt
from dds_jax.models import inception as inc
from demo_utils import demo_config
from fixture_utils import fixture_dirs, load_state_dict


@pytest.fixture(scope="module")
def inception_ckpt(tmp_path_factory):
    dirs = fixture_dirs("inception_")
    if not dirs:
        pytest.skip("no inception_* fixture to build an Inception from")
    config, params = inc.convert_state_dict(load_state_dict(dirs[0] / "manifest.json"), source=dirs[0].name)
    out = tmp_path_factory.mktemp("inception") / "inception"
    checkpoint.save_model(out, "inception", config, params)
    return out


@pytest.fixture
def small_fid(monkeypatch):
    """FIDs over the first 64 of the 2048 pool3 features: these tests check what evaluate does with FIDs,
    not the 2048x2048 matrix square root (test_metrics checks that against pytorch-fid), which takes
    tens of seconds per FID on a 2-core CPU."""
    real = evaluate.FeatureExtractor.__call__
    monkeypatch.setattr(evaluate.FeatureExtractor, "__call__", lambda self, images: real(self, images)[:, :64])


def _fake_run(tmp_path, n=3, size=16):
    """A run directory whose DDS result equals the target image (so the D_t row is exact)."""
    rng = np.random.default_rng(0)
    for s in range(n):
        ims = {k: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for k in ("source", "target", "crossover")}
        ims.update(mask_source=np.zeros((size, size), np.uint8), mask_target=np.zeros((size, size), np.uint8),
                   dds=ims["target"])
        run_io.write_seed_result(tmp_path, "s2t", s, ims, result={})
    files.write_json(tmp_path / "run.json", {"directions": ["s2t"], "failed_seeds": {}})
    return tmp_path


def test_cli_without_inception_writes_ssim_psnr_table(demo_run, tmp_path, program):
    r = program("dds_jax.cli.evaluate", f"--run={demo_run}", "--label=M1", f"--out={tmp_path}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| M1 | D_t |" in r.stdout
    rows = json.loads((tmp_path / "table1.json").read_text())["rows"]
    assert len(rows) == 3 and all("fid" not in row for row in rows)
    r = program("dds_jax.cli.evaluate", f"--run={tmp_path / 'missing'}")
    assert r.returncode == 2 and "run.json" in r.stderr


def test_errors_for_empty_or_mismatched_sets(tmp_path):
    a = np.zeros((2, 8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="empty"):
        evaluate.set_metrics(a[:0], a[:0])
    with pytest.raises(ValueError, match="shape"):
        evaluate.set_metrics(a, np.zeros((3, 8, 8, 3), np.float32))
    run = tmp_path / "run"
    run.mkdir()
    files.write_json(run / "run.json", {"directions": ["s2t"], "failed_seeds": {}})
    with pytest.raises(ValueError, match="no finished seeds"):
        evaluate.evaluate_run(run)
    with pytest.raises(ValueError, match="--label"):
        evaluate.run_evaluation([str(run)], ["a", "b"])


def test_sweep_writes_fig8(tmp_path):
    c = demo_config(tmp_path, seeds="0-1", iterations=2, checkpoint_every=0)
    results, out = sweep.run_sweep(c, ["beta"], ["0", "1"], tmp_path / "sweep")
    assert [r["value"] for r in results["beta"]] == [0.0, 1.0]
    assert all(np.isfinite(r["psnr"]) for r in results["beta"])
    assert (out / "sweep.png").stat().st_size > 0
    assert (out / sweep.run_name("beta", 0.0) / "run.json").is_file()
    runs = [json.loads((out / sweep.run_name("beta", v) / "run.json").read_text())["config"] for v in (0.0, 1.0)]
    alpha = opt.DDSConfig(mode=c.mode).resolved().alpha       # the unswept weight keeps the mode's default
    assert [r["beta"] for r in runs] == [0.0, 1.0] and runs[0]["alpha"] == runs[1]["alpha"] == alpha
    with pytest.raises(ValueError, match="params"):
        sweep.sweep(c, ["delta"], [1.0], tmp_path / "bad")


# The two Inception tests last: turning optimisation on drops the module's unoptimised programs (conftest.py).
@pytest.mark.optimized     # InceptionV3 at 299x299: faster with the full XLA pipeline
def test_table1_on_the_demo_run(demo_run, inception_ckpt, small_fid, tmp_path):
    rows, out = evaluate.run_evaluation([str(demo_run)], ["demo"], str(inception_ckpt), str(tmp_path),
                                      batch_size=4)
    assert [(r["direction"], r["set"]) for r in rows] == [("s2t", "D_s"), ("s2t", "{x_c}"), ("s2t", "D_t")]
    seeds = run_io.finished_seeds(demo_run, "s2t")
    dds = run_io.read_images(demo_run, "s2t", "dds", seeds)
    for r, name in zip(rows, ("source", "crossover", "target")):
        ref = run_io.read_images(demo_run, "s2t", name, seeds)
        assert r["n_seeds"] == len(seeds) == 3
        assert r["ssim"] == pytest.approx(float(np.mean(metrics.ssim(dds, ref, size_average=False))), rel=1e-6)
        assert r["psnr"] == pytest.approx(float(np.mean(metrics.psnr(dds, ref, data_range=1.0))), rel=1e-6)
        assert np.isfinite(r["fid"]) and r["fid"] >= 0
    md = (out / "table1.md").read_text()
    for token in ("D_s", "{x_c}", "D_t", "FID↓", "SSIM↑", "PSNR↑"):
        assert token in md
    assert (out / "table1.csv").read_text().splitlines()[0] == "mask,direction,set,n_seeds,fid,ssim,psnr"
    assert json.loads((out / "table1.json").read_text())["rows"] == rows
    curve = json.loads((out / "fid_per_iteration.json").read_text())["demo s2t"]
    assert curve["iterations"] == [0, 2, 4] and len(curve["source"]) == len(curve["target"]) == 3
    assert (out / "fid_per_iteration.png").stat().st_size > 0


@pytest.mark.optimized     # InceptionV3 at 299x299: faster with the full XLA pipeline
def test_identical_sets_give_perfect_scores(tmp_path, inception_ckpt, small_fid):
    run = _fake_run(tmp_path / "run")
    features = evaluate.FeatureExtractor(inception_ckpt, batch_size=4)
    rows = {r["set"]: r for r in evaluate.evaluate_run(run, features)}
    assert rows["D_t"]["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert rows["D_t"]["psnr"] > 100                     # MSE 0: PSNR as large as float32 allows
    assert rows["D_t"]["fid"] == pytest.approx(0.0, abs=1e-3)
    assert rows["D_s"]["ssim"] < 0.5 and rows["D_s"]["fid"] > 0
