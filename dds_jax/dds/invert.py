"""GAN inversion: the W+ latents whose images reproduce given images (pixel MSE, Adam), as one jitted
loop. Used to put rendered images, whose true part masks are known, into a generator's latent
space: to label the one-shot segmenter's sample and to measure its IoU (``dds_jax.cli.demo_models``)."""
import functools
import hashlib
import json
import pathlib
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dds_jax import files, generation, ops
from dds_jax.models import stylegan2 as sg


@functools.lru_cache(maxsize=8)
def _invert_fn(config: sg.GeneratorConfig, lowpass_sigma: float = 0.0):
    """The jitted ``run(variables, targets, w_init, steps, lr) -> (wplus, images, features)``: the step
    count and the learning rate are arguments, so one program serves every inversion of this
    architecture, batch shape and loss."""
    G = sg.Generator(config)
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=0.0)

    @jax.jit
    def run(variables, targets, w_init, steps, lr):
        smooth_targets = ops.gaussian_blur(targets, lowpass_sigma)

        def loss_fn(wplus):
            images, _ = G.apply(variables, wplus, input_is_latent=True)
            # images are independent: the sum of per-image MSEs keeps each image's gradient
            diff = ops.gaussian_blur(images, lowpass_sigma) - smooth_targets
            return jnp.sum(jnp.mean(diff ** 2, axis=(1, 2, 3)))

        def body(_, carry):
            wplus, opt = carry
            grads = jax.grad(loss_fn)(wplus)
            updates, opt = tx.update(grads, opt, wplus)
            return optax.apply_updates(wplus, updates), opt
        opt = tx.init(w_init)
        opt.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
        wplus, _ = jax.lax.fori_loop(0, steps, body, (w_init, opt))
        images, features = G.apply(variables, wplus, input_is_latent=True)
        return wplus, images, features
    return run


def invert(gen: sg.LoadedGenerator, images, steps: int = 500, lr: float = 0.05, batch_size: int = 32,
           progress: Optional[Callable[[int], None]] = None, lowpass_sigma: float = 0.0):
    """images: uint8 [N, H, W, 3] (or float in [-1, 1]) at the generator's resolution.

    Starts every image at the mean w in all layers; optimises W+ against the pixel MSE with the
    checkpoint's fixed noise (one compiled program for any ``steps`` and ``lr``). ``lowpass_sigma`` > 0
    compares both images blurred by a Gaussian of that sigma (pixels): the fit leaves out detail finer
    than the generator draws, and its latents stay nearer the generator's own (``dds_jax.demo.models``
    measures the segmenter through them). Returns (wplus [N, n_latent, D], reconstructions [N, H, W, 3]
    in [-1, 1], features (list of [N, h, w, C]), per-image pixel MSE [N], unblurred) as numpy arrays.
    ``progress(n)`` is told each time ``n`` more images are done."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 127.5 - 1.0
    size = gen.config.size
    if images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise ValueError(f"images must be [N, {size}, {size}, 3] for this generator, got {images.shape}")
    w_avg = jnp.asarray(generation.truncation_mean(gen))
    run = _invert_fn(gen.config, float(lowpass_sigma))
    done = [0]
    if progress is not None:
        progress(0)                              # started (a caller may show its bar only now)

    def invert_batch(chunk):
        w0 = jnp.broadcast_to(w_avg, (len(chunk), gen.config.n_latent, w_avg.shape[-1]))
        out = jax.block_until_ready(run(gen.variables, jnp.asarray(chunk, jnp.float32), w0, int(steps),
                                        float(lr)))
        if progress is not None:                 # the last batch is padded: count real images only
            n = min(len(chunk), len(images) - done[0])
            done[0] += n
            progress(n)
        return out
    wplus, recon, feats = ops.map_batches(invert_batch, images, batch_size)
    mse = np.mean((recon - images) ** 2, axis=(1, 2, 3))
    return wplus, recon, feats, mse


def fingerprint(variables) -> str:
    """sha1 of a generator's weights: a cache made with other weights under the same name is not reused."""
    h = hashlib.sha1()
    for leaf in jax.tree_util.tree_leaves(variables):
        h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()


def invert_pair(gen_s, gen_t, source_images, target_images, steps: int, lr: float = 0.05,
                cache: Optional[pathlib.Path] = None, key: Optional[dict] = None, batch_size: int = 32,
                progress: Optional[Callable[[int], None]] = None) -> dict:
    """W+ inversions of source images into G_s and target images into G_t (uint8 [N, H, W, 3]). Either
    may be None: then the other domain's latents are used for both (paired, the same W+ in G_s and G_t).

    Returns {w_s, x_s, w_t, x_t (float [-1, 1]), mse_s, mse_t [N] (NaN for a domain not inverted),
    feats_s, feats_t (lists of [N, h, w, C])}. With ``cache`` (an .npz path) and ``key`` (a JSON-able
    description of the inputs), the latents of a finished inversion with the same key are reused
    (images and features are re-rendered from them); the file is written atomically. ``batch_size``
    and ``progress``: as :func:`invert`'s."""
    if source_images is None and target_images is None:
        raise ValueError("invert_pair needs source or target images")
    key_text = json.dumps(key, sort_keys=True)
    n = len(source_images if source_images is not None else target_images)
    latents = None
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["key"]) == key_text and len(z["w_s"]) >= n:    # images are inverted independently
                latents = {k: z[k][:n] for k in ("w_s", "w_t", "mse_s", "mse_t")}
    if latents is None:
        latents = {}
        for tag, gen, images in (("s", gen_s, source_images), ("t", gen_t, target_images)):
            if images is not None:
                w, _, _, mse = invert(gen, images, steps=steps, lr=lr, batch_size=batch_size, progress=progress)
                latents.update({f"w_{tag}": w, f"mse_{tag}": mse})
        for tag, other in (("s", "t"), ("t", "s")):
            if f"w_{tag}" not in latents:
                latents.update({f"w_{tag}": latents[f"w_{other}"], f"mse_{tag}": np.full(n, np.nan, np.float32)})
        if cache is not None:
            files.save_npz(cache, key=key_text, **latents)
    out = dict(latents)
    for tag, gen in (("s", gen_s), ("t", gen_t)):
        out[f"x_{tag}"], out[f"feats_{tag}"] = generation.render_wplus(gen, latents[f"w_{tag}"])
    return out


def inputs_from_inversions(inv: dict, cfg, seg_fn: Optional[Callable] = None, masks=None):
    """DDS problems (:class:`optimize.Inputs`) of inverted images: masks given as ``(y_s, y_t)`` or by
    the segmenter on each inversion, x_c of Eq. 1, and the W+ latents (the generator backbone and
    init='input' need them)."""
    from dds_jax.dds import optimize as opt
    if masks is None:
        masks = (seg_fn(jnp.asarray(inv["x_s"]), [jnp.asarray(f) for f in inv["feats_s"]]),
                 seg_fn(jnp.asarray(inv["x_t"]), [jnp.asarray(f) for f in inv["feats_t"]]))
    return opt.inputs_from_images(inv["x_s"], inv["x_t"], masks[0], masks[1], cfg, inv["w_s"], inv["w_t"])
