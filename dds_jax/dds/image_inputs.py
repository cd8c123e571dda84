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
from dds_jax.dds import invert, run_io

CACHE_FILE = "inversion.npz"
ALIGNED_CACHE_FILE = "inversion_aligned.npz"      # the unpaired sources aligned to their targets


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


def mask_paths(folder, role: str, stems: Sequence[str]) -> List[pathlib.Path]:
    by_stem = _stems(files.image_files(folder, f"config.{role}_masks folder"))
    missing = [s for s in stems if s not in by_stem]
    if missing:
        raise ValueError(f"config.{role}_masks={folder}: no mask for {', '.join(missing[:5])} (one PNG per "
                         "image, the same name, white = part)")
    return [by_stem[s] for s in stems]


def check_mask_size(mask: pathlib.Path, image: pathlib.Path, role: str) -> None:
    """A painted mask must line up with its image: the same size, or the same size scaled (both are
    centre-cropped to a square and resized alike, so the crop is the same part of the picture)."""
    (wm, hm), (wi, hi) = files.image_size(mask), files.image_size(image)
    if abs(hm - hi * wm / wi) > 1 or abs(wm - wi * hm / hi) > 1:
        raise ValueError(f"config.{role}_masks: {mask} is {wm}x{hm} pixels but its image {image} is {wi}x{hi} "
                         "(another aspect ratio: it would not line up); paint the mask at the image's size")


def _read_masks(folder, role: str, stems: Sequence[str], size: int, images: Sequence[pathlib.Path]) -> np.ndarray:
    """The painted masks of ``stems`` (each checked against its image, ``images``), [N, size, size, 1]."""
    paths = mask_paths(folder, role, stems)
    for mask, image in zip(paths, images):
        check_mask_size(mask, image, role)
    masks = np.stack([files.read_square_image(p, size, mask=True) for p in paths])
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


def problem_digests(files_per_problem: Sequence[Sequence[pathlib.Path]]) -> List[str]:
    """One sha1 per problem of everything it is made from (its images and painted masks)."""
    return [_digest(ps) for ps in files_per_problem]


def changed_problems(run_dir: pathlib.Path, stems: Sequence[str], digests: Sequence[str]) -> List[int]:
    """Problems whose results are stale: the image (or mask) at that index differs from what run.json
    recorded (an edited, renamed or inserted image), or the index has no image any more."""
    if not (pathlib.Path(run_dir) / "run.json").is_file():
        return []
    old = {e["index"]: e for e in run_io.load_run(run_dir).get("images", [])}
    return [i for i, (name, digest) in enumerate(zip(stems, digests))
            if i in old and (old[i].get("name") != name or old[i].get("sha1", digest) != digest)] + \
        sorted(i for i in old if i >= len(stems))


# The mean pixel MSE (images in [-1, 1]) above which an image is reported as one its generator cannot
# draw (its DDS problem is then not the user's image). Measured on the shipped demo pair, 500 steps, 12
# rendered faces each: own domain photo <= 0.007, sketch <= 0.036; sketches into the photo generator
# 0.028-0.057; the noise image 0.065, uniform noise 0.29-0.33.
HIGH_INVERSION_MSE = 0.05


@dataclasses.dataclass
class ImageSet:
    """Everything about the images a run needs: names, inversions, optional painted masks."""
    names: List[str]
    inversion: dict                      # see invert.invert_pair
    masks: Optional[tuple] = None        # (y_s, y_t) [N, H, W, 1] float, or None: the segmenter's
    digests: Optional[List[str]] = None  # sha1 of each problem's files (problem_digests)

    def report(self) -> List[dict]:
        """One entry per image for run.json: index, name, inversion MSE per domain (None: not inverted),
        sha1 of its files (a resume redoes an image whose files changed)."""
        mse = lambda tag, i: (None if np.isnan(self.inversion[f"mse_{tag}"][i])
                              else round(float(self.inversion[f"mse_{tag}"][i]), 6))
        return [dict({"index": i, "name": n, "inversion_mse_source": mse("s", i), "inversion_mse_target": mse("t", i)},
                     **({} if self.digests is None else {"sha1": self.digests[i]}))
                for i, n in enumerate(self.names)]

    def poorly_inverted(self, threshold: float = HIGH_INVERSION_MSE) -> List[str]:
        """'name (domain, MSE)' of every image its generator could not draw (MSE above ``threshold``)."""
        out = []
        for i, n in enumerate(self.names):
            for tag, domain in (("s", "source"), ("t", "target")):
                m = float(self.inversion[f"mse_{tag}"][i])
                if m > threshold:
                    out.append(f"{n} ({domain}, {m:.3f})")
        return out

    def take(self, idx: Sequence[int]) -> "ImageSet":
        idx = np.asarray(idx, np.int64)
        inv = {k: ([f[idx] for f in v] if isinstance(v, list) else np.asarray(v)[idx])
               for k, v in self.inversion.items()}
        masks = None if self.masks is None else tuple(m[idx] for m in self.masks)
        return ImageSet([self.names[i] for i in idx], inv, masks)


def unpaired(c) -> bool:
    """Two different folders: each problem's source and target are different pictures."""
    source, target = c.get("source_images"), c.get("target_images")
    return bool(source and target) and pathlib.Path(source).resolve() != pathlib.Path(target).resolve()


def load(c, gen_s, gen_t, run_dir: pathlib.Path, foreground_fn=None) -> ImageSet:
    """Read, check and invert the configured images (the inversion cached in ``run_dir``, with a
    progress bar). On resume, the results of an image whose files changed since are removed, so the
    image is done again; an image its generator cannot draw is warned about. With ``foreground_fn``
    (the segmenter's foreground) and ``config.align_images``, unpaired sources are aligned to their
    targets (:func:`dds_jax.dds.align.align_inversions`; painted source masks move with them)."""
    import jax
    from absl import logging
    from tqdm import tqdm
    size = gen_s.config.size
    paths = image_paths(c)
    stems = [p.stem for p in (paths["source"] or paths["target"])]
    min_size = max(8, size // 4)
    images = {role: None if ps is None else np.stack([files.read_square_image(p, size, min_size) for p in ps])
              for role, ps in paths.items()}
    masks, mask_files = None, []
    if c.get("source_masks") or c.get("target_masks"):
        if not (c.get("source_masks") and c.get("target_masks")):
            raise ValueError("give both config.source_masks and config.target_masks (or neither: the "
                             "segmenter masks the inversions)")
        shown = {role: paths[role] or paths["target" if role == "source" else "source"] for role in paths}
        masks = (_read_masks(c.source_masks, "source", stems, size, shown["source"]),
                 _read_masks(c.target_masks, "target", stems, size, shown["target"]))
        mask_files = [mask_paths(c.source_masks, "source", stems), mask_paths(c.target_masks, "target", stems)]
    per_problem = [[ps[i] for ps in [paths["source"], paths["target"]] + mask_files if ps is not None]
                   for i in range(len(stems))]
    digests = problem_digests(per_problem)
    stale = changed_problems(run_dir, stems, digests) if c.get("resume") else []
    if stale and jax.process_index() == 0:
        named = [stems[i] if i < len(stems) else f"#{i} (gone)" for i in stale]
        logging.warning("images changed since the run started: %s; their old results are removed and "
                        "the images there now are done again",
                        ", ".join(named[:5]) + (" ..." if len(named) > 5 else ""))
        run_io.forget_seeds(run_dir, stale)
    key = {"source": invert.fingerprint(gen_s.variables), "target": invert.fingerprint(gen_t.variables),
           "source_images": None if paths["source"] is None else _digest(paths["source"]),
           "target_images": None if paths["target"] is None else _digest(paths["target"]),
           "steps": int(c.invert_steps), "lr": float(c.invert_lr)}
    align_sources = foreground_fn is not None and bool(c.get("align_images")) and unpaired(c)
    n_inverted = sum(len(ps) for ps in paths.values() if ps is not None) + (len(stems) if align_sources else 0)
    # batches of about a tenth of the images: the bar moves (the images are inverted independently)
    batch = max(1, min(32, -(-len(stems) // 10)))
    bar = []                     # shown once an inversion starts (none when the cache has them)

    def progress(n):
        if not bar:
            bar.append(tqdm(total=n_inverted, unit="image", desc="inverting images", dynamic_ncols=True,
                            disable=None))
        bar[0].update(n)
    try:
        inv = invert.invert_pair(gen_s, gen_t, images["source"], images["target"], int(c.invert_steps),
                                 float(c.invert_lr), cache=pathlib.Path(run_dir) / CACHE_FILE, key=key,
                                 batch_size=batch, progress=progress)
        if align_sources:
            from dds_jax.dds import align
            inv, transforms = align.align_inversions(
                inv, images["source"], gen_s, foreground_fn, int(c.invert_steps), float(c.invert_lr),
                cache=pathlib.Path(run_dir) / ALIGNED_CACHE_FILE, key=key, batch_size=batch, progress=progress)
            if masks is not None:
                masks = (align.warp_masks(masks[0], transforms), masks[1])
    finally:
        for b in bar:
            b.close()
    image_set = ImageSet(stems, inv, masks, digests)
    poor = image_set.poorly_inverted()
    if poor:
        logging.warning("the generator cannot draw %s (inversion MSE above %s): DDS of %s will not show "
                        "the image you gave; use images of the generator's domain", ", ".join(poor[:5]),
                        HIGH_INVERSION_MSE, "it" if len(poor) == 1 else "them")
    return image_set


def make_inputs(image_set: ImageSet, idx: Sequence[int], dcfg, seg_fn):
    """DDS problems for images ``idx`` of the set."""
    part = image_set.take(idx)
    return invert.inputs_from_inversions(part.inversion, dcfg, seg_fn, part.masks)
