"""The two-generator blend (dds_jax.dds.blend), the blend objectives and the objective registry.

Tiny random 16x16 generators (no fixtures needed): the blend is checked against the plain generators
it must reduce to, the objectives through the optimiser's own functions.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dds_jax import generation
from dds_jax.dds import blend, config, objectives
from dds_jax.dds import optimize as opt
from dds_jax.models import stylegan2 as sg

CONFIG = sg.GeneratorConfig(size=16, style_dim=16, n_mlp=2, channels=((4, 16), (8, 16), (16, 8)))


@functools.lru_cache(maxsize=None)
def _gens():
    return tuple(sg.from_variables(CONFIG, sg.init_variables(CONFIG, jax.random.PRNGKey(k))) for k in (1, 2))


def _models():
    return opt.DDSModels.create(*_gens(), "generator")


# The generators and the blend as compiled programs: run op by op, their passes compile every op.
@jax.jit
def _style(variables, z):
    return sg.to_wplus(sg.Generator(CONFIG).apply(variables, z, method=sg.Generator.style), CONFIG.n_latent)


_blend_synthesis = jax.jit(functools.partial(blend.blend_synthesis, CONFIG))


def _wplus(seed, n=2):
    z = jax.random.normal(jax.random.PRNGKey(seed), (n, CONFIG.style_dim))
    return _style(_gens()[0].variables, z)


def _render(gen, w):
    return generation.render_wplus(gen, w)           # the package's compiled W+ renderer


def _part_mask(n=2):
    y = np.zeros((n, 16, 16, 1), np.float32)
    y[:, 2:9, 3:13] = 1
    return jnp.asarray(y)


# --------------------------------------------------------------------------------------------------
# The renderer
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, which", [(0.0, "out"), (1.0, "in")])
def test_an_all_out_or_all_in_mask_is_one_generator(value, which):
    """m = 0 everywhere is G_out(w_out); m = 1 from 4x4 up is G_in(w_in) (images and features)."""
    g_in, g_out = _gens()
    w_in, w_out = _wplus(3), _wplus(4)
    masks = blend.soft_masks(jnp.full((2, 16, 16, 1), value), CONFIG, start_res=4, feather=0.5)
    img, feats = _blend_synthesis(g_in.variables, g_out.variables, w_in, w_out, masks)
    ref_img, ref_feats = _render(g_in, w_in) if which == "in" else _render(g_out, w_out)
    np.testing.assert_allclose(img, ref_img, atol=1e-5)
    for a, b in zip(feats, ref_feats):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_layers_below_the_start_resolution_are_the_outside_generator():
    """start_res = 16 with an all-in mask: the 4x4 and 8x8 features are G_out's, the 16x16 ones are not."""
    g_in, g_out = _gens()
    w = _wplus(3)
    masks = blend.soft_masks(jnp.ones((2, 16, 16, 1)), CONFIG, start_res=16, feather=0.0)
    assert [m is None for m in masks] == [r < 16 for r in blend.layer_resolutions(CONFIG)]
    _, feats = _blend_synthesis(g_in.variables, g_out.variables, w, w, masks)
    _, ref = _render(g_out, w)
    for f, r, size in zip(feats, ref, CONFIG.feature_sizes):
        if size < 16:
            np.testing.assert_allclose(f, r, atol=1e-5)
        else:
            assert np.abs(np.asarray(f) - np.asarray(r)).max() > 1e-3


def test_max_pooled_masks_give_the_part_its_generator_at_every_layer():
    m = _part_mask(1)
    coarse = np.asarray(blend.soft_masks(m, CONFIG, 4, 0.0, pool="max")[0])[0, :, :, 0]
    np.testing.assert_array_equal(coarse, np.asarray(m)[0, :, :, 0].reshape(4, 4, 4, 4).max((1, 3)))
    with pytest.raises(ValueError, match="blend pool 'min'"):
        blend.soft_masks(m, CONFIG, 4, 0.0, pool="min")


def test_soft_masks_area_average_feather_and_weights():
    m = _part_mask(1)
    masks = blend.soft_masks(m, CONFIG, start_res=4, feather=0.0)
    res = blend.layer_resolutions(CONFIG)
    assert len(masks) == len(res) == blend.n_layers(CONFIG)
    np.testing.assert_allclose(masks[-1], m)                                   # full resolution: the mask
    np.testing.assert_allclose(masks[0][0, :, :, 0], np.asarray(m)[0, :, :, 0].reshape(4, 4, 4, 4).mean((1, 3)))
    soft = blend.soft_masks(m, CONFIG, start_res=4, feather=1.0)[-1]
    assert 0 < float(soft[0, 1, 8, 0]) < 1 and float(soft[0, 5, 8, 0]) == pytest.approx(1.0, abs=1e-3)
    half = blend.soft_masks(m, CONFIG, 4, 0.0, weights=[0.5] * len(res))
    np.testing.assert_allclose(half[-1], 0.5 * np.asarray(m))
    with pytest.raises(ValueError, match="blend weights: 3 given"):
        blend.soft_masks(m, CONFIG, 4, 0.0, weights=[1.0] * 3)


def test_generators_of_another_architecture_are_refused_in_one_line():
    other = sg.GeneratorConfig(size=16, style_dim=16, n_mlp=2, channels=((4, 16), (8, 16), (16, 12)))
    with pytest.raises(ValueError, match=r"same architecture; they differ in channels"):
        blend.check_same_architecture(CONFIG, other)
    cfg, note = objectives.for_generators(config.DDSConfig(mode="blend"), CONFIG, other)
    assert cfg.mode == objectives.FALLBACK and "falls back to 'outer'" in note and "\n" not in note
    same, none = objectives.for_generators(config.DDSConfig(mode="blend"), CONFIG, CONFIG)
    assert same.mode == "blend" and none is None


# --------------------------------------------------------------------------------------------------
# The objectives
# --------------------------------------------------------------------------------------------------
def _inputs(cfg):
    y = _part_mask()
    z = jax.random.normal(jax.random.PRNGKey(5), (2, CONFIG.style_dim))
    z_t = jax.random.normal(jax.random.PRNGKey(6), (2, CONFIG.style_dim))
    return opt.prepare_inputs(_models(), (z, z_t), cfg, jax.random.PRNGKey(4), masks=(y, y))


@pytest.mark.parametrize("direction", ["s2t", "t2s"])
def test_blend_forward_is_the_blend_of_the_inputs_own_latents(direction):
    """blend_forward: 0 iterations; x̂ = G_in(w_in) inside the part, G_out(w_out) outside, each from
    its own input's latent (G_in = the part's generator: G_s for s2t, G_t for t2s)."""
    cfg = config.DDSConfig(mode="blend_forward", direction=direction, perceptual_size=None,
                           blend_feather=0.0, blend_paste=False).resolved()
    assert cfg.iterations == 0 and cfg.init == "input"
    inputs = _inputs(cfg)
    res = opt.run_dds(_models(), inputs, cfg, jax.random.PRNGKey(0))
    assert res.losses == {} and res.failed == []
    t2s = direction == "t2s"
    w_in, w_out = (inputs.w_t, inputs.w_s) if t2s else (inputs.w_s, inputs.w_t)
    np.testing.assert_array_equal(res.state.latent, np.stack([w_in, w_out], axis=1))
    g_s, g_t = _gens()
    g_in, g_out = (g_t, g_s) if t2s else (g_s, g_t)
    masks = blend.soft_masks(inputs.y_s, CONFIG, cfg.blend_start, cfg.blend_feather, pool=cfg.blend_pool)
    ref, _ = _blend_synthesis(g_in.variables, g_out.variables, w_in, w_out, masks)
    np.testing.assert_allclose(res.images["result"], ref, atol=1e-5)


def test_pasted_blend_is_the_outside_input_outside_the_part():
    """blend_paste (the default): outside the feathered part x̂ IS the outside input (a local edit),
    inside it is the blend."""
    cfg = config.DDSConfig(mode="blend_forward", perceptual_size=None).resolved()
    assert cfg.blend_paste
    inputs = _inputs(cfg)
    img = opt.run_dds(_models(), inputs, cfg, jax.random.PRNGKey(0)).images["result"]
    plain = opt.run_dds(_models(), inputs, config.DDSConfig(mode="blend_forward", perceptual_size=None,
                                                            blend_paste=False), jax.random.PRNGKey(0)).images["result"]
    soft = np.asarray(blend.soft_masks(inputs.y_s, CONFIG, cfg.blend_start, cfg.blend_feather, pool=cfg.blend_pool)[-1])
    far, core = soft[..., 0] == 0.0, soft[..., 0] > 0.999
    assert far.any() and core.any()
    np.testing.assert_array_equal(img[far], np.asarray(inputs.x_t)[far])
    np.testing.assert_allclose(img[core], plain[core], atol=1e-3)


def test_blend_start_outside_the_generator_is_refused():
    with pytest.raises(ValueError, match="blend_start = 32"):
        blend.soft_masks(_part_mask(), CONFIG, 32, 0.0)


def test_blend_optimisation_lowers_its_region_mean_loss():
    cfg = config.DDSConfig(mode="blend", perceptual_size=None, iterations=6).resolved()
    assert cfg.gamma == 0.0 and cfg.objective.region_mean and cfg.objective.latent_pair
    inputs = _inputs(cfg)
    res = opt.run_dds(_models(), inputs, cfg, jax.random.PRNGKey(0), chunk=3)
    assert res.losses["loss"].shape == (6, 2)
    assert np.all(res.losses["loss"][-1] < res.losses["loss"][0])
    assert res.state.latent.shape == (2, 2, CONFIG.n_latent, CONFIG.style_dim)


def test_region_mean_terms_do_not_shrink_with_the_part():
    """The released MSE is a mean over ALL pixels, so a part's term shrinks with its area; the blend's
    region mean is the error per pixel of the part, whatever its size."""
    from dds_jax.dds import losses
    a = jnp.ones((1, 16, 16, 3))
    for size in (2, 8):
        m = jnp.zeros((1, 16, 16, 1)).at[:, :size, :size].set(1.0)
        assert float(losses.region_mse(a, jnp.zeros_like(a), m)) == pytest.approx(1.0, rel=1e-5)
        assert float(losses.mse(a * m, jnp.zeros_like(a))) == pytest.approx(size * size / 256, rel=1e-5)


def test_registry_names_aliases_and_defaults():
    assert set(objectives.MODES) == {"paper", "reference", "outer", "inner", "blend", "blend_forward"}
    for name in objectives.MODES:
        cfg = config.DDSConfig(mode=name).resolved()
        assert all(getattr(cfg, k) is not None for k in ("latent_space", "init", "alpha", "iterations")), name
    # old names resume: they are read as the new ones (and compare equal)
    assert config.DDSConfig(mode="target") == config.DDSConfig(mode="outer")
    assert config.DDSConfig(mode="source").mode == "inner"
    with pytest.raises(ValueError, match="config.mode = 'nope'"):
        c = config.base_config()
        c.mode = "nope"
        config.check_choices({k: c[k] for k in config.CHOICES}, prefix="config.")


def test_a_two_latent_objective_needs_w_plus():
    cfg = config.DDSConfig(mode="blend", latent_space="w").resolved()
    with pytest.raises(ValueError, match="one W\\+ latent per generator"):
        opt.initial_latents(_models(), cfg, jax.random.PRNGKey(0), 2, _inputs(cfg))
