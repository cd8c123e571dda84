"""Images (and features) from z's: the one cached forward every command uses, the truncation latent,
fixed-size batching. Seed N is therefore the same image in ``sample``, ``segment``, ``main`` and the studio.

The truncation latent is the checkpoint's ``latent_avg`` when it has one, else the mean of ``style(z)``
over ``n`` z's (rosinality's ``mean_latent``); truncation is ``w_avg + psi (w - w_avg)``, applied to w."""
import functools
import itertools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from dds_jax import checkpoint, files, ops
from dds_jax.models import stylegan2 as sg

NOISE_MODES = ("const", "random")


@functools.lru_cache(maxsize=8)
def _mean_latent_fn(config: sg.GeneratorConfig, n: int):
    module = sg.Generator(config)
    return jax.jit(lambda variables, key: sg.mean_latent(module, variables, key, n))


def truncation_latent(config: sg.GeneratorConfig, variables, latent_avg=None, key=None, n: int = 4096):
    """[style_dim]: ``latent_avg`` when given (the checkpoint's), else the mean of style(z) over ``n``
    z's drawn from ``key`` (default PRNGKey(0))."""
    if latent_avg is not None:
        return jnp.asarray(latent_avg, jnp.float32)
    key = jax.random.PRNGKey(0) if key is None else key
    return _mean_latent_fn(config, int(n))(variables, key)


def truncation_mean(gen: sg.LoadedGenerator, key=None, n: int = 4096):
    """:func:`truncation_latent` of a loaded generator (its checkpoint's ``latent_avg`` first)."""
    return truncation_latent(gen.config, gen.variables, gen.latent_avg, key, n)


@functools.lru_cache(maxsize=16)
def forward_fn(config: sg.GeneratorConfig, fused: bool = False, noise: str = "const"):
    """A cached jitted ``(variables, z, psi, w_avg, key) -> (wplus, images, features)``. ``noise``:
    'const' uses the checkpoint's fixed noise buffers (``key`` unused), 'random' fresh noise from ``key``."""
    if noise not in NOISE_MODES:
        raise ValueError(f"noise must be one of {NOISE_MODES}, got {noise!r}")
    module = sg.Generator(config, fused=fused)

    @jax.jit
    def forward(variables, z, truncation, w_avg, key):
        w = sg.truncate(module.apply(variables, z, method=sg.Generator.style), w_avg, truncation)
        wplus = sg.to_wplus(w, config.n_latent)
        images, feats = module.apply(variables, wplus, input_is_latent=True,
                                     randomize_noise=noise == "random", rngs={"noise": key})
        return wplus, images, feats
    return forward


@functools.lru_cache(maxsize=16)
def _render_wplus_fn(config: sg.GeneratorConfig):
    module = sg.Generator(config)
    return jax.jit(lambda variables, wplus: module.apply(variables, wplus, input_is_latent=True))


def render_wplus(gen: sg.LoadedGenerator, wplus, batch_size: int = 32):
    """(images [N, H, W, 3] in [-1, 1], features) of W+ latents [N, n_latent, D], fixed noise buffers."""
    fn = _render_wplus_fn(gen.config)
    return ops.map_batches(lambda wb: fn(gen.variables, jnp.asarray(wb)), np.asarray(wplus, np.float32),
                           batch_size)


def check_z(z, style_dim: int) -> np.ndarray:
    z = np.asarray(z, np.float32)
    if z.ndim != 2 or z.shape[1] != style_dim:
        raise ValueError(f"z must be [N, {style_dim}], got shape {z.shape}")
    return z


def generate(gen: sg.LoadedGenerator, z, truncation: float = 1.0, truncation_latent=None,
             batch_size: int = 4, noise: str = "const", key=None, features: bool = True):
    """Images [N, H, W, 3] (and, with ``features``, the list of feature maps [N, h, w, C]) for the z's as
    numpy arrays, through one compiled batch shape. ``truncation_latent`` is needed when ``truncation < 1``
    (see :func:`truncation_mean`); ``noise='random'`` draws fresh noise per batch from ``key``."""
    z = check_z(z, gen.config.style_dim)
    if truncation < 1 and truncation_latent is None:
        raise ValueError("truncation < 1 needs truncation_latent (see truncation_mean())")
    w_avg = (jnp.zeros((gen.config.style_dim,), jnp.float32) if truncation >= 1
             else jnp.asarray(truncation_latent, jnp.float32))
    psi = jnp.float32(min(float(truncation), 1.0))
    forward = forward_fn(gen.config, bool(getattr(gen.module, "fused", False)), noise)
    key = jax.random.PRNGKey(0) if key is None else key
    batch_index = itertools.count()

    def run(zb):
        _, images, feats = forward(gen.variables, jnp.asarray(zb), psi, w_avg,
                                   jax.random.fold_in(key, next(batch_index)))
        return (images, feats) if features else images
    return ops.map_batches(run, z, batch_size)


def load_latents(path, style_dim: int) -> np.ndarray:
    """z's [N, style_dim] from a .npy file, or a ValueError naming the file and the shape."""
    z = np.load(path)
    if z.ndim != 2 or z.shape[1] != style_dim:
        raise ValueError(f"{path}: latents must be float32 [N, {style_dim}], got shape {z.shape}")
    return z.astype(np.float32)


def sample_to_folder(ckpt, out, seeds=None, latents=None, truncation=1.0, n_mean: int = 4096,
                     noise="const", batch_size=8, noise_seed=0, save_npy=False):
    """``python -m dds_jax.cli.sample``: ``seed_<N>.png`` (``latent_<i>.png`` for a latents file),
    ``grid.png``, ``z.npy`` and with ``save_npy`` the raw float32 ``images.npy``. Returns (images, names)."""
    gen = sg.load_generator(checkpoint.resolve_model_path(ckpt))
    if latents is not None:
        z = load_latents(latents, gen.config.style_dim)
        names = [f"latent_{i}" for i in range(len(z))]
    else:
        seed_list = files.parse_seeds(seeds)
        z = files.z_from_seeds(seed_list, gen.config.style_dim)
        names = [f"seed_{s}" for s in seed_list]
    key = jax.random.PRNGKey(noise_seed)        # the truncation centre: the same key as main / segment
    noise_key = jax.random.fold_in(key, 1)
    w_avg = truncation_mean(gen, key, n_mean) if truncation < 1 else None
    images = generate(gen, z, truncation, w_avg, batch_size, noise, noise_key, features=False)
    out = pathlib.Path(out)
    pngs = files.to_uint8(images)
    for name, im in zip(names, pngs):
        files.save_png(out / f"{name}.png", im)
    files.save_png(out / "grid.png", files.make_grid(list(pngs), ncols=min(8, len(pngs))))
    files.save_npy(out / "z.npy", z)
    if save_npy:
        files.save_npy(out / "images.npy", images.astype(np.float32))
    return images, names
