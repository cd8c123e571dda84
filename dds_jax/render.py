"""A deterministic procedural data set of cartoon faces with their ground-truth part masks.

  python -m dds_jax.cli.render --out=/tmp/faces --n=64 --size=32 --style=photo --seed=0 --grid=/tmp/faces.png
  python -m dds_jax.cli.render --out=/tmp/sketch --n=10 --size=32 --style=sketch --seed=0

writes ``OUT/000000.png ...`` (RGB), ``OUT/masks/000000.png ...`` (uint8 part ids into ``PARTS``) and
``OUT/parts.json``; ``--grid`` also writes a contact sheet of the images.

Each face is a stack of implicit shapes (conics: ellipses, half-planes, a parabola) in the face's own
frame, evaluated on a ``supersample``-times finer grid and box-filtered down (anti-aliasing). Drawing
order, later on top: back hair (cut to a length) -> neck -> ears -> face (+ jaw) -> fringe (hair over the
top of the face, below a parabolic hair line that stays above the eyes) -> nose -> mouth (an open ellipse
or a smile crescent) -> eye whites, irises, pupils. The mask of an output pixel is the part covering most
of its sub-pixels. Part labels: the neck and the ears are ``skin``; irises and pupils are ``eyes``; the
fringe is ``hair``; eyebrows are not drawn.

Speed (numpy, one core): each conic is a quadratic in the pixel coordinates, evaluated for a whole chunk
of faces by one small matmul; eyes, nose and mouth are drawn on a window around them; the 10 drawing
layers are counted per output pixel in one pass (bit fields of a uint64).

Pose: translation (+-8% of the size), scale (+-12%), in-plane rotation (+-12 deg) and a "yaw" that shifts
eyes, nose and mouth together sideways inside the face (the nose further; the far eye narrower).

Styles (same geometry, same mask):

* ``photo``: flat colours -- background of any hue (with a gentle vertical gradient), natural or unusual
  hair colours, skin tones from light to dark with a little shading, white eyes with coloured irises,
  a darker-skin nose, a red/pink mouth;
* ``sketch``: a pencil line drawing -- warm near-white paper, graphite strokes ~1 output pixel wide on
  the boundaries of every region (computed on the supersampled layer map; the eyes get a light outline
  around a dark iris and pupil, which reads better at 32x32), hatched light-grey hair, a lightly
  shaded mouth.

Determinism: everything random is in ``sample_params``; ``render`` is a pure function of the parameters
in which every face is computed from its own parameters only (per-face matmuls and element-wise ops,
``math.cos``/``math.sin``, an integer hash for the pencil noise), so an image does not depend on the
batch it is rendered in (bit-identical on one machine; another BLAS may round a boundary sub-pixel
differently). ``render_faces(seed, n)`` draws faces in blocks of 256 from
``SeedSequence([seed, 0, block])`` (face i depends only on (seed, i)); ``batches`` seeds batch k from
``SeedSequence([seed, 1, k])`` (a different stream: the faces of ``batches(s)`` are not those of
``render_faces(s)``).
"""
import functools
import math
import pathlib
import sys
from typing import Dict, Iterator, Tuple

import numpy as np

PARTS = ("background", "hair", "skin", "eyes", "nose", "mouth")   # label ids 0..5 in this order
STYLES = ("photo", "sketch")

# Drawing layers (finer than parts: they get their own colours and sketch strokes between them).
BG, HAIR, NECK, EAR, FACE, EYE_WHITE, IRIS, PUPIL, NOSE, MOUTH = range(10)
N_LAYERS = 10
LAYER_PART = np.array([0, 1, 2, 2, 2, 3, 3, 3, 4, 5], np.int64)

_SAMPLE_BLOCK = 256        # render_faces samples faces in blocks of this many (defines the data set)
_RENDER_BLOCK = 256        # render prepares this many faces at a time ...
_CHUNK_BYTES = 1 << 20     # ... and draws them in chunks of this many bytes of supersampled float32

# --- parameters -----------------------------------------------------------------------------------------

_SKIN_TONES = np.array([[252, 224, 200], [236, 190, 155], [214, 160, 120], [180, 122, 84],
                        [138, 90, 60], [96, 62, 42]], np.float64) / 255.0
_HAIR_COLOURS = np.array([[28, 24, 24], [62, 40, 28], [112, 72, 42], [218, 184, 112],
                          [160, 66, 32], [178, 176, 178]], np.float64) / 255.0
_HAIR_P = np.array([0.22, 0.2, 0.18, 0.15, 0.1, 0.08, 0.07])          # last: unusual (random hue)
_IRIS_COLOURS = np.array([[66, 42, 28], [104, 66, 38], [60, 100, 160], [70, 112, 64],
                          [96, 106, 118], [28, 28, 34]], np.float64) / 255.0
_MOUTH_COLOURS = np.array([[196, 52, 64], [226, 110, 124], [150, 36, 48], [206, 84, 84]],
                          np.float64) / 255.0


def _hsv_to_rgb(h, s, v):
    """Vectorised HSV (all in [0, 1]) -> RGB [..., 3]."""
    h6 = (np.asarray(h) % 1.0) * 6.0
    c = v * s
    x = c * (1.0 - np.abs(h6 % 2.0 - 1.0))
    m = v - c
    z = np.zeros_like(c)
    sector = np.minimum(h6.astype(np.int64), 5)
    table = np.stack([np.stack([c, x, z], -1), np.stack([x, c, z], -1), np.stack([z, c, x], -1),
                      np.stack([z, x, c], -1), np.stack([x, z, c], -1), np.stack([c, z, x], -1)], 0)
    rgb = np.take_along_axis(table, sector[None, ..., None].repeat(3, -1), 0)[0]
    return rgb + m[..., None]


def sample_params(rng: np.random.Generator, n: int) -> Dict[str, np.ndarray]:
    """``n`` random faces: a dict of float64 arrays with leading dim ``n`` (colours [n, 3] in [0, 1]).

    Lengths are in normalised image units (the image spans [-1, 1]); shape sizes scale with the face.
    """
    u = lambda lo, hi: rng.uniform(lo, hi, n)        # noqa: E731
    p = {}
    # pose
    p["tx"] = u(-0.16, 0.16)
    p["ty"] = 0.06 + u(-0.16, 0.16)
    p["scale"] = u(0.88, 1.12)
    p["rot"] = np.deg2rad(u(-12.0, 12.0))
    p["yaw"] = u(-1.0, 1.0)
    # face
    ry = u(0.53, 0.63)
    rx = ry * u(0.72, 0.9)
    p["face_rx"], p["face_ry"] = rx, ry
    p["jaw_cy"] = ry * u(0.1, 0.35)
    p["jaw_rx"] = rx * u(0.72, 0.96)
    p["jaw_ry"] = ry * u(0.97, 1.08) - p["jaw_cy"]
    p["ears"] = (rng.random(n) < 0.75).astype(np.float64)
    p["ear_cy"] = ry * u(-0.05, 0.15)
    p["ear_rx"] = ry * u(0.13, 0.18)
    p["ear_ry"] = ry * u(0.2, 0.28)
    p["neck_rx"] = rx * u(0.42, 0.6)
    # hair: 0 short, 1 medium, 2 long
    style = rng.choice(3, n, p=[0.35, 0.35, 0.3])
    p["hair_style"] = style.astype(np.float64)
    top = -ry * (1.0 + np.where(style == 0, u(0.06, 0.16), u(0.1, 0.3)))
    cy = ry * np.choose(style, [u(-0.2, -0.05), u(-0.05, 0.15), u(0.1, 0.4)])
    p["hair_cy"] = cy
    p["hair_ry"] = cy - top
    p["hair_rx"] = rx * np.choose(style, [u(1.05, 1.14), u(1.1, 1.3), u(1.12, 1.4)])
    p["hair_len"] = ry * np.choose(style, [u(-0.35, 0.05), u(0.25, 0.65), u(0.9, 1.7)])
    p["hairline_v0"] = -ry * u(0.35, 0.85)                      # hair line height at its apex
    p["hairline_u0"] = rx * u(-0.35, 0.35)                      # apex sideways (a side parting)
    p["hairline_k"] = u(0.6, 3.0) / ry                          # curvature (down towards the temples)
    cut = ry * u(-0.1, 0.15)                                    # the fringe never reaches below this
    # eyes (the yaw shift is applied in render)
    erx = ry * u(0.16, 0.21)
    p["eye_rx"] = erx
    p["eye_ry"] = erx * u(0.55, 0.85)
    p["eye_sep"] = rx * u(0.36, 0.48)
    p["eye_v"] = ry * u(-0.16, 0.04)
    p["iris_r"] = np.minimum(p["eye_ry"] * u(0.8, 1.05), erx * 0.62)
    p["pupil_r"] = p["iris_r"] * u(0.4, 0.6)
    p["hairline_cut"] = np.minimum(cut, p["eye_v"] - p["eye_ry"] - 0.05 * ry)     # ... nor the eyes
    p["gaze_u"] = (erx - p["iris_r"]) * u(-0.6, 0.6)
    p["gaze_v"] = p["eye_ry"] * u(-0.15, 0.15)
    # nose
    p["nose_v"] = ry * u(0.14, 0.3)
    p["nose_rx"] = ry * u(0.11, 0.15)
    p["nose_ry"] = ry * u(0.11, 0.18)
    # mouth: open ellipse or smile crescent (the ellipse minus itself shifted up)
    smile = rng.random(n) < 0.5
    p["smile"] = smile.astype(np.float64)
    p["mouth_v"] = ry * u(0.46, 0.6)
    p["mouth_rx"] = rx * u(0.3, 0.46)
    p["mouth_ry"] = np.where(smile, ry * u(0.16, 0.26), ry * u(0.08, 0.18))
    p["smile_t"] = ry * u(0.15, 0.22)
    # colours
    bg_h, bg_s, bg_v = u(0.0, 1.0), u(0.25, 0.6), u(0.45, 0.92)
    p["bg_rgb"] = _hsv_to_rgb(bg_h, bg_s, bg_v)
    p["bg_grad"] = u(-0.2, 0.2)
    t = u(0.0, 1.0) * (len(_SKIN_TONES) - 1)
    i = np.minimum(t.astype(np.int64), len(_SKIN_TONES) - 2)
    f = (t - i)[:, None]
    skin = _SKIN_TONES[i] * (1 - f) + _SKIN_TONES[i + 1] * f
    p["skin_rgb"] = np.clip(skin + rng.uniform(-0.03, 0.03, (n, 3)), 0.0, 1.0)
    hk = rng.choice(len(_HAIR_P), n, p=_HAIR_P)
    odd = _hsv_to_rgb(u(0.0, 1.0), u(0.55, 0.9), u(0.5, 0.9))
    hair = np.where((hk == 6)[:, None], odd, _HAIR_COLOURS[np.minimum(hk, 5)])
    p["hair_rgb"] = np.clip(hair * u(0.85, 1.15)[:, None], 0.0, 1.0)
    p["iris_rgb"] = _IRIS_COLOURS[rng.integers(0, len(_IRIS_COLOURS), n)] * u(0.85, 1.15)[:, None]
    p["mouth_rgb"] = np.clip(_MOUTH_COLOURS[rng.integers(0, len(_MOUTH_COLOURS), n)]
                             + rng.uniform(-0.04, 0.04, (n, 3)), 0.0, 1.0)
    # sketch style
    p["paper_rgb"] = np.clip(np.array([0.965, 0.945, 0.9]) + rng.uniform(-0.03, 0.025, (n, 3)), 0.0, 1.0)
    p["pencil"] = u(0.75, 0.95)
    p["hatch_angle"] = np.deg2rad(u(20.0, 160.0))
    p["hatch_period"] = u(0.12, 0.2)
    p["hatch_amp"] = u(0.2, 0.4)
    p["hair_fill"] = u(0.06, 0.2)
    p["noise_seed"] = rng.integers(0, 2 ** 31, n).astype(np.float64)
    return p


# --- geometry ---------------------------------------------------------------------------------------------

def _cos_sin(a):
    """cos/sin per element with the math module (bit-identical for any array length)."""
    a = np.asarray(a, np.float64)
    return (np.array([math.cos(v) for v in a], np.float64), np.array([math.sin(v) for v in a], np.float64))


@functools.lru_cache(maxsize=8)
def _grid(res: int) -> np.ndarray:
    """Pixel-centre coordinates in [-1, 1] of a ``res``-pixel axis (float64 [res], read-only)."""
    c = (np.arange(res, dtype=np.float64) + 0.5) / res * 2.0 - 1.0
    c.setflags(write=False)
    return c


class _Frame:
    """Per-image similarity transforms, local (u right, v down) -> image, on a ``res`` x ``res`` grid.

    A conic ``a u^2 + b v^2 + c u + d v + e`` of the local frame is, in image coordinates, a quadratic
    ``sum_ij M_ij y^i x^j`` (i + j <= 2) of the row and column coordinates y and x, i.e. the matrix
    ``Y @ (M @ X^T)`` with ``Y = [1, y, y^2]`` [H, 3] and ``X = [1, x, x^2]`` [W, 3]: one small matmul
    per shape and image, with ``Y`` shared by all shapes.
    """

    def __init__(self, tx, ty, scale, cos, sin, res):
        self.tx, self.ty, self.cos, self.sin = tx, ty, cos, sin
        self.inv = 1.0 / scale
        self.n = len(tx)
        self.coord = _grid(res)

    def factors(self, coefs, xs=None, ys=None):
        """Factors of a stack of conics ``coefs`` [S, 5, n] on the full grid, or on per-image windows
        with column / row coordinates ``xs`` [n, W'] / ``ys`` [n, H']: ``Y`` ([H, 3] or [n, H', 3]) and
        ``B`` [S, n, 3, W'] (float32); the conic values are ``matmul(Y, B)``."""
        a, b, c, d, e = (coefs[:, i, :] for i in range(5))                      # each [S, n]
        C, S, inv, tx, ty = self.cos, self.sin, self.inv, self.tx, self.ty
        kxy = 2.0 * C * S * (a - b) * inv * inv
        ax, bx = (a * C * C + b * S * S) * inv * inv, (c * C - d * S) * inv      # in (x - tx)
        ay, by = (a * S * S + b * C * C) * inv * inv, (c * S + d * C) * inv      # in (y - ty)
        # the conic is sum_ij M_ij y^i x^j with M = [[m00, m01, m02], [m10, m11, 0], [m20, 0, 0]]
        m00 = (ax * tx - bx) * tx + kxy * tx * ty + e + (ay * ty - by) * ty
        m01 = bx - 2.0 * ax * tx - kxy * ty                                      # x
        m02 = ax                                                                 # x^2
        m10 = by - 2.0 * ay * ty - kxy * tx                                      # y
        m11 = kxy                                                                # x y
        m20 = ay                                                                 # y^2
        r = np.broadcast_to(self.coord, (self.n, len(self.coord))) if xs is None else xs   # [n, W']
        col = lambda t: t[..., None]                                             # noqa: E731
        B = np.empty(a.shape + (3, r.shape[-1]), np.float32)                     # rows: M @ [1, x, x^2]
        B[:, :, 0] = (col(m02) * r + col(m01)) * r + col(m00)
        B[:, :, 1] = col(m11) * r + col(m10)
        B[:, :, 2] = col(m20)
        ys = self.coord if ys is None else ys
        Y = np.stack([np.ones_like(ys), ys, ys * ys], -1).astype(np.float32)     # [H, 3] or [n, H', 3]
        return Y, B

    def eval(self, coefs):
        """A stack of conics [S, 5, n] evaluated on the grid: float32 [S, n, H, W]."""
        Y, B = self.factors(coefs)
        return np.matmul(Y, B)

    def bbox(self, cu, cv, ru, rv):
        """Image-space bounding box (x0, x1, y0, y1) of local ellipses, in [-1, 1] coordinates."""
        C, S, sc = self.cos, self.sin, 1.0 / self.inv
        x = self.tx + sc * (C * cu - S * cv)
        y = self.ty + sc * (S * cu + C * cv)
        hx = sc * np.sqrt((ru * C) ** 2 + (rv * S) ** 2)
        hy = sc * np.sqrt((ru * S) ** 2 + (rv * C) ** 2)
        return x - hx, x + hx, y - hy, y + hy


def _stack_coefs(shapes, n: int) -> np.ndarray:
    """A list of conic coefficient lists (scalars or [n] arrays) -> float64 [S, 5, n]."""
    return np.stack([np.stack([np.broadcast_to(np.asarray(t, np.float64), (n,)) for t in c]) for c in shapes])


def _ellipse(cu, cv, ru, rv, on=None):
    """Conic coefficients of the ellipse ((u-cu)/ru)^2 + ((v-cv)/rv)^2 - 1 (< 0 inside); where
    ``on`` is 0, the constant 1 (empty)."""
    a, b = 1.0 / (ru * ru), 1.0 / (rv * rv)
    coefs = [a, b, -2.0 * cu * a, -2.0 * cv * b, cu * cu * a + cv * cv * b - 1.0]
    if on is not None:
        off = np.asarray(on) == 0
        coefs = [np.where(off, 0.0, t) for t in coefs[:4]] + [np.where(off, 1.0, coefs[4])]
    return coefs


def _below(v0):
    """v - v0 (< 0 above the line v = v0)."""
    return [0.0, 0.0, 0.0, 1.0, -np.asarray(v0, np.float64)]


def _features(p):
    """Derived per-image geometry (float64 arrays)."""
    g = dict(p)
    shift = 0.2 * p["face_rx"] * p["yaw"]
    g["eye_u_l"] = -p["eye_sep"] + shift
    g["eye_u_r"] = p["eye_sep"] + shift
    g["eye_rx_l"] = p["eye_rx"] * (1.0 + 0.12 * p["yaw"])
    g["eye_rx_r"] = p["eye_rx"] * (1.0 - 0.12 * p["yaw"])
    g["nose_u"] = 1.4 * shift
    g["mouth_u"] = 1.1 * shift
    return g


def _shapes(g):
    """The conics of a face: (outer shapes, inner shapes) in drawing order; ``_draw_base`` and
    ``_draw_inner`` combine them."""
    zero = np.zeros(len(g["tx"]))
    k, u0, v0 = g["hairline_k"], g["hairline_u0"], g["hairline_v0"]
    outer = {
        "hair": _ellipse(zero, g["hair_cy"], g["hair_rx"], g["hair_ry"]),
        "hair_cut": _below(g["hair_len"]),
        "neck": [1.0 / g["neck_rx"] ** 2, 0.0, 0.0, 0.0, -1.0],           # |u| < neck_rx
        "neck_top": _below(0.4 * g["face_ry"]),
        "ear_l": _ellipse(-0.97 * g["face_rx"], g["ear_cy"], g["ear_rx"], g["ear_ry"], g["ears"]),
        "ear_r": _ellipse(0.97 * g["face_rx"], g["ear_cy"], g["ear_rx"], g["ear_ry"], g["ears"]),
        "face": _ellipse(zero, zero, g["face_rx"], g["face_ry"]),
        "jaw": _ellipse(zero, g["jaw_cy"], g["jaw_rx"], g["jaw_ry"]),
        "hairline": [-k, 0.0, 2.0 * k * u0, 1.0, -v0 - k * u0 * u0],        # v < v0 + k (u - u0)^2
        "fringe_cut": _below(g["hairline_cut"]),
    }
    inner = {}
    for s in ("l", "r"):
        eu, erx = g["eye_u_" + s], g["eye_rx_" + s]
        iu, iv = eu + g["gaze_u"], g["eye_v"] + g["gaze_v"]
        inner["eye_" + s] = _ellipse(eu, g["eye_v"], erx, g["eye_ry"])
        inner["iris_" + s] = _ellipse(iu, iv, g["iris_r"], g["iris_r"])
        inner["pupil_" + s] = _ellipse(iu, iv, g["pupil_r"], g["pupil_r"])
    inner["nose"] = _ellipse(g["nose_u"], g["nose_v"], g["nose_rx"], g["nose_ry"])
    inner["mouth"] = _ellipse(g["mouth_u"], g["mouth_v"], g["mouth_rx"], g["mouth_ry"])
    inner["smile"] = _ellipse(g["mouth_u"], g["mouth_v"] - g["smile_t"], g["mouth_rx"] * 1.04, g["mouth_ry"],
                              g["smile"])
    return outer, inner


def _inner_bbox(g, frame: "_Frame"):
    """Image-space box (x0, x1, y0, y1) of everything ``_draw_inner`` draws (irises and the smile are
    clipped to the eye whites and the mouth)."""
    boxes = [frame.bbox(g["eye_u_" + s], g["eye_v"], g["eye_rx_" + s], g["eye_ry"]) for s in ("l", "r")]
    boxes.append(frame.bbox(g["nose_u"], g["nose_v"], g["nose_rx"], g["nose_ry"]))
    boxes.append(frame.bbox(g["mouth_u"], g["mouth_v"], g["mouth_rx"], g["mouth_ry"]))
    return (np.min([b[0] for b in boxes], 0), np.max([b[1] for b in boxes], 0),
            np.min([b[2] for b in boxes], 0), np.max([b[3] for b in boxes], 0))


# The window (fraction of the grid; ``_render_block`` adds 3 sub-pixels) that holds the inner features of
# a face: their box is at most 0.435 x 0.417 of the image in 200k faces of ``sample_params`` (median
# 0.30 x 0.27). Faces that do not fit (not seen there, possible in principle) are drawn on the full grid.
_WIN_W, _WIN_H = 0.44, 0.42


def _windows(box, res: int, ww: int, wh: int):
    """Per-face window origins (ox, oy) (ints) on a ``res`` grid and whether the box fits its window.

    ``box`` = (x0, x1, y0, y1) in [-1, 1]; sub-pixels with centres in it (plus one on each side, for
    rounding) must lie in the window, or outside the grid."""
    out = []
    for lo, hi, size in ((box[0], box[1], ww), (box[2], box[3], wh)):
        a = np.ceil((lo + 1.0) * 0.5 * res - 0.5) - 1          # first / last sub-pixel index needed
        b = np.floor((hi + 1.0) * 0.5 * res - 0.5) + 1
        o = np.clip(a - np.floor((size - (b - a + 1)) / 2), 0, res - size)
        out.append((o.astype(np.int64), (np.maximum(a, 0) >= o) & (np.minimum(b, res - 1) <= o + size - 1)))
    (ox, fx), (oy, fy) = out
    return ox, oy, fx & fy


class _Buffers:
    def __init__(self, shape):
        self.q = np.empty(shape, np.float32)
        self.m, self.m2, self.m3 = (np.empty(shape, bool) for _ in range(3))


def _inside(factors, name, sl, buf, out):
    Y, B = factors[name]
    return np.less(np.matmul(Y if Y.ndim == 2 else Y[sl], B[sl], out=buf.q), 0.0, out=out)


def _draw_base(factors, sl, layer: np.ndarray) -> None:
    """Hair, neck, ears, face and fringe into the layer map ``layer`` [n, res, res] (zeros)."""
    buf = _Buffers(layer.shape)
    m, m2, face = buf.m, buf.m2, buf.m3
    inside = lambda name, out: _inside(factors, name, sl, buf, out)         # noqa: E731
    # back hair, cut to its length
    inside("hair", m)
    m &= inside("hair_cut", m2)
    np.copyto(layer, HAIR, where=m)
    # neck: |u| < neck_rx, v > 0.4 ry
    inside("neck", m)
    m &= ~inside("neck_top", m2)
    np.copyto(layer, NECK, where=m)
    for side in ("ear_l", "ear_r"):
        np.copyto(layer, EAR, where=inside(side, m))
    inside("face", face)
    face |= inside("jaw", m)
    np.copyto(layer, FACE, where=face)
    # fringe: the face above the hair line and above the cut
    inside("hairline", m)
    m &= face
    m &= inside("fringe_cut", m2)
    np.copyto(layer, HAIR, where=m)


def _draw_inner(factors, sl, layer: np.ndarray, phase: str) -> None:
    """Inner features over ``layer`` (the full map or per-image windows of it, matching the grid of
    ``factors``): phase "nose_mouth", then phase "eyes" (sketch strokes are traced in between)."""
    buf = _Buffers(layer.shape)
    m, m2, eye = buf.m, buf.m2, buf.m3
    inside = lambda name, out: _inside(factors, name, sl, buf, out)         # noqa: E731
    if phase == "nose_mouth":
        np.copyto(layer, NOSE, where=inside("nose", m))
        # mouth: ellipse, minus itself shifted up for a smile
        inside("mouth", m)
        m &= ~inside("smile", m2)
        np.copyto(layer, MOUTH, where=m)
        return
    for s in ("l", "r"):    # white, iris and pupil (clipped to the white)
        np.copyto(layer, EYE_WHITE, where=inside("eye_" + s, eye))
        inside("iris_" + s, m)
        m &= eye
        np.copyto(layer, IRIS, where=m)
        inside("pupil_" + s, m)
        m &= eye
        np.copyto(layer, PUPIL, where=m)


def _box_sum(a: np.ndarray, s: int, dtype, sx: int = None) -> np.ndarray:
    """Sum over s (rows) x sx (columns, default s) blocks of the last two axes."""
    sx = s if sx is None else sx
    r = a[:, :, 0::sx].astype(dtype, copy=sx > 1)
    for j in range(1, sx):
        r += a[:, :, j::sx]
    if s == 1:
        return r
    out = r[:, 0::s].copy()
    for j in range(1, s):
        out += r[:, j::s]
    return out


@functools.lru_cache(maxsize=4)
def _count_luts(bits: int):
    """Bit-field counters: ``lut[k]`` has 1 in layer k's field; ``pairs[a + 256 b] = lut[a] + lut[b]``
    counts two neighbouring sub-pixels at once (a uint8 pair read as one little-endian uint16)."""
    lut = np.left_shift(np.uint64(1), np.arange(N_LAYERS, dtype=np.uint64) * np.uint64(bits))
    full = np.zeros(256, np.uint64)
    full[:N_LAYERS] = lut
    pairs = (full[None, :] + full[:, None]).reshape(-1)            # index b * 256 + a
    return lut, pairs


def _layer_counts(layer: np.ndarray, s: int) -> np.ndarray:
    """Sub-pixels of each output pixel in each layer: uint16 [N_LAYERS, n, h, w]."""
    bits = (s * s).bit_length()
    if bits * N_LAYERS > 64:
        return np.stack([_box_sum(layer == k, s, np.uint16) for k in range(N_LAYERS)])
    # count all layers at once: one bit field per layer in a uint64
    lut, pairs = _count_luts(bits)
    if s % 2 == 0 and sys.byteorder == "little":
        packed = _box_sum(pairs[np.ascontiguousarray(layer).view(np.uint16)], s, np.uint64, s // 2)
    else:
        packed = _box_sum(lut[layer], s, np.uint64)
    low = np.uint64((1 << bits) - 1)
    return np.stack([((packed >> np.uint64(k * bits)) & low).astype(np.uint16) for k in range(N_LAYERS)])


def _edge_fraction(layer: np.ndarray, s: int) -> np.ndarray:
    """Per output pixel: sub-pixels on a region boundary (region differs from the right or lower
    neighbour), divided by s -- about 1 where a boundary crosses the pixel. float32 [n, h, w].
    ``_render_block`` calls it before the eyes are drawn: at 32x32 a full-strength eye outline would
    blacken the whole eye, so ``_colour`` gives the eyes a light outline and a dark iris instead."""
    e = np.zeros(layer.shape, bool)
    np.not_equal(layer[:, :, 1:], layer[:, :, :-1], out=e[:, :, :-1])
    e[:, :-1, :] |= layer[:, 1:, :] != layer[:, :-1, :]
    if s in _SWAR and sys.byteorder == "little":
        # s neighbouring booleans as the bytes of one integer: sum s rows (each byte <= s), then add
        # the bytes up with a multiply (the total, <= s^2, lands in the top byte)
        dtype, ones = _SWAR[s]
        v = _box_sum(e.view(dtype), s, dtype, 1)
        count = (v * ones) >> dtype(8 * (s - 1))
    else:
        count = _box_sum(e, s, np.uint16)
    return count.astype(np.float32) * np.float32(1.0 / s)


_SWAR = {2: (np.uint16, np.uint16(0x0101)), 4: (np.uint32, np.uint32(0x01010101)),
         8: (np.uint64, np.uint64(0x0101010101010101))}


def _hash_noise(seed, size: int) -> np.ndarray:
    """Deterministic per-pixel uniform noise in [0, 1) from an integer hash: float32 [n, size, size]."""
    i = np.arange(size, dtype=np.uint32)
    h = (i[None, :, None] * np.uint32(0x9E3779B1)) ^ (i[None, None, :] * np.uint32(0x85EBCA77))
    h = h ^ (np.asarray(seed).astype(np.uint32)[:, None, None] * np.uint32(0xC2B2AE3D))
    for mul in (0x7FEB352D, 0x846CA68B):
        h ^= h >> np.uint32(16)
        h *= np.uint32(mul)
    h ^= h >> np.uint32(16)
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def _colour(p, frac, edges, size: int, style: str, cos, sin) -> np.ndarray:
    """Output-resolution compositing: layer fractions [L, n, h, w] (overwritten) and, for sketches, the
    boundary fractions [n, h, w] -> uint8 images [n, h, w, 3]."""
    n = len(p["tx"])
    f32 = lambda a: np.asarray(a, np.float32)                                # noqa: E731
    per_image = lambda a: f32(a)[:, None, None]                              # noqa: E731
    coord = _grid(size)
    if style == "photo":
        skin = p["skin_rgb"]
        col = f32(np.stack([p["bg_rgb"], p["hair_rgb"], skin * 0.84, skin * 0.93, skin,
                            np.full_like(skin, 0.96), p["iris_rgb"], np.full_like(skin, 0.06),
                            skin * np.array([0.74, 0.64, 0.62]), p["mouth_rgb"]]))     # [L, n, 3]
        # background: a vertical gradient; face: darker towards the outline (weights changed in place)
        frac[BG] *= np.float32(1.0) + f32(coord)[None, :, None] * per_image(p["bg_grad"])
        qf = _Frame(p["tx"], p["ty"], p["scale"], cos, sin, size).eval(_stack_coefs(
            [_ellipse(0.0, 0.0, p["face_rx"], p["face_ry"])], n))[0]
        shade = np.clip(qf + np.float32(1.0), 0.0, 1.0)
        frac[FACE] *= np.float32(1.0) - np.float32(0.16) * shade * shade
        img = np.matmul(frac.reshape(N_LAYERS, n, size * size).transpose(1, 2, 0),
                        np.ascontiguousarray(col.transpose(1, 0, 2))).reshape(n, size, size, 3)
    else:
        noise = _hash_noise(p["noise_seed"], size)
        # hair hatching: a triangle wave across the direction hatch_angle
        hc, hs = _cos_sin(p["hatch_angle"])
        c32 = f32(coord)
        t = (c32[None, None, :] * per_image(hc / p["hatch_period"])
             + c32[None, :, None] * per_image(hs / p["hatch_period"]))
        t -= np.floor(t)
        t -= np.float32(0.5)
        hatch = np.clip(np.float32(1.5) - np.float32(3.0) * np.abs(t), 0.0, 1.0)   # 1/3 of a period dark
        hatch *= per_image(p["hatch_amp"])
        hatch += per_image(p["hair_fill"])
        fill = frac[HAIR] * hatch
        for k, dark in ((IRIS, 0.85), (PUPIL, 0.97), (MOUTH, 0.22)):
            fill += np.float32(dark) * frac[k]
        np.clip(fill, 0.0, 1.0, out=fill)
        eye = frac[EYE_WHITE] + frac[IRIS] + frac[PUPIL]
        stroke = np.float32(2.4) * eye * (np.float32(1.0) - eye)            # a light outline around the eyes
        stroke += np.float32(0.85) * edges
        np.clip(stroke, 0.0, 1.0, out=stroke)
        stroke *= per_image(p["pencil"]) * (np.float32(0.8) + np.float32(0.2) * noise)
        keep = (np.float32(1.0) - fill) * (np.float32(1.0) - stroke)        # 1 - alpha
        shade = np.float32(1.0) - np.float32(0.025) * noise
        img = np.empty((n, size, size, 3), np.uint8)
        for ch, graphite in enumerate((0.16, 0.16, 0.19)):
            v = per_image(p["paper_rgb"][:, ch] - graphite) * shade
            v *= keep
            v += np.float32(graphite)
            img[..., ch] = np.clip(np.rint(v * np.float32(255.0)), 0, 255)
        return img
    return np.clip(np.rint(img * np.float32(255.0)), 0, 255).astype(np.uint8)


def _part_argmax(counts: np.ndarray) -> np.ndarray:
    """Layer counts [L, n, h, w] -> the part with the most sub-pixels, uint8 [n, h, w] (ties: lower id):
    the maximum of ``count * 8 + (7 - part)`` over the parts."""
    best = None
    for part in range(len(PARTS)):
        layers = np.flatnonzero(LAYER_PART == part)
        key = counts[layers[0]].astype(np.uint32)
        for k in layers[1:]:
            key += counts[k]
        key <<= np.uint32(3)
        key |= np.uint32(7 - part)
        best = key if best is None else np.maximum(best, key, out=best)
    return (np.uint32(7) - (best & np.uint32(7))).astype(np.uint8)


def _render_block(p, size: int, style: str, s: int) -> Tuple[np.ndarray, np.ndarray]:
    n = len(p["tx"])
    res = size * s
    cos, sin = _cos_sin(p["rot"])
    g = _features(p)
    outer, inner = _shapes(g)
    frame = _Frame(p["tx"], p["ty"], p["scale"], cos, sin, res)
    Y, B = frame.factors(_stack_coefs(outer.values(), n))
    f_outer = {k: (Y, B[j]) for j, k in enumerate(outer)}
    # inner features on a fixed-size window per image around them (the same for every batch)
    ww, wh = (min(res, math.ceil(f * res) + 3) for f in (_WIN_W, _WIN_H))
    ox, oy, fits = _windows(_inner_bbox(g, frame), res, ww, wh)
    coord = frame.coord
    Y, B = frame.factors(_stack_coefs(inner.values(), n), xs=coord[ox[:, None] + np.arange(ww)],
                         ys=coord[oy[:, None] + np.arange(wh)])
    f_win = {k: (Y, B[j]) for j, k in enumerate(inner)}
    f_full = None
    if not fits.all():   # parameters from outside sample_params' ranges: draw those faces on the full grid
        Y, B = frame.factors(_stack_coefs(inner.values(), n))
        f_full = {k: (Y, B[j]) for j, k in enumerate(inner)}

    counts = np.empty((N_LAYERS, n, size, size), np.uint16)
    edges = np.empty((n, size, size), np.float32) if style == "sketch" else None
    chunk = max(1, _CHUNK_BYTES // (4 * res * res))
    for i in range(0, n, chunk):
        idx = np.arange(i, min(n, i + chunk))
        rows = slice(i, i + len(idx))
        layer = np.zeros((len(idx), res, res), np.uint8)
        _draw_base(f_outer, rows, layer)
        win_idx, full_idx = idx[fits[idx]], idx[~fits[idx]]          # full_idx: almost always empty
        win = np.empty((len(win_idx), wh, ww), np.uint8)
        for j, b in enumerate(win_idx):
            win[j] = layer[b - i, oy[b]:oy[b] + wh, ox[b]:ox[b] + ww]
        win_rows = rows if len(win_idx) == len(idx) else win_idx
        full = layer[full_idx - i]
        for phase in ("nose_mouth", "eyes"):
            if len(win_idx):
                _draw_inner(f_win, win_rows, win, phase)
            if len(full_idx):
                _draw_inner(f_full, full_idx, full, phase)
            if phase == "nose_mouth" and edges is None:
                continue
            for j, b in enumerate(win_idx):
                layer[b - i, oy[b]:oy[b] + wh, ox[b]:ox[b] + ww] = win[j]
            layer[full_idx - i] = full
            if phase == "nose_mouth":
                edges[rows] = _edge_fraction(layer, s)
        counts[:, rows] = _layer_counts(layer, s)
    frac = counts.astype(np.float32)
    frac *= np.float32(1.0 / (s * s))
    return _colour(p, frac, edges, size, style, cos, sin), _part_argmax(counts)


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; valid styles: {', '.join(STYLES)}")


def render(params: Dict[str, np.ndarray], size: int, style: str = "photo",
           supersample: int = 4) -> Tuple[np.ndarray, np.ndarray]:
    """Faces of ``params`` (from ``sample_params``) -> (images uint8 [n, size, size, 3], masks uint8
    [n, size, size] with ids into ``PARTS``), drawn on a ``supersample`` times finer grid and
    box-filtered down. The mask does not depend on the style."""
    _check_style(style)
    size, s = int(size), int(supersample)
    if size < 1 or s < 1:
        raise ValueError(f"size and supersample must be >= 1, got {size} and {s}")
    n = len(params["tx"])
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.empty((n, size, size), np.uint8)
    for i in range(0, n, _RENDER_BLOCK):
        sl = slice(i, i + _RENDER_BLOCK)
        sub = {k: np.asarray(v)[sl] for k, v in params.items()}
        images[sl], masks[sl] = _render_block(sub, size, style, s)
    return images, masks


def _concat(ps):
    return {k: np.concatenate([p[k] for p in ps]) for k in ps[0]}


def face_params(seed: int, n: int) -> Dict[str, np.ndarray]:
    """The parameters of ``render_faces(seed, n)``: face i depends only on (seed, i)."""
    rng = lambda b: np.random.default_rng(np.random.SeedSequence([int(seed), 0, b]))     # noqa: E731
    n_blocks = (int(n) + _SAMPLE_BLOCK - 1) // _SAMPLE_BLOCK
    blocks = [sample_params(rng(b), _SAMPLE_BLOCK) for b in range(max(n_blocks, 1))]
    return {k: v[:n] for k, v in _concat(blocks).items()}


def render_faces(seed: int, n: int, size: int = 32, style: str = "photo") -> Tuple[np.ndarray, np.ndarray]:
    """``n`` faces, deterministic in ``seed``; face i depends only on (seed, i), so
    ``render_faces(seed, 10)[k][:5] == render_faces(seed, 5)[k]``. Photo and sketch of a seed are the
    same faces."""
    _check_style(style)
    if int(n) <= 0:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros((0, size, size), np.uint8)
    return render(face_params(seed, n), size, style)


# The parameters that make each part's shape and look (in the face's own frame, so another face's values
# draw that part on this face: hairstyle transfer, paper Fig. 11).
PART_PARAMS = {
    "hair": ("hair_style", "hair_cy", "hair_ry", "hair_rx", "hair_len", "hairline_v0", "hairline_u0",
             "hairline_k", "hair_rgb", "hatch_angle", "hatch_period", "hatch_amp", "hair_fill"),
    "eyes": ("eye_rx", "eye_ry", "eye_sep", "iris_r", "pupil_r", "gaze_u", "gaze_v", "iris_rgb"),
    "nose": ("nose_v", "nose_rx", "nose_ry"),
    "mouth": ("smile", "mouth_v", "mouth_rx", "mouth_ry", "smile_t", "mouth_rgb"),
}


def with_parts(params: Dict[str, np.ndarray], donor: Dict[str, np.ndarray], parts) -> Dict[str, np.ndarray]:
    """``params`` with the :data:`PART_PARAMS` of ``parts`` taken from ``donor`` (same number of faces).
    The fringe's lower cut stays below the (possibly new) eyes."""
    bad = [p for p in parts if p not in PART_PARAMS]
    if bad:
        raise ValueError(f"parts {bad} have no parameters to transfer; use {', '.join(PART_PARAMS)}")
    out = {k: np.array(v, copy=True) for k, v in params.items()}
    for part in parts:
        for k in PART_PARAMS[part]:
            out[k] = np.array(donor[k], copy=True)
    ry = out["face_ry"]
    out["hairline_cut"] = np.minimum(out["hairline_cut"], out["eye_v"] - out["eye_ry"] - 0.05 * ry)
    return out


def batch_params(seed: int, k: int, batch: int) -> Dict[str, np.ndarray]:
    """The parameters of batch ``k`` of ``batches(seed, batch)``."""
    return sample_params(np.random.default_rng(np.random.SeedSequence([int(seed), 1, int(k)])), batch)


def batches(seed: int, batch: int, size: int = 32, style: str = "photo",
            start: int = 0) -> Iterator[np.ndarray]:
    """Endless float32 NHWC batches in [-1, 1] (``image / 127.5 - 1``); batch k is seeded from (seed, k)
    alone, so ``batches(seed, b, start=k)`` continues a run that consumed k batches. The style is checked
    at the call, not at the first ``next``."""
    _check_style(style)

    def gen(k):
        while True:
            images, _ = render(batch_params(seed, k, batch), size, style)
            yield images.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
            k += 1
    return gen(int(start))


# --- Data sets on disk (python -m dds_jax.cli.render) ----------------------------------------------------
def write_dataset(out, seed: int, n: int, size: int, style: str, grid=None, grid_cols: int = 8):
    """``render_faces(seed, n, size, style)`` as ``out/000000.png ...`` (RGB), ``out/masks/000000.png ...``
    (uint8 part ids) and ``out/parts.json``; with ``grid``, a contact sheet of the images there."""
    from dds_jax import files
    out = pathlib.Path(out)
    images, masks = render_faces(seed, n, size, style)
    for i in range(n):
        files.save_png(out / f"{i:06d}.png", images[i])
        files.save_png(out / "masks" / f"{i:06d}.png", masks[i])
    files.write_json(out / "parts.json", list(PARTS))
    if grid and n:
        files.save_png(grid, files.make_grid(list(images), ncols=min(grid_cols, max(n, 1))))
    return images, masks
