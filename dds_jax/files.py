"""Files: every atomic write (temp file + rename, so a reader or a resumed run never sees half a file),
images, grids, GIFs, figures, JSON; seed lists and seed -> z."""
import contextlib
import json
import logging
import os
import pathlib
import re
from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """Yield a temporary path beside ``path`` (ending in ``suffix``, for writers that pick the format
    by extension); when the block succeeds it replaces ``path``, else it is removed."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.is_file():
            tmp.unlink()


def save_png(path, array: np.ndarray) -> None:
    """A uint8 HxW or HxWxC array as PNG."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(array)).save(tmp, format="PNG")


def save_npy(path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.asarray(array))


def save_npz(path, compressed: bool = False, **arrays) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def write_json(path, obj) -> None:
    """``obj`` as indented, key-sorted JSON (numpy scalars and arrays allowed)."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=_json_default)
        f.write("\n")


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        pathlib.Path(tmp).write_text(text)


def write_gif(path, frames: Sequence[np.ndarray], duration_s: float = 0.15) -> None:
    import imageio.v2 as imageio
    with atomic_path(path, ".gif") as tmp:
        imageio.mimsave(tmp, [np.asarray(f, np.uint8) for f in frames], duration=duration_s, loop=0)


def save_figure(fig, path, dpi: int = 120) -> None:
    """A matplotlib figure as PNG; the figure is closed."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)


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


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")
# PIL modes that convert to 8-bit RGB / greyscale without guessing a range (16-bit and float images do not)
_READABLE_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")


def image_files(directory, what: str = "image folder") -> List[pathlib.Path]:
    """The image files of ``directory`` (by suffix), sorted by name."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{what} not found: {directory}")
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


_LARGE_IMAGES_LOGGED = set()


@contextlib.contextmanager
def open_image(path):
    """``PIL.Image.open`` + ``load`` of an image as it is meant to be seen: EXIF orientation applied (a
    phone photo held upside down is turned upright), a GIF's first frame. PIL's decompression-bomb
    warning becomes one log line naming the file; errors name the file."""
    import warnings
    from PIL import ImageOps
    path = pathlib.Path(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            im = Image.open(path)
            im.load()
        with im:
            large = any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught)
            if large and str(path) not in _LARGE_IMAGES_LOGGED:
                _LARGE_IMAGES_LOGGED.add(str(path))
                logging.warning("%s: %dx%d pixels is a very large image; reading it takes much memory "
                                "(shrink it to save time)", path, *im.size)
            yield ImageOps.exif_transpose(im)
    except ValueError:
        raise
    except Image.DecompressionBombError:
        raise ValueError(f"{path}: more than {2 * Image.MAX_IMAGE_PIXELS} pixels, too many to read safely; "
                         "shrink the image") from None
    except Exception as e:  # PIL raises many types for corrupt files
        raise ValueError(f"{path}: unreadable image ({type(e).__name__}: {e})") from None


def image_size(path) -> Tuple[int, int]:
    """(width, height) of an image file as shown (EXIF orientation applied)."""
    with open_image(path) as im:
        return im.size


def read_square_image(path, size: int, min_size: int = 1, mask: bool = False) -> np.ndarray:
    """An image file centre-cropped to a square and resized to ``size``: uint8 [size, size, 3] (Lanczos),
    or with ``mask`` a bool [size, size] (nearest; grey > 127 = part). EXIF orientation is applied.
    Errors name the file: unreadable, an unsupported mode (16-bit, float), or a short side below
    ``min_size`` pixels."""
    path = pathlib.Path(path)
    with open_image(path) as im:
        if im.mode not in _READABLE_MODES:
            raise ValueError(f"{path}: image mode {im.mode!r} is not supported; save it as 8-bit RGB "
                             "or greyscale")
        w, h = im.size
        if min(w, h) < min_size:
            raise ValueError(f"{path}: {w}x{h} pixels is too small (the short side needs at least "
                             f"{min_size} pixels for a {size}x{size} generator)")
        im = im.convert("L" if mask else "RGB")
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        im = im.crop((left, top, left + s, top + s))
        if s != size:
            im = im.resize((size, size), Image.NEAREST if mask else Image.LANCZOS)
        a = np.asarray(im, np.uint8)
    return a > 127 if mask else a


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


