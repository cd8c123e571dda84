"""GAN inversion: the W+ latents whose images reproduce given images (pixel MSE, Adam), as one jitted
``lax.scan``. Used to put rendered images, whose true part masks are known, into a generator's latent
space: to label the one-shot segmenter's sample and to measure its IoU (``dds_jax.demo_models``)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dds_jax import segmentation
from dds_jax.models import stylegan2 as sg


@functools.lru_cache(maxsize=8)
def _invert_fn(config: sg.GeneratorConfig, steps: int, lr: float):
    G = sg.Generator(config)
    tx = optax.adam(lr)

    @jax.jit
    def run(variables, targets, w_init):
        def loss_fn(wplus):
            images, _ = G.apply(variables, wplus, input_is_latent=True)
            per_image = jnp.mean((images - targets) ** 2, axis=(1, 2, 3))
            return per_image.sum(), per_image          # images are independent: sum keeps each gradient

        def body(carry, _):
            wplus, opt = carry
            (_, per_image), grads = jax.value_and_grad(loss_fn, has_aux=True)(wplus)
            updates, opt = tx.update(grads, opt, wplus)
            return (optax.apply_updates(wplus, updates), opt), per_image.mean()
        (wplus, _), curve = jax.lax.scan(body, (w_init, tx.init(w_init)), None, length=steps)
        images, features = G.apply(variables, wplus, input_is_latent=True)
        return wplus, images, features, curve
    return run


def invert(gen: sg.LoadedGenerator, images, steps: int = 500, lr: float = 0.05, batch_size: int = 32):
    """images: uint8 [N, H, W, 3] (or float in [-1, 1]) at the generator's resolution.

    Starts every image at the mean w in all layers; optimises W+ against the pixel MSE with the
    checkpoint's fixed noise. Returns (wplus [N, n_latent, D], reconstructions [N, H, W, 3] in [-1, 1],
    features (list of [N, h, w, C]), per-image MSE [N]) as numpy arrays."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 127.5 - 1.0
    size = gen.config.size
    if images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise ValueError(f"images must be [N, {size}, {size}, 3] for this generator, got {images.shape}")
    w_avg = np.asarray(segmentation.truncation_mean(gen))
    run = _invert_fn(gen.config, int(steps), float(lr))
    outs = []
    for start in range(0, len(images), batch_size):
        chunk = jnp.asarray(images[start:start + batch_size], jnp.float32)
        w0 = jnp.broadcast_to(jnp.asarray(w_avg), (len(chunk), gen.config.n_latent, len(w_avg)))
        outs.append(jax.device_get(run(gen.variables, chunk, w0)[:3]))
    wplus = np.concatenate([o[0] for o in outs])
    recon = np.concatenate([o[1] for o in outs])
    feats = [np.concatenate(f) for f in zip(*[o[2] for o in outs])]
    mse = np.mean((recon - images) ** 2, axis=(1, 2, 3))
    return wplus, recon, feats, mse
