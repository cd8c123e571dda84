"""The trained demo pair shipped in dds_jax/assets/demo (made by ``python -m dds_jax.demo_models``)."""
import json

import jax
import numpy as np
import pytest

from dds_jax import checkpoint, files, render
from dds_jax.demo import metrics as demo_metrics
from dds_jax.demo import models as demo_models
from dds_jax.segmentation import oneshot as segmentation
from dds_jax.models import stylegan2 as sg
from dds_jax.checkpoint import DEMO_DIR

pytestmark = pytest.mark.optimized     # runs faster compiled with the full XLA pipeline (conftest.py)


def test_shipped_pair_and_segmenter_fit_together():
    photo = sg.load_generator(DEMO_DIR / "photo")
    sketch = sg.load_generator(DEMO_DIR / "sketch")
    assert photo.config == sketch.config == demo_models.SHIPPED.g
    seg = segmentation.load_segmenter(DEMO_DIR / "segmenter")
    segmentation.check_compatible(photo.config, seg)
    assert seg.parts == list(render.PARTS[1:])
    # Few-shot adaptation changed the top resolution's layers, kept the frozen ones (the recipe's
    # freeze_res: mapping and synthesis convolutions up to it), the architecture and the zero noise inputs.
    p, q = photo.variables["params"], sketch.variables["params"]
    top = photo.config.log_size - 3                        # the level of the top resolution's layers
    same = lambda name: all(np.array_equal(a, b) for a, b in zip(                      # noqa: E731
        jax.tree_util.tree_leaves(p["synthesis"][name]), jax.tree_util.tree_leaves(q["synthesis"][name])))
    assert not any(same(name) for name in (f"convs_{2 * top}", f"convs_{2 * top + 1}", f"to_rgbs_{top}"))
    assert same(f"convs_{2 * top - 2}") and same(f"convs_{2 * top - 1}") and same("conv1")
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(p["mapping"]),
                                                    jax.tree_util.tree_leaves(q["mapping"])))
    np.testing.assert_array_equal(p["synthesis"]["const"], q["synthesis"]["const"])
    for gen in (photo, sketch):
        assert all(not np.any(b) for b in jax.tree_util.tree_leaves(gen.variables["buffers"]))


def test_evaluation_writes_the_iou_of_every_part(tmp_path):
    """``demo.models.evaluate``, which writes report.json's ``segmenter_iou``, on the shipped models with
    8 held-out faces (one retrieval group) and short inversions: an IoU per part (in [0, 1], NaN for a part absent from both
    the truth and the prediction), their mean, the inversion error, and the example grid."""
    photo, sketch = (sg.load_generator(DEMO_DIR / n) for n in ("photo", "sketch"))
    seg = segmentation.load_segmenter(DEMO_DIR / "segmenter")
    report, truth = demo_models.evaluate(tmp_path, photo, sketch, seg, n_eval=8, invert_steps=10)
    for domain in ("photo", "sketch"):
        r = report[domain]
        assert list(r["iou"]) == list(render.PARTS) and r["n_images"] == 8 and r["inversion_mse"] > 0
        iou = np.array(list(r["iou"].values()))
        assert np.all(np.isnan(iou) | ((iou >= 0) & (iou <= 1)))
        assert r["mean_iou"] == pytest.approx(np.nanmean(iou), abs=1e-4)
        assert r["iou"]["background"] > 0.5                  # the largest part: found even by a rough inversion
        assert 0 <= r["merged_iou"]["eyes_nose_mouth"] <= 1   # the paper's M1 mask (issue 34)
    assert 0 <= truth["hits"] <= 8
    grid = files.read_image(tmp_path / "segmenter_eval.png")   # per domain, rows: faces, inversions, truth,
    assert grid.shape[0] >= 8 * 32 and grid.shape[1] >= 8 * 32      # predicted masks; 8 columns


def test_noise_free_copy(tmp_path):
    cfg = sg.GeneratorConfig(size=8, style_dim=4, n_mlp=1, channels=((4, 4), (8, 4)))
    # random values of the generator's shapes (no init program to compile: this module is optimised)
    shapes = jax.eval_shape(lambda: sg.init_variables(cfg, jax.random.PRNGKey(0)))
    rng = np.random.default_rng(0)
    variables = jax.tree_util.tree_map(lambda s: rng.standard_normal(s.shape).astype(s.dtype), shapes)
    checkpoint.save_model(tmp_path / "g", "stylegan2", cfg.to_dict(), variables)
    out = demo_models.noise_free_copy(tmp_path / "g", tmp_path / "g0")
    copy = sg.load_generator(out)
    assert all(not np.any(b) for b in jax.tree_util.tree_leaves(copy.variables["buffers"]))
    np.testing.assert_array_equal(copy.variables["params"]["synthesis"]["const"],
                                  variables["params"]["synthesis"]["const"])


@pytest.mark.parametrize("module", ["dds_jax.demo_models", "dds_jax.cli.demo_models"])
def test_cli_help(module, program):
    """``python -m dds_jax.demo_models`` (the command issue 13 names) is the same program as the cli one."""
    res = program(module, "--help")
    assert all(f in res.stdout for f in ("--base_steps", "--adapt_steps", "--photo", "--sketch")), res.stderr


def test_shipped_pair_is_diverse_and_corresponds():
    """A collapsed sketch generator (issue 13: every seed the same head) fails both measures, over the 64
    reported seeds: rendered pairs of the same faces score 63/64 on the retrieval, chance is 8/64, the
    collapsed pair shipped first 20/64, the 800-iteration pair 45/64. report.json holds these numbers
    (recomputed here within CPU rounding, so it cannot go stale)."""
    photo = sg.load_generator(DEMO_DIR / "photo")
    sketch = sg.load_generator(DEMO_DIR / "sketch")
    report = json.loads((DEMO_DIR / "report.json").read_text())
    r = demo_metrics.pair_report(photo, sketch, seeds=range(64), reference_seed=demo_models.EVAL_SEED)
    # Tolerances: another CPU model may round a few uint8 pixels the other way.
    for key, value in report["pair"]["diversity"].items():
        assert abs(r["diversity"][key] - value) <= 2e-3, (key, r["diversity"][key], value)
    for key in ("pair", "rendered"):
        value = report["pair"]["retrieval"][key]
        assert abs(r["retrieval"][key]["hits"] - value["hits"]) <= 1, (key, r["retrieval"][key], value)
    div = r["diversity"]
    assert demo_metrics.unmet_goals(r) == []                           # issue 13's "Done when"
    assert div["photo"] >= 0.8 * div["rendered_photo"], div
    assert r["retrieval"]["rendered"]["hits"] >= 60, r["retrieval"]
    # The validation seeds the recipe was chosen on (report.json, "pair_validation"): 1280 seeds, >= 95 %
    # (the shipped pair: 1280/1280; the recipe without the edge/line term plateaued at 89-93 %).
    val = report["pair_validation"]
    assert val["n"] == len(demo_models.VALIDATION_SEEDS) and val["accuracy"] >= 0.95, val
    assert sum(val["hits_per_block"]) == val["hits"] and len(val["hits_per_block"]) * val["block"] == val["n"]
    # The first two 64-seed blocks, recomputed (within one hit each: CPU rounding, as above).
    seeds = demo_models.VALIDATION_SEEDS[:2 * val["block"]]
    photos, sketches = demo_metrics.sample(photo, seeds), demo_metrics.sample(sketch, seeds)
    for b, hits in enumerate(val["hits_per_block"][:2]):
        part = slice(b * val["block"], (b + 1) * val["block"])
        assert abs(demo_metrics.retrieval(photos[part], sketches[part])["hits"] - hits) <= 1, (b, hits)
    assert demo_metrics.retrieval(photos, sketches)["accuracy"] >= 0.95


def _collapsed(gen: sg.LoadedGenerator) -> sg.LoadedGenerator:
    """``gen`` with its last mapping layer's weights zeroed: one w, so one image, for every z."""
    params = jax.tree_util.tree_map(np.asarray, gen.variables["params"])
    last = sorted(params["mapping"], key=lambda k: int(k[2:]))[-1]
    params["mapping"][last] = dict(params["mapping"][last], weight=np.zeros_like(params["mapping"][last]["weight"]))
    return sg.from_variables(gen.config, dict(gen.variables, params=params))


def test_goals_fail_on_a_collapsed_or_unrelated_sketch_generator():
    """The shipped test's goals (demo_metrics.unmet_goals) on generators that miss them: the shipped sketch
    generator collapsed to one image, and a diverse one drawing other latents' faces."""
    photo = sg.load_generator(DEMO_DIR / "photo")
    sketch = sg.load_generator(DEMO_DIR / "sketch")
    collapsed = demo_metrics.pair_report(photo, _collapsed(sketch), seeds=range(16),
                                         reference_seed=demo_models.EVAL_SEED)
    assert collapsed["diversity"]["sketch"] < 1e-3 and collapsed["retrieval"]["pair"]["hits"] <= 4, collapsed
    assert [g.split()[0] for g in demo_metrics.unmet_goals(collapsed)] == ["sketch", "retrieval"]
    unrelated = demo_metrics.pair_report(photo, sketch, seeds=range(16), reference_seed=demo_models.EVAL_SEED)
    others = demo_metrics.sample(sketch, range(100, 116))       # diverse sketches of other seeds
    unrelated["retrieval"]["pair"] = demo_metrics.retrieval(demo_metrics.sample(photo, range(16)), others)
    assert [g.split()[0] for g in demo_metrics.unmet_goals(unrelated)] == ["retrieval"], unrelated


def test_shipped_pair_corresponds_to_the_renderers_truth():
    """The correspondence measured without the photo generator's edges (which the adaptation's edge/line
    loss optimises): rendered photos inverted into photo (W+), drawn by sketch, find their own rendered
    sketch among 8. Shipped 64x64 pair 58/64 (the 32x32 pair 60/64, before its edge/line term 57/64;
    chance 8/64); recomputed within 1
    hit on the first group of 8 (inversion on another CPU; each image is inverted on its own, so 8 faces
    give the report's first 8)."""
    from dds_jax.dds import invert
    photo = sg.load_generator(DEMO_DIR / "photo")
    sketch = sg.load_generator(DEMO_DIR / "sketch")
    want = json.loads((DEMO_DIR / "report.json").read_text())["pair"]["retrieval"]["truth"]
    assert want["n"] == 64 and sum(want["hits_per_group"]) == want["hits"] and want["accuracy"] >= 0.9
    k = want["group"]
    images, _ = render.render_faces(demo_models.EVAL_SEED, k, photo.config.size, "photo")
    wplus, *_ = invert.invert(photo, images, steps=demo_models.INVERT_STEPS,
                              lowpass_sigma=demo_models.EVAL_LOWPASS_SIGMA)
    got = demo_models.truth_retrieval_of_inversions(sketch, wplus)
    assert abs(got["hits_per_group"][0] - want["hits_per_group"][0]) <= 1, (got, want)
    assert got["accuracy"] >= 0.85, got


def test_retrieval_detects_a_collapsed_generator():
    """The measures themselves: true rendered pairs correspond, one sketch repeated for every photo
    has no diversity and finds its photo at most once per group."""
    photos, _ = render.render_faces(30, 16, 32, "photo")
    sketches, _ = render.render_faces(30, 16, 32, "sketch")
    assert demo_metrics.retrieval(photos, sketches)["hits"] >= 15
    same = np.repeat(sketches[:1], 16, axis=0)
    assert demo_metrics.diversity(same) < 1e-12
    assert demo_metrics.retrieval(photos, same)["hits"] <= 2


def test_truth_retrieval_against_the_renderer():
    """True rendered sketches find themselves; a shuffled or repeated drawing does not."""
    sketches, _ = render.render_faces(30, 16, 32, "sketch")
    truth = demo_metrics.truth_retrieval(sketches, sketches)
    assert truth["hits"] == 16 and truth["own_correlation"] == pytest.approx(1.0)
    assert demo_metrics.truth_retrieval(np.repeat(sketches[:1], 16, axis=0), sketches)["hits"] <= 2
    assert demo_metrics.truth_retrieval(sketches[::-1], sketches)["hits"] <= 4
    with pytest.raises(ValueError, match="at least 8"):
        demo_metrics.truth_retrieval(sketches[:4], sketches[:4])


def test_output_folder_defaults_to_work_not_the_shipped_models(tmp_path, program):
    """Issue 11 item 13: the default --out no longer overwrites dds_jax/assets/demo."""
    assert demo_models.output_folder(tmp_path) == tmp_path / "export"
    assert demo_models.output_folder(tmp_path, DEMO_DIR) == DEMO_DIR       # only when asked for
    res = program("dds_jax.cli.demo_models", "--help")
    assert "--out" in res.stdout and str(DEMO_DIR) not in res.stdout        # the old default
    res = program("dds_jax.cli.demo_models", f"--work={tmp_path}", f"--out={tmp_path}")
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0, res.stderr
    assert "--out" in res.stderr and "working folder" in res.stderr
    res = program("dds_jax.cli.demo_models", f"--work={tmp_path}", f"--photo={tmp_path / 'none'}")
    assert res.returncode == 2 and "--photo" in res.stderr and res.stderr.strip().count("\n") == 0, res.stderr
    res = program("dds_jax.cli.demo_models", f"--work={tmp_path}", f"--photo={DEMO_DIR / 'photo'}",
                  f"--sketch={tmp_path / 'none'}")
    assert res.returncode == 2 and "--sketch" in res.stderr and res.stderr.strip().count("\n") == 0, res.stderr
    assert not any(tmp_path.iterdir())
