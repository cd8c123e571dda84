"""The one-shot segmenter workflow (paper Sec. 3.2) behind ``python -m dds_jax.cli.segment`` and the
studio: sample images to label, train on the labelled samples, predict masks for any seeds.

  sample  -> OUT/seed_<N>.png and OUT/latents.npz (seeds, z, truncation and its mean latent)
  train   -> a segmenter model directory (FewShotCNN, RepurposingGAN's recipe)
  predict -> OUT/seed_<N>_mask.png and OUT/seed_<N>_overlay.png
"""
import pathlib
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dds_jax import checkpoint, files, generation, ops
from dds_jax.models import stylegan2 as sg
from dds_jax.segmentation import labels as label_io
from dds_jax.segmentation import oneshot as segmentation

COMMANDS = ("sample", "train", "predict")
LATENTS_FILE = "latents.npz"


# --------------------------------------------------------------------------------------------------
# Latents of a sample folder
# --------------------------------------------------------------------------------------------------
def save_latents(out_dir, seeds, z, truncation: float, w_avg) -> pathlib.Path:
    path = pathlib.Path(out_dir) / LATENTS_FILE
    files.save_npz(path, seeds=np.asarray(seeds, np.int64), z=np.asarray(z, np.float32),
                   truncation=np.float64(truncation), truncation_latent=np.asarray(w_avg, np.float32))
    return path


def load_latents(samples_dir) -> dict:
    path = pathlib.Path(samples_dir) / LATENTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: make the samples with `python -m dds_jax.cli.segment sample`")
    with np.load(path) as f:
        return {"seeds": [int(s) for s in f["seeds"]], "z": f["z"].astype(np.float32),
                "truncation": float(f["truncation"]), "truncation_latent": f["truncation_latent"]}


# --------------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------------
def _w_avg(gen, truncation: float, n: int, seed: int):
    if truncation >= 1:
        return jnp.zeros((gen.config.style_dim,), jnp.float32)
    return generation.truncation_mean(gen, jax.random.PRNGKey(seed), n)


def run_sample(ckpt, out, seeds="0-2", truncation=0.7, truncation_mean=4096, batch_size=8, noise_seed=0):
    """Images to label: ``out/seed_<N>.png`` + ``out/latents.npz`` (merged with an existing one)."""
    gen = sg.load_generator(checkpoint.resolve_model_path(ckpt))
    seed_list = files.parse_seeds(seeds)
    z = files.z_from_seeds(seed_list, gen.config.style_dim)
    w_avg = np.asarray(_w_avg(gen, truncation, truncation_mean, noise_seed))
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / LATENTS_FILE).is_file():
        old = load_latents(out)
        if old["z"].shape[1] != z.shape[1] or abs(old["truncation"] - truncation) > 1e-6 \
                or not np.allclose(old["truncation_latent"], w_avg):
            raise ValueError(f"{out} holds samples of another generator or truncation "
                             f"({old['truncation']}); choose another --out")
        keep = [i for i, s in enumerate(old["seeds"]) if s not in seed_list]
        seed_list = [old["seeds"][i] for i in keep] + seed_list
        z = np.concatenate([old["z"][keep], z])
    images = generation.generate(gen, z, truncation, w_avg if truncation < 1 else None, batch_size,
                                 features=False)
    for s, im in zip(seed_list, files.to_uint8(images)):
        files.save_png(out / f"seed_{s}.png", im)
    save_latents(out, seed_list, z, truncation, w_avg)
    return seed_list


def run_train(ckpt, samples, labels, parts, out, colors=None, seeds=None, size="S", epochs=100,
              lr=1e-3, weight_decay=1e-3, color_tolerance=0, train_seed=0, overwrite=False,
              progress=True, callback=None):
    """Train a segmenter on the labelled samples; returns the saved model's config. ``callback(epoch,
    loss)`` after every epoch (see :func:`segmentation.train_segmenter`)."""
    out_dir = pathlib.Path(out)       # checkpoint.save_model would refuse it, but only after training
    if not overwrite and ((out_dir / "model.json").exists() or (out_dir / "params").exists()):
        raise FileExistsError(f"{out} already holds a model: pass --overwrite to replace it, or choose "
                              "another --out")
    classes = label_io.parse_class_spec(parts)
    table = label_io.color_table(classes, label_io.parse_colors(colors))
    gen = sg.load_generator(checkpoint.resolve_model_path(ckpt))
    lat = load_latents(samples)
    paths = label_io.find_labels(labels, seeds)
    no_sample = [s for s in paths if s not in lat["seeds"]]
    if no_sample:
        raise ValueError(f"label(s) {[str(paths[s]) for s in no_sample]} have no sample in {samples} "
                         f"(sampled seeds: {lat['seeds']})")
    hw = (gen.config.size, gen.config.size)
    label_maps = np.stack([label_io.read_label(p, table, hw, color_tolerance) for p in paths.values()])
    for i, c in enumerate(classes):
        if not (label_maps == i + 1).any():
            raise ValueError(f"part {'+'.join(c)!r} (colour(s) {label_io.class_colors(classes, table)['+'.join(c)]}) "
                             f"has no pixel in any label ({', '.join(str(p) for p in paths.values())})")
    idx = [lat["seeds"].index(s) for s in paths]
    z = lat["z"][idx]
    truncation = lat["truncation"]
    w_avg = lat["truncation_latent"] if truncation < 1 else None
    images, _ = generation.generate(gen, z, truncation, w_avg)
    for s, im in zip(paths, files.to_uint8(images)):
        png = pathlib.Path(samples) / f"seed_{s}.png"
        if png.is_file():
            diff = np.abs(files.read_image(png)[..., :3].astype(np.float32) - im).mean()
            if diff > 2.0:
                raise ValueError(f"{png} differs from what --ckpt={ckpt} generates for seed {s} (mean |diff| "
                                 f"{diff:.1f}/255): the samples were made with another generator")
    names = ["+".join(c) for c in classes]
    config, params = segmentation.train_segmenter(
        gen, z, label_maps, n_class=len(classes) + 1, size=size, epochs=epochs, truncation=truncation,
        truncation_latent=w_avg, key=jax.random.PRNGKey(train_seed), lr=lr, weight_decay=weight_decay,
        parts=names, progress=progress, callback=callback)
    config["colors"] = label_io.class_colors(classes, table)
    config["training"].update({"seeds": list(paths), "labels": [str(p) for p in paths.values()]})
    checkpoint.save_model(out, "segmenter", config, params, overwrite=overwrite)
    return config


def overlay(image: np.ndarray, classes: np.ndarray, highlight: Sequence[int], alpha: float = 0.5) -> np.ndarray:
    """uint8 image with the ``highlight`` classes tinted (class k gets label_io.PALETTE[k-1])."""
    out = image.astype(np.float32)
    for k in highlight:
        if k == 0:
            continue
        rgb = np.array(label_io.parse_color(label_io.PALETTE[(k - 1) % len(label_io.PALETTE)]), np.float32)
        m = classes == k
        out[m] = (1 - alpha) * out[m] + alpha * rgb
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def run_predict(ckpt, seg, out, seeds="0-7", truncation=0.7, truncation_mean=4096, parts=None,
                batch_size=8, noise_seed=0):
    """Masks (``seed_<N>_mask.png``) and overlays (``seed_<N>_overlay.png``) for the seeds."""
    gen = sg.load_generator(checkpoint.resolve_model_path(ckpt))
    model = segmentation.load_segmenter(checkpoint.resolve_model_path(seg))
    segmentation.check_compatible(gen.config, model)
    selected = segmentation.parse_parts(parts, model) if parts else None
    seed_list = files.parse_seeds(seeds)
    z = files.z_from_seeds(seed_list, gen.config.style_dim)
    w_avg = _w_avg(gen, truncation, truncation_mean, noise_seed)
    forward = generation.forward_fn(gen.config, bool(getattr(gen.module, "fused", False)))
    size = (gen.config.size, gen.config.size)

    @jax.jit
    def predict(variables, params, zb, psi, w_avg):     # one batch: features never leave the device
        _, img, feats = forward(variables, zb, psi, w_avg, jax.random.PRNGKey(0))
        return img, jnp.argmax(model.module.apply({"params": params}, feats, size), axis=-1)

    psi = jnp.float32(min(truncation, 1.0))
    images, classes = ops.map_batches(
        lambda zb: predict(gen.variables, model.params, jnp.asarray(zb), psi, w_avg), z, batch_size)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for s, im, c in zip(seed_list, files.to_uint8(images), classes):
        if selected is not None:
            mask = np.isin(c, selected).astype(np.uint8) * 255
            highlight = selected
        elif model.n_class == 2:
            mask = (c == 1).astype(np.uint8) * 255
            highlight = [1]
        else:
            mask = c.astype(np.uint8)
            highlight = list(range(1, model.n_class))
        files.save_png(out / f"seed_{s}_mask.png", mask)
        files.save_png(out / f"seed_{s}_overlay.png", overlay(im, c, highlight))
    return seed_list
