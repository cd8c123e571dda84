"""Small helpers shared by the command-line tools: seed lists, image files, grids."""
import os
import pathlib
import re
from typing import List, Sequence

import numpy as np
from PIL import Image

DEMO_DIR = pathlib.Path(__file__).parent / "assets" / "demo"
DEMO_PREFIX = "demo:"


def resolve_model_path(path) -> pathlib.Path:
    """A model directory; ``demo:<name>`` names one of the tiny models shipped with the package. Every
    command that takes a model (main, sample, segment, evaluate, ...) resolves its paths here."""
    path = str(path)
    if path.startswith(DEMO_PREFIX):
        name = path[len(DEMO_PREFIX):]
        p = DEMO_DIR / name
        if not name or not (p / "model.json").is_file():
            names = sorted(d.name for d in DEMO_DIR.iterdir() if (d / "model.json").is_file())
            raise FileNotFoundError(f"{path}: no such demo model; shipped: "
                                    f"{', '.join(DEMO_PREFIX + n for n in names)}")
        return p
    p = pathlib.Path(path).expanduser()
    if not (p / "model.json").is_file():
        raise FileNotFoundError(f"{path}: no converted model there (expected {p}/model.json); convert "
                                "a checkpoint with convert/torch_to_flax.py")
    return p


def parse_seeds(text: str) -> List[int]:
    """``"0-7"`` -> [0..7], ``"1,5,9"`` -> [1, 5, 9], ``"0-3,10"`` -> [0, 1, 2, 3, 10]."""
    seeds = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)-(\d+)", part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise ValueError(f"bad seed range {part!r}: end before start")
            seeds.extend(range(lo, hi + 1))
        elif re.fullmatch(r"\d+", part):
            seeds.append(int(part))
        else:
            raise ValueError(f"bad seed spec {part!r}: use a range like 0-7 or a list like 1,5,9")
    if not seeds:
        raise ValueError(f"no seeds in {text!r}")
    return seeds


def to_uint8(images, drange=(-1.0, 1.0)) -> np.ndarray:
    """Float images (any leading dims, HWC last) in ``drange`` -> uint8, clipped."""
    lo, hi = drange
    x = (np.asarray(images, np.float32) - lo) / (hi - lo)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def save_png(path, array: np.ndarray) -> None:
    """Write a uint8 HxW or HxWxC array as PNG atomically (temp file + rename)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(np.asarray(array)).save(tmp, format="PNG")
    os.replace(tmp, path)


def save_npy(path, array: np.ndarray) -> None:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.asarray(array))
    os.replace(tmp, path)


def read_image(path) -> np.ndarray:
    """An image file as uint8 array; a clear error when it is missing or unreadable."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGBA") if im.mode in ("P", "LA") else im).copy()
    except Exception as e:
        raise ValueError(f"{path}: unreadable image ({type(e).__name__}: {e})") from e


def make_grid(images: Sequence[np.ndarray], ncols: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """uint8 images of equal size (HxWx3) -> one grid image, row-major."""
    images = [np.asarray(im) for im in images]
    if not images:
        raise ValueError("make_grid needs at least one image")
    h, w = images[0].shape[:2]
    images = [im if im.ndim == 3 else np.repeat(im[..., None], 3, axis=-1) for im in images]
    nrows = (len(images) + ncols - 1) // ncols
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), fill, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y:y + h, x:x + w] = im[..., :3]
    return grid


def z_from_seeds(seeds: Sequence[int], style_dim: int) -> np.ndarray:
    """One latent z ~ N(0, I) per seed: ``default_rng(seed).standard_normal(style_dim)`` as float32
    (the same convention the parity fixtures use), shape [len(seeds), style_dim]. Every dds-jax command
    maps a seed to the same z, so seed 7 in ``sample``, ``segment`` and ``main`` is the same image."""
    return np.stack([np.random.default_rng(int(s)).standard_normal(style_dim).astype(np.float32)
                     for s in seeds])


def save_figure(fig, path, dpi: int = 120) -> None:
    """Write a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, path)
