"""Parity of the Flax StyleGAN2 generator with the rosinality PyTorch original (``stylegan2_*`` fixtures).

Tolerances (the fixture READMEs' targets for a float32 port): images <= 1e-3 max abs error, features
<= 1e-3 relative (max|diff| / max|map|), w / truncation latent / W+ <= 1e-4 relative.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dds_jax.models import stylegan2 as sg
from fixture_utils import (fixture_params, load_data, load_state_dict, max_abs_err, max_rel_err,
                           nchw_to_nhwc)

IMAGE_TOL = 1e-3
FEATURE_TOL = 1e-3
LATENT_TOL = 1e-4

FIXTURES = fixture_params("stylegan2_")


@functools.lru_cache(maxsize=None)
def _generator(folder):
    cfg, variables = sg.convert_state_dict(load_state_dict(folder / "manifest.json"), source=folder.name)
    return sg.from_variables(cfg, variables)


@functools.lru_cache(maxsize=None)
def _data(folder):
    return load_data(folder)


@functools.lru_cache(maxsize=None)
def _forward(folder, input_is_latent=False, truncated=False):
    gen = _generator(folder)

    @jax.jit
    def f(variables, latents, w_avg):
        return gen.module.apply(variables, latents, input_is_latent=input_is_latent,
                                truncation=0.7 if truncated else 1.0,
                                truncation_latent=w_avg if truncated else None)
    return f


def _style(folder, z):
    gen = _generator(folder)
    return np.asarray(gen.module.apply(gen.variables, jnp.asarray(z), method=sg.Generator.style))


def _first_key(data, *names):
    for n in names:
        if n in data:
            return n
    pytest.skip(f"fixture has none of {names}")


@pytest.mark.parametrize("folder", FIXTURES)
def test_config_matches_manifest(folder):
    from fixture_utils import manifest_config
    expected = manifest_config(folder)
    cfg = _generator(folder).config
    assert cfg.size == expected["size"]
    assert cfg.style_dim == expected["style_dim"]
    assert cfg.n_mlp == expected["n_mlp"]
    assert dict(cfg.channels) == {int(k): v for k, v in expected["channels"].items()}
    assert cfg.n_latent == expected["n_latent"]
    assert cfg.num_layers == expected["num_layers"]
    assert list(cfg.feature_channels) == expected["feature_channels"]
    assert list(cfg.feature_sizes) == expected["feature_sizes"]


@pytest.mark.parametrize("folder", FIXTURES)
def test_mapping_network(folder):
    data = _data(folder)
    assert max_rel_err(_style(folder, data["z"]), data["w"]) <= LATENT_TOL


@pytest.mark.parametrize("folder", FIXTURES)
def test_image_z_input(folder):
    data = _data(folder)
    key = _first_key(data, "image_a", "image")
    gen = _generator(folder)
    img, _ = _forward(folder)(gen.variables, jnp.asarray(data["z"]), jnp.zeros(gen.config.style_dim))
    assert max_abs_err(img, nchw_to_nhwc(data[key])) <= IMAGE_TOL


@pytest.mark.parametrize("folder", FIXTURES)
def test_image_truncation(folder):
    data = _data(folder)
    key = _first_key(data, "image_b", "image_trunc")
    w_avg = data["truncation_latent"] if "truncation_latent" in data else data["latent_avg"]
    if "z_trunc" in data:  # the truncation latent itself is style(z).mean(0)
        assert max_rel_err(_style(folder, data["z_trunc"]).mean(0), w_avg) <= LATENT_TOL
    if "z_avg" in data:
        assert max_rel_err(_style(folder, data["z_avg"]).mean(0), w_avg) <= LATENT_TOL
    gen = _generator(folder)
    img, _ = _forward(folder, truncated=True)(gen.variables, jnp.asarray(data["z"]), jnp.asarray(w_avg))
    assert max_abs_err(img, nchw_to_nhwc(data[key])) <= IMAGE_TOL


@pytest.mark.parametrize("folder", FIXTURES)
def test_image_wplus_input(folder):
    data = _data(folder)
    if "wplus" not in data:
        pytest.skip("fixture has no W+ case")
    gen = _generator(folder)
    if "z_wplus" in data:
        w = _style(folder, data["z_wplus"]).reshape(data["wplus"].shape)
        assert max_rel_err(w, data["wplus"]) <= LATENT_TOL
    img, _ = _forward(folder, input_is_latent=True)(gen.variables, jnp.asarray(data["wplus"]),
                                                     jnp.zeros(gen.config.style_dim))
    assert max_abs_err(img, nchw_to_nhwc(data["image_c"])) <= IMAGE_TOL


@pytest.mark.parametrize("folder", FIXTURES)
def test_features(folder):
    """Every StyledConv output: whole maps, top-left crops and per-channel mean/std, as stored."""
    data = _data(folder)
    gen = _generator(folder)
    _, feats = _forward(folder)(gen.variables, jnp.asarray(data["z"]), jnp.zeros(gen.config.style_dim))
    assert len(feats) == gen.config.num_layers
    checked = 0
    for i, f in enumerate(feats):
        f = np.asarray(f).transpose(0, 3, 1, 2)  # NCHW like the fixture
        if f"feat_{i}" in data:
            assert max_rel_err(f, data[f"feat_{i}"]) <= FEATURE_TOL, f"feat_{i}"
            checked += 1
        if f"feat_{i}_crop" in data:
            crop = data[f"feat_{i}_crop"]
            assert max_rel_err(f[:, :, :crop.shape[2], :crop.shape[3]], crop) <= FEATURE_TOL, f"feat_{i}_crop"
            checked += 1
        if f"feat_{i}_mean" in data:
            f64 = f.astype(np.float64)
            assert max_rel_err(f64.mean((2, 3)), data[f"feat_{i}_mean"]) <= FEATURE_TOL, f"feat_{i}_mean"
            assert max_rel_err(f64.std((2, 3)), data[f"feat_{i}_std"]) <= FEATURE_TOL, f"feat_{i}_std"
            checked += 1
    assert checked >= len(feats)


@pytest.mark.parametrize("folder", FIXTURES)
def test_fused_modulation_matches_unfused(folder):
    """The grouped-conv (fused) and the scale-activation (non-fused) forms are the same function."""
    data = _data(folder)
    base = _generator(folder)
    fused = sg.from_variables(base.config, base.variables, fused=True)
    z = jnp.asarray(data["z"][:1])
    a, _ = jax.jit(lambda v, z: base.module.apply(v, z))(base.variables, z)
    b, _ = jax.jit(lambda v, z: fused.module.apply(v, z))(fused.variables, z)
    assert max_abs_err(a, b) <= IMAGE_TOL


# ------------------------------------------------------------------------------------------------
# Behaviour on a tiny random generator (no fixture needed)
# ------------------------------------------------------------------------------------------------
TINY = sg.GeneratorConfig(size=16, style_dim=8, n_mlp=2, channels=((4, 8), (8, 8), (16, 4)))


@pytest.fixture(scope="module")
def tiny():
    variables = sg.init_variables(TINY, jax.random.PRNGKey(0))
    return sg.from_variables(TINY, variables)


def _apply(module, **kw):
    """``module.apply`` as one compiled program (run eagerly every layer's every op is a program of its
    own to compile: a few hundred per test on these tiny generators)."""
    return jax.jit(functools.partial(module.apply, **kw))


def test_style_mixing_uses_each_latent_on_its_layers(tiny):
    z1, z2 = jax.random.normal(jax.random.PRNGKey(1), (2, 1, TINY.style_dim))
    style = _apply(tiny.module, method=sg.Generator.style)
    w1, w2 = (style(tiny.variables, z) for z in (z1, z2))
    mixed, _ = _apply(tiny.module, inject_index=3)(tiny.variables, (z1, z2))
    wplus = jnp.concatenate([jnp.repeat(w1[:, None], 3, 1), jnp.repeat(w2[:, None], TINY.n_latent - 3, 1)], 1)
    direct, _ = _apply(tiny.module, input_is_latent=True)(tiny.variables, wplus)
    np.testing.assert_allclose(mixed, direct, atol=1e-6)
    with pytest.raises(ValueError, match="inject_index"):
        tiny.module.apply(tiny.variables, (z1, z2))


def test_noise_modes(tiny):
    z = jax.random.normal(jax.random.PRNGKey(2), (2, TINY.style_dim))
    apply = _apply(tiny.module)
    const1, _ = apply(tiny.variables, z)
    const2, _ = apply(tiny.variables, z)
    np.testing.assert_array_equal(const1, const2)
    # give the noise a visible strength, then fresh noise changes the image and the key decides it
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: jnp.ones_like(x) if "noise_strength" in jax.tree_util.keystr(p) else x,
        tiny.variables["params"])
    v = {"params": params, "buffers": tiny.variables["buffers"]}
    fresh = _apply(tiny.module, randomize_noise=True)
    r1, _ = fresh(v, z, rngs={"noise": jax.random.PRNGKey(0)})
    r2, _ = fresh(v, z, rngs={"noise": jax.random.PRNGKey(0)})
    r3, _ = fresh(v, z, rngs={"noise": jax.random.PRNGKey(1)})
    np.testing.assert_array_equal(r1, r2)
    assert float(jnp.max(jnp.abs(r1 - r3))) > 1e-3
    given = [jnp.zeros(s) for s in TINY.noise_shapes()]
    zero_noise, _ = apply(v, z, noise=given)
    zero_strength, _ = apply(tiny.variables, z, noise=given)
    np.testing.assert_allclose(zero_noise, zero_strength, atol=1e-6)


def test_vmap_over_seeds_matches_batch(tiny):
    z = jax.random.normal(jax.random.PRNGKey(3), (3, 1, TINY.style_dim))
    per_seed = jax.jit(jax.vmap(lambda zi: tiny.module.apply(tiny.variables, zi)[0]))(z)
    batched, _ = _apply(tiny.module)(tiny.variables, z[:, 0])
    np.testing.assert_allclose(per_seed[:, 0], batched, atol=1e-5)


def test_mean_latent_is_deterministic(tiny):
    a = sg.mean_latent(tiny.module, tiny.variables, jax.random.PRNGKey(5), 64)
    b = sg.mean_latent(tiny.module, tiny.variables, jax.random.PRNGKey(5), 64)
    assert a.shape == (TINY.style_dim,)
    np.testing.assert_array_equal(a, b)


def test_bad_inputs(tiny):
    with pytest.raises(ValueError, match="layers"):
        tiny.module.apply(tiny.variables, jnp.zeros((1, TINY.n_latent + 1, TINY.style_dim)), input_is_latent=True)
    with pytest.raises(ValueError, match="truncation_latent"):
        tiny.module.apply(tiny.variables, jnp.zeros((1, TINY.style_dim)), truncation=0.5)
    with pytest.raises(ValueError, match="power of two"):
        sg.GeneratorConfig(size=48)


@pytest.mark.parametrize("size,k", [(5, 3), (4, 1), (3, 4)])
def test_conv_transpose_stride2_matches_torch(size, k):
    """The polyphase up-sampling convolution == torch ``conv_transpose2d(stride=2, padding=0)``."""
    torch = pytest.importorskip("torch")
    from dds_jax import ops
    rng = np.random.default_rng(size)
    x = rng.standard_normal((2, size, size + 1, 3)).astype(np.float32)
    w = rng.standard_normal((k, k, 3, 5)).astype(np.float32)                       # HWIO
    want = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x.transpose(0, 3, 1, 2)), torch.from_numpy(w.transpose(2, 3, 0, 1)), stride=2)
    got = ops.conv_transpose_stride2(jnp.asarray(x), jnp.asarray(w), jax.lax.Precision.HIGHEST)
    assert max_abs_err(got, want.numpy().transpose(0, 2, 3, 1)) <= 1e-5


@functools.partial(jax.jit, static_argnums=0)
def _image_and_grad(gen_module, variables, z):
    def loss(z):
        img, feats = gen_module.apply(variables, z)
        return jnp.sum(jnp.sin(img)) + sum(jnp.mean(f) for f in feats), img
    (_, img), grad = jax.value_and_grad(loss, has_aux=True)(z)
    return img, grad


@pytest.mark.parametrize("remat", sg.REMAT)
def test_remat_and_precision_options(tiny, remat):
    """remat changes what the backward pass stores, not the values; tf32 is float32 on CPU (exact
    here), bf16 stays close (5e-2 image: 2.4e-2 measured on this tiny model, 8 bits of mantissa
    through every layer; 5e-2 relative gradient). Every remat is checked in float32 and bf16; tf32
    once, without remat (each pair is a program of its own to compile)."""
    z = jax.random.normal(jax.random.PRNGKey(7), (2, TINY.style_dim))
    ref_img, ref_grad = _image_and_grad(sg.Generator(TINY, remat="none"), tiny.variables, z)
    for precision, img_tol, grad_tol in (("float32", 1e-5, 1e-5), ("tf32", 1e-5, 1e-5), ("bf16", 5e-2, 5e-2)):
        if precision == "tf32" and (remat != "none" or jax.default_backend() != "cpu"):
            continue
        img, grad = _image_and_grad(sg.Generator(TINY, remat=remat, precision=precision), tiny.variables, z)
        assert max_abs_err(img, ref_img) <= img_tol, precision
        assert max_rel_err(grad, ref_grad) <= grad_tol, precision


def test_bad_generator_options(tiny):
    z = jnp.zeros((1, TINY.style_dim))
    with pytest.raises(ValueError, match="remat"):
        sg.Generator(TINY, remat="blocks").apply(tiny.variables, z)
    with pytest.raises(ValueError, match="precision 'fp8' is not one of"):
        sg.Generator(TINY, precision="fp8").apply(tiny.variables, z)
