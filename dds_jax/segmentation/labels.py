"""Painted part labels: the class list (``--parts``), the colour of each painted name (``--colors``) and
reading a label PNG into a class map, with errors that name the file and the colours found.
See ``python -m dds_jax.cli.segment --help`` for the conventions."""
import json
import pathlib
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


PALETTE = ["#ff0000", "#00ff00", "#0000ff", "#ffff00", "#ff00ff", "#00ffff", "#ff8000", "#8000ff",
           "#00ff80", "#ff0080", "#80ff00", "#0080ff"]
BACKGROUND = "background"

RGB = Tuple[int, int, int]


# --------------------------------------------------------------------------------------------------
# Parts and colours
# --------------------------------------------------------------------------------------------------
def parse_class_spec(parts) -> List[List[str]]:
    """``"eyes,nose+mouth"`` (or a list) -> [["eyes"], ["nose", "mouth"]]: the painted names of each class."""
    items = parts.split(",") if isinstance(parts, str) else list(parts or [])
    classes = []
    for item in items:
        names = [n.strip() for n in str(item).split("+") if n.strip()]
        if names:
            classes.append(names)
    if not classes:
        raise ValueError("no parts given: pass --parts=name[,name...] (e.g. --parts=eyes,nose,mouth)")
    flat = [n for c in classes for n in c]
    dup = sorted({n for n in flat if flat.count(n) > 1})
    if dup:
        raise ValueError(f"part name(s) {dup} given more than once in --parts")
    if BACKGROUND in flat:
        raise ValueError("'background' is class 0 and cannot be a part")
    return classes


def _split_top_level(text: str) -> List[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [s.strip() for s in out if s.strip()]


def parse_color(value) -> RGB:
    from PIL import ImageColor
    if isinstance(value, (list, tuple)) and len(value) == 3:
        return tuple(int(v) for v in value)
    try:
        rgb = ImageColor.getrgb(str(value).strip())
    except ValueError as e:
        raise ValueError(f"bad colour {value!r}: use #rrggbb, #rgb, a colour name or rgb(r,g,b)") from e
    return tuple(int(v) for v in rgb[:3])


def parse_colors(text) -> Dict[str, RGB]:
    """``"eyes=#ff0000,nose=#0f0"``, a JSON object (text or ``.json`` file) or a dict -> {name: (r, g, b)}."""
    if not text:
        return {}
    if isinstance(text, dict):
        raw = text
    else:
        text = str(text).strip()
        if text.endswith(".json") and pathlib.Path(text).is_file():
            text = pathlib.Path(text).read_text()
        if text.startswith("{"):
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"--colors is not valid JSON: {e}") from e
        else:
            raw = {}
            for item in _split_top_level(text):
                if "=" not in item:
                    raise ValueError(f"bad --colors entry {item!r}: use name=colour, e.g. eyes=#ff0000")
                name, value = item.split("=", 1)
                raw[name.strip()] = value.strip()
    return {str(k): parse_color(v) for k, v in raw.items()}


def hex_color(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def color_table(classes: List[List[str]], colors: Dict[str, RGB]) -> Dict[RGB, int]:
    """{colour: class}: class c+1 for the names of ``classes[c]``, 0 for the background colour and for
    names of ``colors`` that no class uses."""
    names = [n for c in classes for n in c]
    missing = [n for n in names if n not in colors]
    if colors and missing:
        raise ValueError(f"--colors gives no colour for part(s) {missing} (it has: {sorted(colors)})")
    if not colors:
        defaults = ["#ffffff"] if len(names) == 1 else PALETTE
        if len(names) > len(defaults):
            raise ValueError(f"{len(names)} parts but only {len(defaults)} default colours: pass --colors")
        colors = {n: parse_color(defaults[i]) for i, n in enumerate(names)}
    colors = dict(colors)
    bg = colors.pop(BACKGROUND, (0, 0, 0))
    table: Dict[RGB, int] = {tuple(bg): 0}
    owner: Dict[RGB, str] = {tuple(bg): BACKGROUND}
    class_of = {n: i + 1 for i, c in enumerate(classes) for n in c}
    for name, rgb in colors.items():
        cls = class_of.get(name, 0)
        rgb = tuple(rgb)
        if rgb in table and table[rgb] != cls:
            raise ValueError(f"parts {owner[rgb]!r} and {name!r} share the colour {hex_color(rgb)} but belong "
                             "to different classes (merge them with '+' in --parts, or repaint)")
        table[rgb] = cls
        owner.setdefault(rgb, name)
    return table


def class_colors(classes: List[List[str]], table: Dict[RGB, int]) -> Dict[str, List[str]]:
    """{class name: [hex colours]} for the model config."""
    out = {}
    for i, c in enumerate(classes):
        out["+".join(c)] = [hex_color(rgb) for rgb, k in table.items() if k == i + 1]
    return out


# --------------------------------------------------------------------------------------------------
# Label images
# --------------------------------------------------------------------------------------------------
def read_label(path, table: Dict[RGB, int], size: Tuple[int, int], tolerance: int = 0) -> np.ndarray:
    """A painted label PNG -> int32 [H, W] class map. Errors name the file: wrong size, unknown colours
    (listed with pixel counts), no foreground pixel."""
    from PIL import Image
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label not found: {path}")
    try:
        with Image.open(path) as im:
            rgba = np.asarray(im.convert("RGBA"))
    except Exception as e:
        raise ValueError(f"{path}: unreadable image ({type(e).__name__}: {e})") from e
    h, w = rgba.shape[:2]
    if (h, w) != tuple(size):
        raise ValueError(f"{path}: label is {w}x{h} pixels, the images are {size[1]}x{size[0]}")
    packed = (rgba[..., 0].astype(np.int64) << 16) | (rgba[..., 1].astype(np.int64) << 8) | rgba[..., 2]
    transparent = rgba[..., 3] == 0
    colors, inverse, counts = np.unique(np.where(transparent, -1, packed), return_inverse=True,
                                        return_counts=True)
    known = np.array(list(table.keys()), np.int64).reshape(-1, 3)
    lut = np.zeros(len(colors), np.int32)
    unknown = []
    for i, c in enumerate(colors):
        if c < 0:
            continue                                          # transparent: background
        rgb = ((c >> 16) & 255, (c >> 8) & 255, c & 255)
        if rgb in table:
            lut[i] = table[rgb]
            continue
        dist = np.abs(known - np.array(rgb)).max(axis=1)
        j = int(np.argmin(dist))
        if tolerance > 0 and dist[j] <= tolerance:
            lut[i] = table[tuple(int(v) for v in known[j])]
        else:
            unknown.append((int(counts[i]), rgb))
    if unknown:
        unknown.sort(reverse=True)
        shown = ", ".join(f"{hex_color(rgb)} ({n} px)" for n, rgb in unknown[:12])
        more = f" and {len(unknown) - 12} more" if len(unknown) > 12 else ""
        expected = ", ".join(f"{hex_color(rgb)}={k}" for rgb, k in table.items())
        raise ValueError(f"{path}: {len(unknown)} colour(s) not in the colour map: {shown}{more}. Expected "
                         f"colour=class: {expected}. Repaint with exact colours (hard-edged brush), "
                         "set --colors, or pass --color_tolerance")
    label = lut[inverse.reshape(h, w)]
    if not (label > 0).any():
        found = [hex_color(((c >> 16) & 255, (c >> 8) & 255, c & 255)) for c in colors if c >= 0]
        raise ValueError(f"{path}: the label has no foreground pixel (every pixel is background; colours "
                         f"found: {', '.join(found) or 'none (transparent)'}; part colours: "
                         f"{', '.join(hex_color(rgb) for rgb, k in table.items() if k > 0)})")
    return label.astype(np.int32)


def find_labels(labels_dir, seeds: Optional[Sequence[int]] = None) -> Dict[int, pathlib.Path]:
    """{seed: label path}: every ``seed_<N>.png`` in ``labels_dir``, or exactly those of ``seeds``."""
    labels_dir = pathlib.Path(labels_dir)
    if not labels_dir.is_dir():
        raise FileNotFoundError(f"labels directory not found: {labels_dir}")
    if seeds is not None:
        paths = {int(s): labels_dir / f"seed_{int(s)}.png" for s in seeds}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"missing label(s) for sample(s): {', '.join(missing)}")
        return paths
    found = {}
    for p in sorted(labels_dir.glob("seed_*.png")):
        m = re.fullmatch(r"seed_(\d+)\.png", p.name)
        if m:
            found[int(m.group(1))] = p
    if not found:
        raise FileNotFoundError(f"no labels in {labels_dir}: paint seed_<N>.png for a sample seed_<N>.png")
    return dict(sorted(found.items()))


