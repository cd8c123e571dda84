"""The ground-truth benchmark (dds_jax.eval.benchmark) and the one-generator DDS modes it chose.

* the objective: with paired latents Eqs. 1-6 are exactly zero at ẑ = z* (their global optimum returns
  x_t); the ``target`` mode starts there, is not at an optimum, and renders with the target generator;
* the benchmark CLI end to end on a tiny setting (files, JSON schema, errors);
* quality: the default DDS method is closer to the truth inside the part than x_t on rendered faces,
  and stays close to x_t's error outside it (shipped demo models).
Tiny random 16x16 generators for the objective tests; no fixtures needed.
"""
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dds_jax import files
from dds_jax.dds import invert
from dds_jax.eval import benchmark
from dds_jax.dds import optimize as opt
from dds_jax.models import stylegan2 as sg

CONFIG = sg.GeneratorConfig(size=16, style_dim=16, n_mlp=2, channels=((4, 16), (8, 16), (16, 8)))


@functools.lru_cache(maxsize=None)
def _models():
    gen_s = sg.from_variables(CONFIG, sg.init_variables(CONFIG, jax.random.PRNGKey(1)))
    gen_t = sg.from_variables(CONFIG, sg.init_variables(CONFIG, jax.random.PRNGKey(2)))
    return opt.DDSModels.create(gen_s, gen_t, "generator")


def _zs(n=2):
    return jax.random.normal(jax.random.PRNGKey(3), (n, CONFIG.style_dim))


def _inputs(cfg, n=2):
    y = np.zeros((n, 16, 16, 1), np.float32)
    y[:, 3:9, 4:12] = 1
    zs = _zs(n)
    return opt.prepare_inputs(_models(), zs, cfg, jax.random.PRNGKey(4), masks=(jnp.asarray(y), jnp.asarray(y)))


@functools.lru_cache(maxsize=None)
def _loss_and_grad(cfg):
    """One problem's (loss, (terms, x̂)) and d loss / d latent, as one compiled program per config."""
    models = _models()

    def f(params, latent, inp):
        tgt = opt.make_targets(models, cfg, params, inp)
        return jax.value_and_grad(opt.problem_loss, has_aux=True)(latent, models, cfg, params, (), inp, tgt)
    return jax.jit(f)


def _loss(cfg, inputs, latent):
    one = lambda a, i: jax.tree_util.tree_map(lambda x: x[i], a)       # noqa: E731
    out = []
    for i in range(inputs.x_s.shape[0]):
        (loss, (terms, img)), grad = _loss_and_grad(cfg)(_models().params, latent[i], one(inputs, i))
        out.append((float(loss), {k: float(v) for k, v in terms.items()}, np.asarray(img), np.asarray(grad)))
    return out


def test_paper_objective_is_exactly_zero_at_the_paired_latent():
    """Why paper mode returns x_t: ẑ = z* reproduces x_s and x_t, and s_c = x_c by construction."""
    cfg = opt.DDSConfig(mode="paper", latent_space="z", perceptual_size=None).resolved()
    inputs = _inputs(cfg)
    out = _loss(cfg, inputs, _zs())
    # zero up to float32 rounding (the inputs were rendered by another jitted function)
    for loss, terms, img, grad in out:
        assert loss < 1e-10 and terms["L_c"] < 1e-10 and np.abs(grad).max() < 1e-4, (loss, np.abs(grad).max())
    np.testing.assert_allclose(out[0][2], np.asarray(inputs.x_t[0]), atol=1e-5)     # x̂ = x_t
    assert all(loss > 1e-3 for loss, *_ in _loss(cfg, inputs, -_zs()))               # elsewhere it is not


@pytest.mark.parametrize("direction", ["s2t", "t2s"])
def test_outer_mode_starts_at_the_target_image_and_moves_its_part(direction):
    """init='input' = the target-role input's latent; x̂ = that role's generator (fixed noise); the
    part term pulls x̂ towards the source inside the part (non-zero loss and gradient there)."""
    cfg = opt.DDSConfig(mode="outer", direction=direction, perceptual_size=None, iterations=6).resolved()
    assert (cfg.latent_space, cfg.init) == ("w+", "input")
    inputs = _inputs(cfg)
    t2s = direction == "t2s"
    target_img, target_w = (inputs.x_s, inputs.w_s) if t2s else (inputs.x_t, inputs.w_t)
    state = opt.init_state(_models(), inputs, cfg, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(state.latent, target_w)
    assert state.noises == ()
    x0 = opt.final_images(_models(), state, inputs, cfg)["result"]
    np.testing.assert_allclose(x0, target_img, atol=1e-5)
    for loss, terms, img, grad in _loss(cfg, inputs, target_w):
        assert terms["L_t"] < 1e-10 < terms["L_s"] and terms["L_c"] > 0       # outside kept, part not
        assert np.abs(grad).max() > 0
    res = opt.run_dds(_models(), inputs, cfg, jax.random.PRNGKey(0), chunk=3)
    assert np.all(res.losses["loss"][-1] < res.losses["loss"][0])
    # the part moved towards the source, the outside stayed close to the target
    m = np.asarray(inputs.y_s)
    src = np.asarray(inputs.x_t if t2s else inputs.x_s)
    before = np.sum(m * (np.asarray(target_img) - src) ** 2)
    after = np.sum(m * (res.images["result"] - src) ** 2)
    assert after < before


def test_inner_mode_renders_the_source_generator_with_fixed_noise():
    cfg = opt.DDSConfig(mode="inner", perceptual_size=None, iterations=2).resolved()
    inputs = _inputs(cfg)
    state = opt.init_state(_models(), inputs, cfg, jax.random.PRNGKey(0), latent0=inputs.w_s)
    np.testing.assert_allclose(opt.final_images(_models(), state, inputs, cfg)["result"], inputs.x_s, atol=1e-5)


def test_input_init_needs_latents_and_a_w_space():
    cfg = opt.DDSConfig(mode="outer", latent_space="z").resolved()
    with pytest.raises(ValueError, match="latent_space 'w' or 'w\\+'"):
        opt.initial_latents(_models(), cfg, jax.random.PRNGKey(0), 2, _inputs(cfg))
    with pytest.raises(ValueError, match="W\\+ latents"):
        opt.initial_latents(_models(), opt.DDSConfig(mode="outer"), jax.random.PRNGKey(0), 2)


def test_scores_of_the_truth_and_of_a_swapped_part():
    truth = np.random.default_rng(0).random((2, 16, 16, 3)).astype(np.float32)
    mask = np.zeros((2, 16, 16), bool)
    mask[:, 4:10, 4:10] = True
    s = benchmark.summarize(benchmark.score_images(truth, truth, mask))
    assert s["mse"] == s["mse_in_part"] == s["mse_out_part"] == 0.0 and s["ssim_in_part"] == 1.0
    wrong = np.where(mask[..., None], 1.0 - truth, truth)
    s = benchmark.score_images(wrong, truth, mask)
    expect = np.mean(((1.0 - 2 * truth) ** 2)[:, 4:10, 4:10], axis=(1, 2, 3))
    np.testing.assert_allclose(s["mse_in_part"], expect, rtol=1e-5)
    assert np.all(s["mse_out_part"] == 0.0)
    np.testing.assert_allclose(s["mse"], expect * 36 / 256, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------
# The CLI and the quality of the default method (shipped demo models)
# ---------------------------------------------------------------------------------------------------
def test_benchmark_cli_end_to_end(tmp_path, program, monkeypatch):
    """The program in this process (its rerun below then reuses the compiled programs)."""
    out = tmp_path / "bench"
    args = [f"--out={out}", "--config.n=2", "--config.invert_steps=3", "--config.iterations=2", "--config.chunk=2",
            "--config.classifier_steps=3", f"--config.methods=x_t,x_c,{benchmark.DEFAULT_METHOD}",
            "--config.sheet_rows=2"]
    r = program("dds_jax.cli.benchmark", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((out / "benchmark.json").read_text())
    assert report["default"] == benchmark.DEFAULT_METHOD
    assert sorted(report["methods"]) == sorted([benchmark.DEFAULT_METHOD, "x_c", "x_t"])
    # every track in the same shape; the top level is the first (paired, segmenter masks)
    assert sorted(report["tracks"]) == ["paired", "paired_oracle", "unpaired", "unpaired_oracle"]
    assert report["methods"] == report["tracks"]["paired"]["methods"]
    for track, t in report["tracks"].items():
        assert t["default"] == benchmark.DEFAULT_METHOD
        for name, m in t["methods"].items():
            assert set(benchmark.METRICS) <= set(m), (track, name)
            assert all(np.isfinite(m[k]) for k in benchmark.METRICS), (track, name, m)
            assert 0 <= m["p_source_in_part"] <= 1 and 0 <= m["p_target_out_part"] <= 1, (track, name)
        assert t["truth"]["mse"] == 0.0 and t["truth"]["ssim"] == 1.0 and t["truth"]["seam"] == 0.0
        if track.endswith("_oracle"):
            assert t["segmenter_iou"] == {"source": 1.0, "target": 1.0}     # the renderer's own masks
    for track in ("paired_oracle", "unpaired", "unpaired_oracle"):
        assert (out / f"contact_sheet_{track}.png").is_file()
    # the unpaired track's DDS methods got the aligned sources, inverted once for both mask variants
    assert (out / "inversions_aligned.npz").is_file() and report["timings"]["alignment_s"] >= 0
    assert "| x_c |" in (out / "benchmark.md").read_text() and "## unpaired_oracle" in (out / "benchmark.md").read_text()
    sheet = files.read_image(out / "contact_sheet.png")
    assert sheet.shape[0] >= 2 * 32 and sheet.shape[1] >= (3 + 3) * 32
    # a rerun in the same folder (in this process; only x_t, which runs no DDS) inverts nothing: it reads
    # inversions.npz
    cached = (out / "inversions.npz").read_bytes()
    calls = []
    real_invert = invert.invert
    monkeypatch.setattr(invert, "invert", lambda *a, **k: calls.append(a) or real_invert(*a, **k))
    again = program("dds_jax.cli.benchmark", *args, "--config.methods=x_t", "--config.default_method=x_t")
    assert again.returncode == 0, again.stderr[-3000:]
    assert calls == [] and (out / "inversions.npz").read_bytes() == cached
    assert json.loads((out / "benchmark.json").read_text())["inversion"] == report["inversion"]
    # a bad method name is one line, exit 2
    bad = program("dds_jax.cli.benchmark", f"--out={tmp_path / 'bad'}", "--config.methods=x_t,nope")
    assert bad.returncode == 2 and "config.methods" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad").exists()


@pytest.mark.optimized     # 200 DDS iterations: faster with the full XLA pipeline (conftest.py)
def test_default_method_beats_x_t_inside_the_part():
    """On 3 rendered faces: the default DDS method's in-part MSE to the truth is below x_t's (by at
    least 10 %), and its out-of-part MSE stays within 3x of x_t's, the target inversion's own error;
    its seam along the true boundary is below x_c's pasted edge."""
    c = benchmark.default_config()
    c.n, c.invert_steps = 3, 150
    gen_s, gen_t, models, seg_fn, _ = benchmark.load(c)
    truth = benchmark.render_truth(c.seed, c.n, models.config_t.size, c.part, c.source_style, c.target_style)
    inv = invert.invert_pair(gen_s, gen_t, truth.source, truth.target, c.invert_steps, c.invert_lr)
    inputs = invert.inputs_from_inversions(inv, opt.DDSConfig(), seg_fn)
    t01 = truth.truth.astype(np.float32) / 255.0
    score = lambda x: benchmark.summarize(benchmark.score_images((np.asarray(x) + 1) / 2, t01, truth.mask))  # noqa
    base = score(benchmark.run_method("x_t", models, inputs, c))
    cut = score(benchmark.run_method("x_c", models, inputs, c))
    ours = score(benchmark.run_method(c.default_method, models, inputs, c))
    assert ours["mse_in_part"] < 0.9 * base["mse_in_part"], (ours, base)
    assert ours["mse_out_part"] < 3.0 * base["mse_out_part"], (ours, base)
    assert ours["seam"] < cut["seam"], (ours, cut)


def test_seam_measure_sees_a_pasted_edge_and_not_the_truth():
    """The seam score is 0 for the truth; a part pasted one pixel off (a misplaced cut) scores higher
    than the same part in place, and only the band along the boundary counts."""
    rng = np.random.default_rng(0)
    truth = np.full((1, 16, 16, 3), 0.2, np.float32)
    mask = np.zeros((1, 16, 16), bool)
    mask[:, 4:10, 4:10] = True
    truth[mask] = rng.random((36, 3)).astype(np.float32)
    band = benchmark.boundary_band(mask)
    assert band[0, 3, 5] and band[0, 4, 5] and band[0, 9, 5] and band[0, 10, 5] and not band[0, 6, 6]
    assert benchmark.seam_error(truth, truth, mask)[0] == 0.0
    shifted = np.roll(truth, 1, axis=2)
    assert benchmark.seam_error(shifted, truth, mask)[0] > 0.05
    inside_only = truth.copy()
    inside_only[0, 6:8, 6:8] = 0.0                       # a change away from the boundary
    assert benchmark.seam_error(inside_only, truth, mask)[0] == 0.0


def test_unpaired_truth_is_face_a_with_face_bs_part():
    """Face B_i = face i+1; the truth draws face A_i with B_i's hair, so the source input's hair is
    elsewhere (another pose) and cut-and-paste of the TRUE renderings misses the truth."""
    n, size = 4, 32
    paired = benchmark.render_truth(7, n, size, "hair")
    unpaired = benchmark.render_unpaired_truth(7, n, size, "hair")
    np.testing.assert_array_equal(unpaired.source, paired.source[[1, 2, 3, 0]])      # B = the next face
    np.testing.assert_array_equal(unpaired.target, paired.target)                    # A
    np.testing.assert_array_equal(unpaired.source_mask, paired.mask[[1, 2, 3, 0]])
    assert not np.array_equal(unpaired.mask, paired.mask)          # A's hair is now B's hairstyle
    # outside the hair and away from it, the truth is A's own target rendering
    far = ~(unpaired.mask | paired.mask)
    assert np.mean(np.abs(unpaired.truth.astype(int) - paired.target.astype(int))[far]) < 8
    cut = np.where(unpaired.source_mask[..., None], unpaired.source, unpaired.target)
    err_cut = np.mean(((cut.astype(np.float32) - unpaired.truth) / 255.0) ** 2)
    assert err_cut > 0.01, err_cut
