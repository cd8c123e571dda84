"""The batched optimiser: one jitted, vmapped, sharded step for many seeds behaves like one seed at a time.

Tiny random generators (16x16) and the generator's own features as the perceptual backbone (paper
Appendix D), so these tests need no fixture. The seed axis is sharded over the 4 host devices that
``conftest.py`` creates (XLA_FLAGS=--xla_force_host_platform_device_count=4).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dds_jax.dds import losses
from dds_jax.dds import optimize as opt
from dds_jax.models import stylegan2 as sg

CONFIG = sg.GeneratorConfig(size=16, style_dim=16, n_mlp=2, channels=((4, 16), (8, 16), (16, 8)))
N = 6  # seeds: not a multiple of the 4 devices, so padding is exercised
PADDED = 8  # N padded to the 4 devices; one seed alone is padded to the same 8 (the same compiled step)


@functools.lru_cache(maxsize=None)
def _models():
    gen_s = sg.from_variables(CONFIG, sg.init_variables(CONFIG, jax.random.PRNGKey(1)))
    gen_t = sg.from_variables(CONFIG, sg.init_variables(CONFIG, jax.random.PRNGKey(2)))
    return opt.DDSModels.create(gen_s, gen_t, "generator")


@jax.jit
def _g_t_image(params, z):
    """G_t(z) as one program (run op by op, the forward pass compiles each of its ops)."""
    return _models().gen_t.apply(params, z)[0]


def _masks(n, size=CONFIG.size):
    """Rectangles of different sizes per seed (y_s) and shifted ones (y_t), [n, H, W, 1]."""
    y = np.zeros((2, n, size, size, 1), np.float32)
    for i in range(n):
        a = 2 + i % 3
        y[0, i, a:size - a, a + 1:size - 2] = 1
        y[1, i, a + 1:size - 3, a:size - a] = 1
    return jnp.asarray(y[0]), jnp.asarray(y[1])


def _cfg(**kw):
    base = dict(mode="paper", direction="s2t", iterations=4, perceptual_size=None)
    return opt.DDSConfig(**dict(base, **kw))


def _inputs(cfg, n=N):
    zs = jax.random.normal(jax.random.PRNGKey(3), (n, CONFIG.style_dim))
    return opt.prepare_inputs(_models(), zs, cfg, jax.random.PRNGKey(4), masks=_masks(n))


def _run(cfg, inputs, latent0, mesh, chunk=2, k=0, noises0=None, multiple=None):
    models = _models()
    inputs, n = opt.pad_seeds(inputs, multiple or (1 if mesh is None else mesh.size))
    if latent0 is not None and latent0.shape[0] < inputs.x_s.shape[0]:
        latent0 = jnp.concatenate([latent0, jnp.repeat(latent0[-1:], inputs.x_s.shape[0] - n, 0)])
    inputs = opt.shard_seeds(inputs, mesh)
    state = opt.init_state(models, inputs, cfg, jax.random.PRNGKey(5), latent0=latent0, noises0=noises0,
                           mesh=mesh)
    run = opt.make_run_chunk(models, cfg, chunk, k, mesh)  # compiled once per layout (cached)
    outs = []
    for _ in range(cfg.iterations // chunk):
        state, out = run(state, inputs)
        outs.append(jax.device_get(opt.unpad(out, n, axis=1)))
    return state, inputs, n, outs


@pytest.mark.parametrize("space", ["z", "w", "w+"])
def test_sharded_batch_equals_one_seed_at_a_time(space):
    cfg = _cfg(latent_space=space).resolved()
    inputs = _inputs(cfg)
    latent0 = opt.initial_latents(_models(), cfg, jax.random.PRNGKey(7), N)
    mesh = opt.seed_mesh()
    assert mesh.size == 4, "conftest should create 4 host devices"
    state, padded, n, outs = _run(cfg, inputs, latent0, mesh)
    assert state.latent.sharding.spec[0] == opt.SEEDS
    loss = np.concatenate([o.losses["loss"] for o in outs])            # [iterations, N]
    assert loss.shape == (cfg.iterations, N) and np.all(np.isfinite(loss))
    assert np.all(loss[-1] < loss[0]), "4 Adam steps should lower every seed's loss"
    assert padded.x_s.shape[0] == PADDED
    for i in (0, 3, N - 1):
        # seed i alone (the other 7 problems are padding): the same program, so the batch is checked
        # for what it must not do, mixing seeds; the unsharded step is test_dds_step's
        one = jax.tree_util.tree_map(lambda a: a[i:i + 1], inputs)
        st1, _, _, outs1 = _run(cfg, one, latent0[i:i + 1], mesh, multiple=PADDED)
        loss1 = np.concatenate([o.losses["loss"] for o in outs1])[:, 0]
        np.testing.assert_allclose(loss[:, i], loss1, rtol=2e-5)
        np.testing.assert_allclose(np.asarray(state.latent)[i], np.asarray(st1.latent)[0], atol=2e-5)


def test_padding_problems_never_update():
    cfg = _cfg(latent_space="z").resolved()
    latent0 = opt.initial_latents(_models(), cfg, jax.random.PRNGKey(7), N)
    state, padded, n, _ = _run(cfg, _inputs(cfg), latent0, opt.seed_mesh())
    assert padded.x_s.shape[0] == 8 and n == N
    alive = np.asarray(state.alive)
    assert alive[:N].all() and not alive[N:].any()
    np.testing.assert_array_equal(np.asarray(state.latent)[N:], np.asarray(latent0)[[-1, -1]])
    assert opt.failed_problems(state, padded) == []


def test_non_finite_loss_stops_only_that_seed():
    cfg = _cfg(latent_space="z").resolved()
    inputs = _inputs(cfg)
    bad = 2
    inputs = inputs._replace(x_t=inputs.x_t.at[bad, 0, 0, 0].set(jnp.nan))
    latent0 = opt.initial_latents(_models(), cfg, jax.random.PRNGKey(7), N)
    state, padded, n, outs = _run(cfg, inputs, latent0, opt.seed_mesh())
    failed = opt.failed_problems(state, padded)
    assert failed == [(bad, bad, "s2t", 0)]
    np.testing.assert_array_equal(np.asarray(state.latent)[bad], np.asarray(latent0)[bad])
    good = [i for i in range(N) if i != bad]
    assert np.all(np.isfinite(np.asarray(state.latent)[good]))
    loss = np.concatenate([o.losses["loss"] for o in outs])
    assert np.all(np.isfinite(loss[:, good]))


def test_both_directions_and_crossover():
    cfg = _cfg(direction="both").resolved()
    inp = _inputs(cfg, n=3)
    assert inp.x_s.shape[0] == 6
    np.testing.assert_array_equal(np.asarray(inp.t2s), [False] * 3 + [True] * 3)
    np.testing.assert_array_equal(np.asarray(inp.seed), [0, 1, 2, 0, 1, 2])
    x_s, x_t, y_s, y_t = (np.asarray(a) for a in (inp.x_s, inp.x_t, inp.y_s, inp.y_t))
    np.testing.assert_allclose(inp.x_c[:3], x_s[:3] * y_s[:3] + x_t[:3] * (1 - y_t[:3]), atol=1e-7)  # Eq. 1
    np.testing.assert_allclose(inp.x_c[3:], x_t[3:] * y_t[3:] + x_s[3:] * (1 - y_s[3:]), atol=1e-7)
    state, padded, n, outs = _run(cfg, inp, None, opt.seed_mesh())
    images = jax.device_get(opt.unpad(opt.final_images(_models(), state, padded, cfg), n))
    # s2t's x̂ is G_t(ẑ), t2s's x̂ is G_s(ẑ); "other" is the other generator's image of the same ẑ
    g_t = _g_t_image(_models().params["g_t"], state.latent[:n])
    np.testing.assert_allclose(images["result"][:3], np.asarray(g_t)[:3], atol=1e-5)
    np.testing.assert_allclose(images["other"][3:], np.asarray(g_t)[3:], atol=1e-5)


def test_unpaired_inputs_use_two_latents():
    cfg = _cfg(paired=False).resolved()
    z_s = jax.random.normal(jax.random.PRNGKey(3), (2, CONFIG.style_dim))
    z_t = jax.random.normal(jax.random.PRNGKey(9), (2, CONFIG.style_dim))
    paired = opt.prepare_inputs(_models(), z_s, cfg, masks=_masks(2))
    unpaired = opt.prepare_inputs(_models(), (z_s, z_t), cfg, masks=_masks(2))
    np.testing.assert_array_equal(paired.x_s, unpaired.x_s)
    assert np.abs(np.asarray(paired.x_t) - np.asarray(unpaired.x_t)).max() > 1e-3
    expect = _g_t_image(_models().params["g_t"], z_t)
    np.testing.assert_allclose(unpaired.x_t, expect, atol=1e-5)


def test_snapshots_and_loss_layout():
    cfg = _cfg(iterations=4).resolved()
    _, _, n, outs = _run(cfg, _inputs(cfg), None, opt.seed_mesh(), chunk=4, k=2)
    out = outs[0]
    assert out.snapshots.shape == (2, N, CONFIG.size, CONFIG.size, 3)
    np.testing.assert_array_equal(out.snapshot_steps[:, 0], [0, 2])
    assert set(out.losses) == set(losses.TERMS)
    for v in out.losses.values():
        assert v.shape == (4, N)


def test_runs_of_any_length_share_one_compiled_step():
    """The iteration count is not part of the program: a 4-iteration run and the first half of an
    8-iteration run are the same compiled function and the same iterates."""
    short, long_ = _cfg(iterations=4), _cfg(iterations=8)
    assert opt.make_run_chunk(_models(), short, 2).jitted is opt.make_run_chunk(_models(), long_, 2).jitted
    mesh = opt.seed_mesh()
    a, _, _, a_outs = _run(short, _inputs(short), None, mesh)
    b, _, _, b_outs = _run(long_, _inputs(long_), None, mesh)
    assert int(a.step[0]) == 4 and int(b.step[0]) == 8 and len(a_outs) == 2 and len(b_outs) == 4
    for x, y in zip(a_outs, b_outs):
        np.testing.assert_array_equal(x.losses["loss"], y.losses["loss"])


def test_reference_mode_normalises_noise_each_step():
    cfg = _cfg(mode="reference", direction="d1", iterations=2).resolved()
    assert cfg.latent_space == "w+" and cfg.weights == (1.0, 1.0, 3.0, 2.0)
    inputs = _inputs(cfg, n=4)
    noises0 = [3.0 + 2.0 * jax.random.normal(jax.random.PRNGKey(i), (4,) + s[1:])
               for i, s in enumerate(CONFIG.noise_shapes())]
    state, _, _, _ = _run(cfg, inputs, None, opt.seed_mesh(), chunk=2, noises0=noises0)
    for noise in state.noises:
        flat = np.asarray(noise).reshape(4, -1)
        np.testing.assert_allclose(flat.mean(1), 0, atol=1e-5)
        np.testing.assert_allclose(flat.std(1, ddof=1), 1, atol=1e-5)   # unbiased std, as torch


def test_config_errors():
    with pytest.raises(ValueError, match="direction"):
        opt.DDSConfig(direction="sideways")
    with pytest.raises(ValueError, match="latent_space"):
        opt.DDSConfig(latent_space="q")
    other = sg.GeneratorConfig(size=32, style_dim=16, n_mlp=2, channels=((4, 8), (8, 8), (16, 8), (32, 8)))
    g_other = sg.from_variables(other, sg.init_variables(other, jax.random.PRNGKey(0)))
    g = sg.from_variables(CONFIG, sg.init_variables(CONFIG, jax.random.PRNGKey(0)))
    with pytest.raises(ValueError, match="size"):
        opt.DDSModels.create(g, g_other, "generator")
    with pytest.raises(ValueError, match="backbone"):
        opt.DDSModels.create(g, g, "vgg16")        # no weights given
    with pytest.raises(ValueError, match="chunk"):
        opt.make_run_chunk(_models(), _cfg().resolved(), chunk=5, snapshot_every=2)


def test_empty_mask_is_detected():
    y_s, _ = _masks(3)
    y_s = y_s.at[1].set(0.0)
    np.testing.assert_array_equal(opt.mask_is_empty(y_s), [False, True, False])


def test_checkpoint_latent_avg_is_the_truncation_centre():
    """Issue 11 item 2: a checkpoint's ``latent_avg`` reaches DDS (DDSModels.create keeps it), so the
    truncated inputs are the images ``sample`` draws with the same centre, not a 4096-z estimate."""
    from dds_jax import generation
    variables = sg.init_variables(CONFIG, jax.random.PRNGKey(1))
    far = np.full((CONFIG.style_dim,), 0.7, np.float32)            # far from any estimate of the mean
    gen = sg.from_variables(CONFIG, dict(variables, latent_avg=far))
    np.testing.assert_array_equal(gen.latent_avg, far)
    models = opt.DDSModels.create(gen, gen, "generator")
    cfg = _cfg(truncation_source=0.5, truncation_target=0.5)
    zs = jax.random.normal(jax.random.PRNGKey(3), (2, CONFIG.style_dim))
    inputs = opt.prepare_inputs(models, zs, cfg, jax.random.PRNGKey(4), masks=_masks(2))
    expect = generation.generate(gen, np.asarray(zs), 0.5, jnp.asarray(far), batch_size=2, features=False)
    np.testing.assert_allclose(np.asarray(inputs.x_s), expect, atol=1e-5)
    np.testing.assert_allclose(np.asarray(inputs.x_t), expect, atol=1e-5)


def test_precision_reaches_the_step():
    """Issue 15 item 3: DDSConfig.precision changes how the step computes, not what: bf16 convolutions
    stay near float32 (remat's exactness is tested on the generator); an unknown name is refused."""
    base = _cfg(latent_space="w+", iterations=4)
    # one seed padded to 8 on the mesh: the float32 run is then test_sharded_batch_equals_one_seed_at_a_time[w+]'s
    # program (same config and shapes), compiled once per module
    inputs = _inputs(base, n=1)
    latent0 = jnp.asarray(opt.initial_latents(_models(), base, jax.random.PRNGKey(7), 1))
    losses = [np.concatenate([o.losses["loss"] for o in _run(cfg, inputs, latent0, opt.seed_mesh(),
                                                              multiple=PADDED)[3]])
              for cfg in (base, _cfg(latent_space="w+", iterations=4, precision="bf16"))]
    np.testing.assert_allclose(losses[1], losses[0], rtol=5e-2)
    assert not np.allclose(losses[1], losses[0], rtol=1e-7, atol=0)      # bf16 did take effect
    with pytest.raises(ValueError, match="precision"):
        _cfg(precision="fp8")
    with pytest.raises(ValueError, match="remat"):
        _cfg(remat="everything")


def test_sequential_paper_gradient_equals_the_joint_one():
    """Issue 15 item 2: paper mode's default remat ("synthesis": the generators re-run and differentiated
    one after the other, opt.sequential_paper_grad) gives the losses and gradients of remat="none" (the
    joint value_and_grad), for s2t and t2s problems (direction "both": one batch holds both kinds).
    Tolerance: float32 summation order, 1e-5 relative."""
    direction = "both"
    assert opt.DDSConfig(mode="paper").resolved().remat == "synthesis"
    assert opt.DDSConfig(mode="reference").resolved().remat == "none"
    runs = []
    for remat in ("synthesis", "none"):
        cfg = _cfg(direction=direction, remat=remat, iterations=2).resolved()
        models = _models()
        inputs, n = opt.pad_seeds(_inputs(cfg, n=3), 1)
        state = opt.init_state(models, inputs, cfg, jax.random.PRNGKey(5))
        _, out = opt.make_run_chunk(models, cfg, 2, with_grads=True)(state, inputs)
        runs.append(jax.device_get(out))
    seq, joint = runs
    scale = np.max(np.abs(joint.grads))
    assert scale > 0
    np.testing.assert_allclose(seq.grads, joint.grads, rtol=1e-5, atol=1e-5 * scale)
    for name in joint.losses:
        np.testing.assert_allclose(seq.losses[name], joint.losses[name], rtol=1e-5, atol=1e-7)
