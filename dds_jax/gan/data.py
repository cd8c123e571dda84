"""Training images for the GAN: a folder of images (few-shot adaptation) or the package's procedural
renderer (the demo's base domain). Batch ``k`` depends only on (seed, k), so a resumed run sees the
same data as an uninterrupted one."""
from typing import Callable

import numpy as np

from dds_jax import files

def load_image_folder(directory, size: int, min_images: int = 2) -> np.ndarray:
    """Every image file of ``directory`` (sorted by name), centre-cropped and resized to the generator's
    resolution, as float32 [N, size, size, 3] in [-1, 1]. Unreadable image files and folders with fewer
    than ``min_images`` images are errors that name the problem."""
    paths = files.image_files(directory)
    if len(paths) < min_images:
        raise ValueError(f"{directory}: found {len(paths)} image(s) ({', '.join(files.IMAGE_SUFFIXES)}); "
                         f"few-shot adaptation needs at least {min_images}")
    images = np.stack([files.read_square_image(p, size) for p in paths])
    return images.astype(np.float32) / 127.5 - 1.0


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
