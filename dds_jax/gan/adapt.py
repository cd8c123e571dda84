"""Few-shot cross-domain adaptation of a StyleGAN2 (Ojha et al., CVPR 2021; DDS paper Sec. 3.1): make the
second generator of a dual-domain pair from ~10 images of the new domain (``python -m dds_jax.cli.adapt``).

The adapted generator starts from the source's weights and keeps the source's latent space (the CDC loss
keeps the pairwise similarity structure of the source); its discriminator starts from ``--source_d``
(convert a training checkpoint's ``d`` with ``convert/torch_to_flax.py --kind=discriminator``, or take
OUT/discriminator of ``python -m dds_jax.cli.train``) or, without it, from random weights. Images of any size
are centre-cropped and resized to the generator's resolution. OUT/generator is a dds-jax generator that
every other command accepts (e.g. ``--config.target_ckpt=runs/sketch/generator``).
"""
import dataclasses

import jax
from absl import logging

from dds_jax.gan import data, trainer
from dds_jax.gan import run as gan_run
from dds_jax.models import discriminator as disc
from dds_jax.models import stylegan2 as sg


def load_source_discriminator(path, g_config: sg.GeneratorConfig, key, patch_res: int = 0):
    """(config, params) of --source_d, or a random D mirroring the generator (with a warning).
    ``patch_res`` > 0 sets the resolution of the patch-level logits (a new patch head if it changes)."""
    d_config, params = _source_discriminator(path, g_config, key)
    if patch_res and patch_res != d_config.resolved_patch_res:
        d_config = dataclasses.replace(d_config, patch_res=int(patch_res))
        params = {k: v for k, v in params.items() if k != "patch_head"}
    return d_config, params


def _source_discriminator(path, g_config: sg.GeneratorConfig, key):
    if path is None:
        logging.warning("no --source_d: the discriminator starts from random weights (the original "
                        "starts from the source's discriminator)")
        d_config = trainer.default_d_config(g_config)
        return d_config, disc.init_params(d_config, key)
    d_config, _, params = disc.load_discriminator(path)
    if d_config.size != g_config.size:
        raise ValueError(f"{path}: discriminator for {d_config.size}x{d_config.size} images, the source "
                         f"generator makes {g_config.size}x{g_config.size}")
    return d_config, params


def run_adaptation(out, source: str, images: str, cfg: trainer.TrainConfig, steps: int,
                   source_d: str = None, seed: int = 0, resume: bool = False, overwrite: bool = False,
                   patch_res: int = 0, **loop):
    """Adapt the generator in ``source`` to the images in ``images``; returns the final state.

    ``patch_res``: resolution of the patch-level logits (0: the D's own, ``max(4, size // 8)``, the
    released 32x32 map at 256x256). A patch's receptive field is fixed in pixels, not in image fractions:
    at 32x32 the 4x4 map sees the whole image, so the "patch" loss of the iterations away from the anchors
    becomes an image-level loss on every latent and drags all of them to the 10 images (mode collapse);
    size // 2 gives patches about as local as the released ones."""
    if not cfg.adapt:
        raise ValueError("run_adaptation needs a TrainConfig with adapt=True (TrainConfig.few_shot())")
    gen = sg.load_generator(source)
    key = jax.random.PRNGKey(seed)
    d_config, d_params = load_source_discriminator(source_d, gen.config, jax.random.fold_in(key, 3), patch_res)
    reals = data.load_image_folder(images, gen.config.size)
    logging.info("adapting %s to %d images of %s", source, len(reals), images)
    spec = gan_run.RunSpec("adapt", gen.config, d_config, cfg, steps, seed=seed, data=str(images),
                           source=str(source))
    restore = gan_run.prepare_out(out, spec, resume, overwrite)
    models = trainer.Models(gen.config, d_config)
    state = trainer.init_state(models, cfg, key, g_params=gen.variables["params"], d_params=d_params)
    if restore:
        state = gan_run.restore_state(out, state)
        logging.info("resuming %s at iteration %d", out, int(state.step))
    source_variables = jax.tree_util.tree_map(jax.numpy.asarray, gen.variables)
    return gan_run.fit(out, spec, state, gen.variables["buffers"], data.folder_batches(reals, cfg.batch, seed),
                       source_variables, **loop)
