"""StyleGAN2 training and few-shot adaptation (dds_jax.gan, dds_jax.cli.train, dds_jax.cli.adapt).

* one jitted step of each loss (D logistic + lazy R1, G non-saturating + path length, + CDC and the
  patch/image-level D when adapting, + DiffAugment) changes the parameters and keeps them finite;
* R1 and the path-length penalty against central finite differences on tiny networks in float64
  (gradients agree to 1e-6 relative), including their parameter gradients (double back-propagation);
* the CDC loss against a hand-computed example;
* adaptation end to end from a folder of odd-sized images, its errors, and resume == uninterrupted.
"""
import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import enable_x64
from PIL import Image

from dds_jax import checkpoint
from dds_jax.gan import data, losses, trainer
from dds_jax.models import discriminator as disc
from dds_jax.models import stylegan2 as sg

G16 = sg.GeneratorConfig(size=16, style_dim=16, n_mlp=2, channels=((4, 16), (8, 16), (16, 16)))
D16 = trainer.default_d_config(G16)
# Every regulariser runs on iteration 0 and on every other iteration: two steps cover all branches.
SCRATCH = trainer.TrainConfig(batch=4, d_reg_every=2, g_reg_every=2, augment="color,translation,cutout")
# Every adaptation test uses this one recipe (frozen mapping and layers up to 8x8, 8x8 patch logits):
# the training step is compiled once and the other runs read it from the compilation cache.
ADAPT = trainer.TrainConfig.few_shot(batch=2, d_reg_every=2, g_reg_every=2, subspace_freq=2,
                                     feat_const_batch=3, n_anchors=3, structure_weight=1.0, structure_res=16,
                                     edge_weight=1.0, freeze_mapping=True, freeze_res=8)
PATCH_RES = 8
FROZEN = ["const", "conv1", "convs_0", "convs_1"]           # synthesis layers up to 8x8 (G16: convs_2/3 are 16x16)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(jax.device_get(tree))]


def _fresh(tree):
    return jax.tree_util.tree_map(lambda x: jnp.asarray(np.array(x)), tree)


def _buffers(config=G16, seed=1):
    return jax.device_get(sg.init_variables(config, jax.random.PRNGKey(seed))["buffers"])


def _reals(n, size=16, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# One step of every loss
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [SCRATCH, ADAPT], ids=["scratch", "adapt"])
def test_training_steps_change_params_and_stay_finite(cfg):
    models = trainer.Models(G16, dataclasses.replace(D16, patch_res=PATCH_RES) if cfg.adapt else D16)
    state = trainer.init_state(models, cfg, jax.random.PRNGKey(0))
    if cfg.adapt:
        assert "patch_head" in state.d
    before = {name: _leaves(getattr(state, name)) for name in ("g", "d", "g_ema")}
    buffers = _buffers()
    source = _fresh({"params": state.g, "buffers": buffers}) if cfg.adapt else None
    step = trainer.make_train_step(models, cfg)
    seen = []
    for i in range(2):      # iteration 0: R1 + path length (+ anchors, image level); 1: neither (+ patches)
        state, metrics = step(state, jnp.asarray(_reals(cfg.batch, seed=i)), buffers, source)
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        assert all(math.isfinite(v) for v in metrics.values()), metrics
        seen.append(metrics)
    assert int(state.step) == 2
    assert seen[0]["r1"] > 0 and seen[0]["path"] > 0 and seen[0]["path_length"] > 0
    assert seen[1]["r1"] == 0 and seen[1]["path"] == 0
    if cfg.adapt:
        assert seen[0]["anchor"] == 1.0 and seen[1]["anchor"] == 0.0
        assert seen[1]["cdc"] > 0        # target moved away from the source after one G update
        assert seen[1]["structure"] > 0  # (ADAPT turns the spatial structure term on)
        assert seen[1]["edge"] > 0       # and the edge/line term
    for name, old in before.items():
        new = _leaves(getattr(state, name))
        assert all(np.all(np.isfinite(x)) for x in new), name
        changed = sum(not np.array_equal(a, b) for a, b in zip(old, new))
        trainable = len(old) - (_n_frozen(getattr(state, name)) if cfg.adapt and name != "d" else 0)
        assert changed > trainable // 2, f"{name}: only {changed}/{trainable} trainable arrays changed"


def _n_frozen(g_params):
    """Arrays of ADAPT's frozen generator layers (the mapping network and FROZEN)."""
    return len(jax.tree_util.tree_leaves(g_params["mapping"])) + sum(
        len(jax.tree_util.tree_leaves(g_params["synthesis"][n])) for n in FROZEN)


def test_lazy_adam_correction():
    """lr x c and betas (0 ** c, 0.99 ** c), c = k / (k + 1): with b1 = 0 the first update is
    -lr c g / (|g| + eps) after bias correction, i.e. -lr c sign(g)."""
    tx = trainer.lazy_adam(0.002, 16)
    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    grads = {"w": jnp.array([0.5, -4.0, 1e-3])}
    updates, _ = tx.update(grads, tx.init(params), params)
    c = 16 / 17
    np.testing.assert_allclose(updates["w"], -0.002 * c * np.sign(grads["w"]), rtol=1e-4)


def test_style_mixing_uses_two_latents_at_one_index():
    G = sg.Generator(G16)
    variables = sg.init_variables(G16, jax.random.PRNGKey(0))
    mixed = np.asarray(trainer.mixed_wplus(G, variables, jax.random.PRNGKey(3), 5, mixing=1.0))
    plain = np.asarray(trainer.mixed_wplus(G, variables, jax.random.PRNGKey(3), 5, mixing=0.0))
    assert mixed.shape == (5, G16.n_latent, G16.style_dim)
    assert np.all(plain == plain[:, :1])                       # one w everywhere
    switch = [j for j in range(1, G16.n_latent) if not np.array_equal(mixed[:, j], mixed[:, j - 1])]
    assert len(switch) == 1 and 1 <= switch[0] < G16.n_latent  # exactly one crossover point
    np.testing.assert_array_equal(mixed[:, 0], plain[:, 0])


# ------------------------------------------------------------------------------------------------
# R1 and path length against finite differences (float64)
# ------------------------------------------------------------------------------------------------
def _to64(tree):
    return jax.tree_util.tree_map(lambda x: jnp.asarray(np.asarray(x, np.float64)), tree)


def _central_difference(f, x, eps=1e-5):
    x = np.asarray(x, np.float64)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = eps
        grad[idx] = (float(f(jnp.asarray(x + e))) - float(f(jnp.asarray(x - e)))) / (2 * eps)
    return grad


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(np.asarray(b))), 1e-30))


def test_r1_penalty_against_finite_differences():
    cfg = disc.DiscriminatorConfig(size=8, channels=((4, 4), (8, 4)), stddev_group=2)
    D = disc.Discriminator(cfg)
    with enable_x64(True):
        params = _to64(disc.init_params(cfg, jax.random.PRNGKey(0)))
        real = jnp.asarray(_reals(2, size=8).astype(np.float64))
        apply = lambda p, x: D.apply({"params": p}, x)
        total = jax.jit(lambda x: jnp.sum(apply(params, x)))
        numeric = _central_difference(total, real)
        expected = np.mean(np.sum(numeric.reshape(2, -1) ** 2, axis=1))
        got = float(jax.jit(lambda x: losses.r1_penalty(apply, params, x))(real))
        assert abs(got - expected) / expected < 1e-6, (got, expected)
        # Its gradient w.r.t. one weight tensor (what the lazy R1 update uses): double backprop vs FD.
        name = ("final_linear_1", "weight")
        pen = jax.jit(lambda w: losses.r1_penalty(
            apply, {**params, name[0]: {**params[name[0]], name[1]: w}}, real))
        w0 = params[name[0]][name[1]]
        auto = jax.jit(jax.grad(pen))(w0)
        assert _rel(auto, _central_difference(pen, w0)) < 1e-6


def test_path_length_against_finite_differences():
    g_cfg = sg.GeneratorConfig(size=8, style_dim=4, n_mlp=1, channels=((4, 4), (8, 4)))
    G = sg.Generator(g_cfg)
    with enable_x64(True):
        variables = _to64(jax.device_get(sg.init_variables(g_cfg, jax.random.PRNGKey(0))))
        wplus = jnp.asarray(np.random.default_rng(0).standard_normal((2, g_cfg.n_latent, 4)))
        key = jax.random.PRNGKey(5)

        def synth(p, w):
            return G.apply({"params": p, "buffers": variables["buffers"]}, w, input_is_latent=True)[0]
        # the autodiff side as compiled programs (run op by op, each op compiles on its own)
        lengths, images = jax.jit(lambda w: losses.path_lengths(lambda v: synth(variables["params"], v), w, key))(wplus)
        y = jax.random.normal(key, images.shape, images.dtype) / math.sqrt(8 * 8)
        grad = _central_difference(jax.jit(lambda w: jnp.sum(synth(variables["params"], w) * y)), wplus)
        expected = np.sqrt(np.mean(np.sum(grad ** 2, axis=2), axis=1))
        assert _rel(lengths, expected) < 1e-6
        # Penalty = mean (|J^T y| - a)^2 with a = a0 + 0.01 (mean - a0); and its parameter gradient.
        pen, new_mean, mean_len = jax.jit(lambda w: losses.path_length_penalty(
            lambda v: synth(variables["params"], v), w, key, 0.5))(wplus)
        a = 0.5 + 0.01 * (expected.mean() - 0.5)
        assert abs(float(pen) - np.mean((expected - a) ** 2)) < 1e-9
        assert abs(float(new_mean) - a) < 1e-9 and abs(float(mean_len) - expected.mean()) < 1e-9
        p = variables["params"]
        rgb = p["synthesis"]["to_rgbs_0"]

        def pen_of(w):
            q = {**p, "synthesis": {**p["synthesis"], "to_rgbs_0": {**rgb, "conv": {**rgb["conv"], "weight": w}}}}
            return losses.path_length_penalty(lambda v: synth(q, v), wplus, key, 0.5)[0]
        w0 = rgb["conv"]["weight"]
        assert _rel(jax.jit(jax.grad(pen_of))(w0), _central_difference(jax.jit(pen_of), w0)) < 1e-6


# ------------------------------------------------------------------------------------------------
# CDC loss: a hand-computed example
# ------------------------------------------------------------------------------------------------
def test_cdc_loss_hand_example():
    # Source features of 3 samples: e1, e2, e1+e2 -> cos(0,1) = 0, cos(0,2) = cos(1,2) = 1/sqrt2.
    src = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32).reshape(3, 1, 1, 2)
    # Target: e1, e1, e2 -> cos(0,1) = 1, cos(0,2) = cos(1,2) = 0.
    tgt = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32).reshape(3, 1, 1, 2)
    r = 1 / math.sqrt(2)

    def softmax2(a, b):
        return [math.exp(a) / (math.exp(a) + math.exp(b)), math.exp(b) / (math.exp(a) + math.exp(b))]
    p_s = [softmax2(0, r), softmax2(0, r), softmax2(r, r)]     # rows: anchor i vs j != i in order
    p_t = [softmax2(1, 0), softmax2(1, 0), softmax2(0, 0)]
    kl = sum(ps * (math.log(ps) - math.log(pt)) for rs, rt in zip(p_s, p_t) for ps, pt in zip(rs, rt)) / 6
    got = float(losses.cdc_loss([src], [tgt], jnp.zeros(3, jnp.int32), weight=1000.0))
    assert abs(got - 1000.0 * kl) < 1e-4 * 1000.0 * kl, (got, 1000 * kl)
    # Rows come from the layer each anchor picks: a second layer equal in both domains adds nothing.
    same = np.random.default_rng(0).standard_normal((3, 2, 2, 4)).astype(np.float32)
    picks = jnp.array([0, 1, 1])
    two = float(losses.cdc_loss([src, same], [tgt, same], picks, weight=1.0))
    row0 = sum(ps * (math.log(ps) - math.log(pt)) for ps, pt in zip(p_s[0], p_t[0])) / 6
    assert abs(two - row0) < 1e-5
    assert float(losses.cdc_loss([src], [src], jnp.zeros(3, jnp.int32))) == pytest.approx(0.0, abs=1e-6)


def test_cdc_loss_temperature():
    # The hand example at temperature T: the cosines are divided by T before the softmax.
    src = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32).reshape(3, 1, 1, 2)
    tgt = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32).reshape(3, 1, 1, 2)
    r, t = 1 / math.sqrt(2), 0.1

    def softmax2(a, b):
        a, b = a / t, b / t
        return [math.exp(a) / (math.exp(a) + math.exp(b)), math.exp(b) / (math.exp(a) + math.exp(b))]
    p_s = [softmax2(0, r), softmax2(0, r), softmax2(r, r)]
    p_t = [softmax2(1, 0), softmax2(1, 0), softmax2(0, 0)]
    kl = sum(ps * (math.log(ps) - math.log(pt)) for rs, rt in zip(p_s, p_t) for ps, pt in zip(rs, rt)) / 6
    got = float(losses.cdc_loss([src], [tgt], jnp.zeros(3, jnp.int32), weight=1.0, temperature=t))
    assert got == pytest.approx(kl, rel=1e-4)
    # Features of a narrow cosine band (all near 1, like the generator's): a collapse of the target
    # (every sample the same) barely moves the released loss but is seen at a small temperature.
    rng = np.random.default_rng(0)
    base = np.abs(rng.standard_normal((1, 2, 2, 8))).astype(np.float32) + 1.0
    f_src = base + 0.3 * np.abs(rng.standard_normal((4, 2, 2, 8))).astype(np.float32)
    f_tgt = base + 0.01 * np.abs(rng.standard_normal((4, 2, 2, 8))).astype(np.float32)
    idx = jnp.zeros(4, jnp.int32)
    released = float(losses.cdc_loss([f_src], [f_tgt], idx, weight=1.0))
    sharp = float(losses.cdc_loss([f_src], [f_tgt], idx, weight=1.0, temperature=0.05))
    assert sharp > 100 * released
    with pytest.raises(ValueError):
        trainer.TrainConfig.few_shot(cdc_temperature=0.0)


def test_structure_loss_hand_example():
    # One sample, 1x2 positions. Source: orthogonal features (cos 0); target: parallel ones (cos 1).
    src = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32).reshape(1, 1, 2, 2)
    tgt = np.array([[1.0, 0.0], [3.0, 0.0]], np.float32).reshape(1, 1, 2, 2)
    t = 0.5

    def softmax2(a, b):
        return [math.exp(a / t) / (math.exp(a / t) + math.exp(b / t)),
                math.exp(b / t) / (math.exp(a / t) + math.exp(b / t))]
    p_s = [softmax2(1, 0), softmax2(0, 1)]        # row p: cos(f_p, f_0), cos(f_p, f_1)
    p_t = [softmax2(1, 1), softmax2(1, 1)]
    kl = sum(a * (math.log(a) - math.log(b)) for rs, rt in zip(p_s, p_t) for a, b in zip(rs, rt)) / 2
    got = float(losses.structure_loss([src], [tgt], max_res=4, weight=3.0, temperature=t))
    assert got == pytest.approx(3.0 * kl, rel=1e-5)
    # Layers above max_res are skipped; equal features and per-position rescaling cost nothing.
    big = np.random.default_rng(0).standard_normal((1, 8, 8, 3)).astype(np.float32)
    assert float(losses.structure_loss([src, big], [tgt, -big], max_res=4, weight=3.0,
                                       temperature=t)) == pytest.approx(got, rel=1e-6)
    scale = np.random.default_rng(1).uniform(0.5, 2.0, (1, 8, 8, 1)).astype(np.float32)
    assert float(losses.structure_loss([big], [big * scale], 8, 1.0)) == pytest.approx(0.0, abs=1e-5)
    # Only the target gets a gradient (the source is the frozen reference).
    tilted = np.array([[1.0, 0.0], [1.0, 1.0]], np.float32).reshape(1, 1, 2, 2)
    g_src, g_tgt = jax.grad(lambda a, b: losses.structure_loss([a], [b], 4, 1.0, t), argnums=(0, 1))(
        jnp.asarray(src), jnp.asarray(tilted))
    assert np.all(np.asarray(g_src) == 0) and np.any(np.asarray(g_tgt) != 0)
    with pytest.raises(ValueError):
        trainer.TrainConfig.few_shot(structure_temperature=0.0)


def test_edge_line_loss_hand_example_and_rendered_pairs():
    """losses.edge_line_loss against a NumPy evaluation of its definition (demo.metrics' edge and line
    maps), and its point: rendered photo/sketch pairs of the same faces cost little, shuffled pairs a lot."""
    from dds_jax import render
    from dds_jax.demo import metrics
    photos, _ = render.render_faces(30, 4, 16, "photo")
    sketches, _ = render.render_faces(30, 4, 16, "sketch")
    x_s, x_t = photos / 127.5 - 1.0, sketches / 127.5 - 1.0
    t = 0.2
    c = metrics.correspondence_matrix(photos, sketches) / t            # float64 reference
    log_rows = c - np.log(np.exp(c).sum(axis=1, keepdims=True))
    log_cols = c - np.log(np.exp(c).sum(axis=0, keepdims=True))
    want = 2.0 * 0.5 * (-np.mean(np.diag(log_rows)) - np.mean(np.diag(log_cols)))
    got = float(losses.edge_line_loss(jnp.asarray(x_s, jnp.float32), jnp.asarray(x_t, jnp.float32), 2.0, t))
    assert got == pytest.approx(want, rel=1e-4)
    shuffled = float(losses.edge_line_loss(jnp.asarray(x_s, jnp.float32), jnp.asarray(x_t[::-1], jnp.float32),
                                           1.0, 0.1))
    matched = float(losses.edge_line_loss(jnp.asarray(x_s, jnp.float32), jnp.asarray(x_t, jnp.float32), 1.0, 0.1))
    assert matched < 0.5 < math.log(4) < shuffled, (matched, shuffled)
    # Only the adapted (target) images get a gradient.
    g_src, g_tgt = jax.grad(lambda a, b: losses.edge_line_loss(a, b, 1.0), argnums=(0, 1))(
        jnp.asarray(x_s, jnp.float32), jnp.asarray(x_t, jnp.float32))
    assert np.all(np.asarray(g_src) == 0) and np.any(np.asarray(g_tgt) != 0)
    with pytest.raises(ValueError, match="edge_temperature"):
        trainer.TrainConfig.few_shot(edge_temperature=0.0)


def test_resume_accepts_a_run_made_before_a_new_hyper_parameter(tmp_path):
    """A train.json without a field added later (e.g. structure_weight) resumes when the new field is at
    its default, the behaviour the run was made with; a changed value is still refused."""
    from dds_jax.gan import run as gan_run
    spec = gan_run.RunSpec("adapt", G16, D16, ADAPT, 10)
    gan_run.prepare_out(tmp_path, spec, resume=False, overwrite=False)
    meta = json.loads((tmp_path / "train.json").read_text())
    for name in ("structure_weight", "structure_res", "structure_temperature", "edge_weight",
                 "edge_temperature"):
        del meta["train"][name]
    (tmp_path / "train.json").write_text(json.dumps(meta))
    plain = gan_run.RunSpec("adapt", G16, D16, trainer.TrainConfig.few_shot(
        batch=2, d_reg_every=2, g_reg_every=2, subspace_freq=2, feat_const_batch=3, n_anchors=3,
        freeze_mapping=True, freeze_res=8), 10)
    assert gan_run.prepare_out(tmp_path, plain, resume=True, overwrite=False) is False    # no state yet
    with pytest.raises(ValueError, match="different .*train"):
        gan_run.prepare_out(tmp_path, spec, resume=True, overwrite=False)     # structure_weight=1 != 0


# ------------------------------------------------------------------------------------------------
# Adaptation end to end, errors, resume
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def source_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("source") / "g"
    variables = jax.device_get(sg.init_variables(G16, jax.random.PRNGKey(42)))
    checkpoint.save_model(path, "stylegan2", G16.to_dict(), variables)
    return path


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("few")
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(20, 24), (40, 30), (16, 16)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not an image, ignored")
    return folder


def test_load_image_folder_resizes_and_reports_errors(image_folder, tmp_path):
    images = data.load_image_folder(image_folder, 16)
    assert images.shape == (3, 16, 16, 3) and images.dtype == np.float32
    assert images.min() >= -1 and images.max() <= 1
    one = tmp_path / "one"
    one.mkdir()
    Image.new("RGB", (8, 8)).save(one / "a.png")
    with pytest.raises(ValueError, match="found 1 image.*at least 2"):
        data.load_image_folder(one, 16)
    (one / "b.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="b.png: unreadable image"):
        data.load_image_folder(one, 16)
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        data.load_image_folder(tmp_path / "missing", 16)


def test_adapt_end_to_end(source_model, image_folder, tmp_path):
    from dds_jax.gan import adapt
    out = tmp_path / "adapted"
    state = adapt.run_adaptation(out, str(source_model), str(image_folder), ADAPT, steps=3,
                                 checkpoint_every=2, sample_every=2, progress=False, patch_res=PATCH_RES)
    assert int(state.step) == 3
    gen = sg.load_generator(out / "generator")           # a generator every other command accepts
    assert gen.config == G16
    np.testing.assert_array_equal(np.asarray(gen.variables["params"]["mapping"]["fc0"]["weight"]),
                                  np.asarray(jax.device_get(state.g_ema)["mapping"]["fc0"]["weight"]))
    source = sg.load_generator(source_model)
    assert not np.array_equal(np.asarray(gen.variables["params"]["synthesis"]["convs_3"]["conv"]["weight"]),
                              np.asarray(source.variables["params"]["synthesis"]["convs_3"]["conv"]["weight"]))
    d_config, _, d_params = disc.load_discriminator(out / "discriminator")
    assert d_config.size == 16 and "patch_head" in d_params
    meta = json.loads((out / "train.json").read_text())
    assert meta["steps_done"] == 3 and meta["mode"] == "adapt" and meta["train"]["kl_weight"] == 1000.0
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["000002.png", "000003.png"]
    grid = np.asarray(Image.open(out / "samples" / "000003.png"))
    assert grid.ndim == 3 and grid.shape[0] > 4 * 16
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 3 and "cdc" in lines[-1]
    with pytest.raises(FileExistsError, match="--resume"):
        adapt.run_adaptation(out, str(source_model), str(image_folder), ADAPT, steps=3, progress=False,
                             patch_res=PATCH_RES)
    with pytest.raises(ValueError, match="different"):
        adapt.run_adaptation(out, str(source_model), str(image_folder), ADAPT.__class__.few_shot(batch=3),
                             steps=3, resume=True, progress=False)


def test_resume_equals_uninterrupted(source_model, image_folder, tmp_path):
    from dds_jax.gan import adapt
    full = adapt.run_adaptation(tmp_path / "full", str(source_model), str(image_folder), ADAPT, steps=4,
                                checkpoint_every=100, sample_every=100, progress=False, patch_res=PATCH_RES)
    adapt.run_adaptation(tmp_path / "cut", str(source_model), str(image_folder), ADAPT, steps=4,
                         checkpoint_every=100, sample_every=100, progress=False, stop_after=2, patch_res=PATCH_RES)
    meta = json.loads((tmp_path / "cut" / "train.json").read_text())
    assert meta["steps_done"] == 2
    resumed = adapt.run_adaptation(tmp_path / "cut", str(source_model), str(image_folder), ADAPT, steps=4,
                                   resume=True, checkpoint_every=100, sample_every=100, progress=False, patch_res=PATCH_RES)
    assert int(resumed.step) == 4
    for a, b in zip(_leaves(full), _leaves(resumed)):
        np.testing.assert_array_equal(a, b)


def test_train_from_scratch_on_rendered_faces(tmp_path):
    from dds_jax.gan import run as train
    out = tmp_path / "scratch"
    state = train.run_training(out, G16, SCRATCH, steps=2, data_spec="render:photo", checkpoint_every=2,
                               sample_every=2, progress=False)
    assert int(state.step) == 2
    assert sg.load_generator(out / "generator").config == G16
    assert (out / "samples" / "000002.png").is_file()


def test_adapt_cli_help_and_errors(source_model, tmp_path, program):
    res = program("dds_jax.cli.adapt", "--help")
    assert "--source" in res.stdout and "--images" in res.stdout and "--kl_weight" in res.stdout
    few = tmp_path / "few"
    few.mkdir()
    Image.new("RGB", (8, 8)).save(few / "only.png")
    res = program("dds_jax.cli.adapt", f"--source={source_model}", f"--images={few}", f"--out={tmp_path / 'o'}")
    assert res.returncode == 2 and "at least 2" in res.stderr, res.stderr[-2000:]
    res = program("dds_jax.cli.adapt", f"--source={tmp_path / 'nope'}", f"--images={few}", f"--out={tmp_path / 'o'}")
    assert res.returncode == 2 and "not a dds-jax model directory" in res.stderr
    res = program("dds_jax.cli.train", "--help")
    assert "--data" in res.stdout and "--channels" in res.stdout


def test_adapt_patch_res_and_frozen_layers(source_model, image_folder, tmp_path):
    """--patch_res: the patch-level logits come at that resolution (a fresh head), recorded in train.json;
    freeze_mapping / freeze_res: the frozen generator layers keep the source's weights, the others train.
    ADAPT's step, compiled by the training-step test, is read from the compilation cache."""
    from dds_jax.gan import adapt
    d_config, params = adapt.load_source_discriminator(None, G16, jax.random.PRNGKey(0), patch_res=PATCH_RES)
    assert d_config.resolved_patch_res == PATCH_RES and "patch_head" not in params
    out = tmp_path / "p8"
    state = adapt.run_adaptation(out, str(source_model), str(image_folder), ADAPT, steps=2, patch_res=PATCH_RES,
                                 progress=False)
    d_config, _, d_params = disc.load_discriminator(out / "discriminator")
    assert d_config.patch_res == PATCH_RES
    logits = disc.Discriminator(d_config).apply({"params": d_params}, jnp.zeros((2, 16, 16, 3)), patch=True)
    assert logits.shape == (2, PATCH_RES, PATCH_RES, 1) and int(state.step) == 2
    assert json.loads((out / "train.json").read_text())["discriminator"]["patch_res"] == PATCH_RES
    # two iterations (0: R1 + path length + anchors, 1: neither + patches), as in the training-step test
    before = sg.load_generator(source_model).variables["params"]
    after = jax.device_get(state.g)
    for name in FROZEN:
        for a, b in zip(jax.tree_util.tree_leaves(before["synthesis"][name]),
                        jax.tree_util.tree_leaves(after["synthesis"][name])):
            np.testing.assert_array_equal(a, b, err_msg=name)
    for a, b in zip(jax.tree_util.tree_leaves(before["mapping"]), jax.tree_util.tree_leaves(after["mapping"])):
        np.testing.assert_array_equal(a, b)
    for name in ("convs_2", "convs_3", "to_rgb1", "to_rgbs_0", "to_rgbs_1"):
        assert any(not np.array_equal(a, b) for a, b in zip(
            jax.tree_util.tree_leaves(before["synthesis"][name]),
            jax.tree_util.tree_leaves(after["synthesis"][name]))), name
