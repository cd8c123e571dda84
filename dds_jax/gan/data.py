"""Training images for the GAN: a folder of images (few-shot adaptation) or the package's procedural
renderer (the demo's base domain). Batch ``k`` depends only on (seed, k), so a resumed run sees the
same data as an uninterrupted one."""
import pathlib
from typing import Callable

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def center_crop_resize(im: Image.Image, size: int) -> np.ndarray:
    """Central square crop, then a Lanczos resize to ``size`` x ``size``: uint8 [size, size, 3]."""
    im = im.convert("RGB")
    w, h = im.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    im = im.crop((left, top, left + s, top + s))
    if s != size:
        im = im.resize((size, size), Image.LANCZOS)
    return np.asarray(im, np.uint8)


def load_image_folder(directory, size: int, min_images: int = 2) -> np.ndarray:
    """Every image file of ``directory`` (sorted by name), centre-cropped and resized to the generator's
    resolution, as float32 [N, size, size, 3] in [-1, 1]. Unreadable image files and folders with fewer
    than ``min_images`` images are errors that name the problem."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image folder not found: {directory}")
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < min_images:
        raise ValueError(f"{directory}: found {len(files)} image(s) ({', '.join(IMAGE_SUFFIXES)}); "
                         f"few-shot adaptation needs at least {min_images}")
    images = []
    for path in files:
        try:
            with Image.open(path) as im:
                images.append(center_crop_resize(im, size))
        except Exception as e:  # PIL raises many types for corrupt files
            raise ValueError(f"{path}: unreadable image ({type(e).__name__}: {e})") from e
    return np.stack(images).astype(np.float32) / 127.5 - 1.0


def folder_batches(images: np.ndarray, batch: int, seed: int = 0) -> Callable[[int], np.ndarray]:
    """``batch_at(k)``: ``batch`` images drawn without replacement (with, when there are fewer images)."""
    images = np.asarray(images, np.float32)

    def batch_at(step: int) -> np.ndarray:
        rng = np.random.default_rng([seed, int(step)])
        idx = rng.choice(len(images), batch, replace=len(images) < batch)
        return images[idx]
    return batch_at


def render_batches(style: str, batch: int, size: int, seed: int = 0) -> Callable[[int], np.ndarray]:
    """``batch_at(k)``: the k-th batch of procedurally rendered faces (``dds_jax.render``)."""
    from dds_jax import render

    def batch_at(step: int) -> np.ndarray:
        return next(render.batches(seed, batch, size, style, start=int(step)))
    return batch_at
