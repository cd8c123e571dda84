"""Checks on uploaded label masks: every refusal is one message naming the file and the remedy."""
import io
from typing import Tuple

import numpy as np

MAX_UPLOAD_BYTES = 4 * 1024 * 1024
# Modes a label may have: palette, grey, black/white, RGB(A). Not 16-bit, float, CMYK, ...
LABEL_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA")


class UploadError(ValueError):
    """A refused upload (the studio answers HTTP 400 with the message)."""


def read_upload_image(data: bytes, name: str, size: Tuple[int, int], max_bytes: int = MAX_UPLOAD_BYTES):
    """Uploaded bytes -> uint8 RGBA [H, W, 4]. ``size`` = (height, width) the image must have.

    Refuses: empty or larger than ``max_bytes``, not a PNG image, a mode other than
    :data:`LABEL_MODES`, another size."""
    from PIL import Image
    name = name or "upload"
    if not data:
        raise UploadError(f"{name}: the file is empty; choose a PNG label mask")
    if len(data) > max_bytes:
        raise UploadError(f"{name}: {len(data) / 2**20:.1f} MiB is too big (at most "
                          f"{max_bytes / 2**20:.0f} MiB); a {size[1]}x{size[0]} label PNG is a few KiB")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
        with Image.open(io.BytesIO(data)) as im:
            fmt, mode, (w, h) = im.format, im.mode, im.size
            if fmt != "PNG":
                raise UploadError(f"{name}: a {fmt} image; label masks must be PNG (lossless: exact colours)")
            if mode not in LABEL_MODES:
                raise UploadError(f"{name}: image mode {mode} is not supported; save the mask as an 8-bit "
                                  f"RGB, RGBA, grey or palette PNG")
            if (h, w) != tuple(size):
                raise UploadError(f"{name}: the mask is {w}x{h} pixels, the images are {size[1]}x{size[0]}; "
                                  "paint it at the image size")
            return np.asarray(im.convert("RGBA")).copy()
    except UploadError:
        raise
    except Exception as e:
        raise UploadError(f"{name}: not an image PIL can read ({type(e).__name__}); upload a PNG mask") from None
