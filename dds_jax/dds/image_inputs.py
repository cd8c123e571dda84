"""DDS on the user's own images instead of seeds (``--config.source_images=DIR``, ``--config.target_images=DIR``).

Each image is inverted into its generator (W+, :func:`dds_jax.dds.invert.invert_pair`, batched); the
latents are cached in the run directory (``RUN/inversion.npz``, keyed by the images' bytes, the
generators' weights and the inversion settings), the per-image inversion error goes to run.json. One
folder alone (source or target) is inverted into its generator and the other domain's image is drawn
from the same W+ latent (a paired problem); two folders pair their images by file name (the same folder
twice inverts each image into both generators). Masks come from the segmenter on the inversions, or
from painted mask PNGs (``--config.source_masks`` / ``target_masks``: one per image, same file name stem,
white = part). Problem i is the i-th image by name: its results are ``RUN/<direction>/seed_<i>/``, as for
seeds, and run.json ``images`` names it.
"""
import dataclasses
import hashlib
import pathlib
from typing import Dict, List, Optional, Sequence

import numpy as np

from dds_jax import files
from dds_jax.dds import invert

CACHE_FILE = "inversion.npz"


def uses_images(c) -> bool:
    return bool(c.get("source_images") or c.get("target_images"))


def _stems(paths) -> Dict[str, pathlib.Path]:
    return {p.stem: p for p in paths}


def image_paths(c) -> Dict[str, List[pathlib.Path]]:
    """{'source': [...] or None, 'target': [...] or None}, the same stems in the same order; errors name
    the folder and what is wrong (missing, empty, unmatched names)."""
    found = {}
    for role in ("source", "target"):
        folder = c.get(f"{role}_images")
        if not folder:
            found[role] = None
            continue
        paths = files.image_files(folder, f"config.{role}_images folder")
        if not paths:
            raise ValueError(f"config.{role}_images={folder}: no images there ({', '.join(files.IMAGE_SUFFIXES)})")
        dupes = sorted({p.stem for p in paths if sum(q.stem == p.stem for q in paths) > 1})
        if dupes:
            raise ValueError(f"config.{role}_images={folder}: several files named {dupes[0]}.*; keep one")
        found[role] = paths
    if found["source"] is not None and found["target"] is not None:
        s, t = _stems(found["source"]), _stems(found["target"])
        if set(s) != set(t):
            only = sorted(set(s) ^ set(t))
            raise ValueError(f"config.source_images and config.target_images must hold images with the same "
                             f"names (they are paired by name); unmatched: {', '.join(only[:5])}")
        found["target"] = [t[k] for k in s]
    return found


def names(c) -> List[str]:
    paths = image_paths(c)
    return [p.stem for p in (paths["source"] or paths["target"])]


def _read_masks(folder, role: str, stems: Sequence[str], size: int) -> np.ndarray:
    by_stem = _stems(files.image_files(folder, f"config.{role}_masks folder"))
    missing = [s for s in stems if s not in by_stem]
    if missing:
        raise ValueError(f"config.{role}_masks={folder}: no mask for {', '.join(missing[:5])} (one PNG per "
                         "image, the same name, white = part)")
    masks = np.stack([files.read_square_image(by_stem[s], size, mask=True) for s in stems])
    empty = [s for s, m in zip(stems, masks) if not m.any()]
    if empty:
        raise ValueError(f"config.{role}_masks={folder}: the mask of {empty[0]} has no white pixels")
    return masks[..., None].astype(np.float32)


def _digest(paths) -> str:
    h = hashlib.sha1()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


@dataclasses.dataclass
class ImageSet:
    """Everything about the images a run needs: names, inversions, optional painted masks."""
    names: List[str]
    inversion: dict                      # see invert.invert_pair
    masks: Optional[tuple] = None        # (y_s, y_t) [N, H, W, 1] float, or None: the segmenter's

    def report(self) -> List[dict]:
        """One entry per image for run.json: index, name, inversion MSE per domain (None: not inverted)."""
        mse = lambda tag, i: (None if np.isnan(self.inversion[f"mse_{tag}"][i])
                              else round(float(self.inversion[f"mse_{tag}"][i]), 6))
        return [{"index": i, "name": n, "inversion_mse_source": mse("s", i), "inversion_mse_target": mse("t", i)}
                for i, n in enumerate(self.names)]

    def take(self, idx: Sequence[int]) -> "ImageSet":
        idx = np.asarray(idx, np.int64)
        inv = {k: ([f[idx] for f in v] if isinstance(v, list) else np.asarray(v)[idx])
               for k, v in self.inversion.items()}
        masks = None if self.masks is None else tuple(m[idx] for m in self.masks)
        return ImageSet([self.names[i] for i in idx], inv, masks)


def load(c, gen_s, gen_t, run_dir: pathlib.Path) -> ImageSet:
    """Read, check and invert the configured images (the inversion cached in ``run_dir``)."""
    size = gen_s.config.size
    paths = image_paths(c)
    stems = [p.stem for p in (paths["source"] or paths["target"])]
    min_size = max(8, size // 4)
    images = {role: None if ps is None else np.stack([files.read_square_image(p, size, min_size) for p in ps])
              for role, ps in paths.items()}
    masks = None
    if c.get("source_masks") or c.get("target_masks"):
        if not (c.get("source_masks") and c.get("target_masks")):
            raise ValueError("give both config.source_masks and config.target_masks (or neither: the "
                             "segmenter masks the inversions)")
        masks = (_read_masks(c.source_masks, "source", stems, size), _read_masks(c.target_masks, "target", stems, size))
    key = {"source": invert.fingerprint(gen_s.variables), "target": invert.fingerprint(gen_t.variables),
           "source_images": None if paths["source"] is None else _digest(paths["source"]),
           "target_images": None if paths["target"] is None else _digest(paths["target"]),
           "steps": int(c.invert_steps), "lr": float(c.invert_lr)}
    inv = invert.invert_pair(gen_s, gen_t, images["source"], images["target"], int(c.invert_steps),
                             float(c.invert_lr), cache=pathlib.Path(run_dir) / CACHE_FILE, key=key)
    return ImageSet(stems, inv, masks)


def make_inputs(image_set: ImageSet, idx: Sequence[int], dcfg, seg_fn):
    """DDS problems for images ``idx`` of the set."""
    part = image_set.take(idx)
    return invert.inputs_from_inversions(part.inversion, dcfg, seg_fn, part.masks)
