"""Layout of a DDS run directory: one place that writes it and reads it back.

  RUN/run.json                          config, versions, seeds, per-seed losses, failures, timings
  RUN/contact_sheet_<direction>.png     rows = seeds; columns = source, target, masks, crossover, DDS
  RUN/<direction>/seed_<N>/source.png   x_s            (direction: s2t or t2s)
                          target.png    x_t
                          mask_source.png, mask_target.png   y_s, y_t (255 = part)
                          crossover.png x_c (Eq. 1)
                          dds.png       the dual-domain result x̂
                          optimisation.gif  x̂ every ``snapshot_every`` iterations
                          snapshots.npz     the same frames (uint8) + their iteration numbers
                          result.json       final loss terms of this seed
  RUN/state/                            orbax checkpoint of the batch in progress (resume)
"""
import json
import pathlib
from typing import Dict, Iterable, List, Sequence

import numpy as np

from dds_jax import files

IMAGE_NAMES = ("source", "target", "mask_source", "mask_target", "crossover", "dds")
DIRECTIONS = ("s2t", "t2s")


def seed_dir(run_dir, direction: str, seed: int) -> pathlib.Path:
    return pathlib.Path(run_dir) / direction / f"seed_{seed}"


def write_seed_result(run_dir, direction: str, seed: int, images: Dict[str, np.ndarray],
                      snapshots: np.ndarray = None, snapshot_iterations: Sequence[int] = (),
                      result: dict = None, gif: bool = True) -> pathlib.Path:
    """Write one seed's images (uint8 HxWx3, masks HxW) atomically; ``result.json`` last, so a seed
    directory with ``result.json`` is complete."""
    d = seed_dir(run_dir, direction, seed)
    d.mkdir(parents=True, exist_ok=True)
    for name, im in images.items():
        files.save_png(d / f"{name}.png", im)
    if snapshots is not None and len(snapshots):
        files.save_npz(d / "snapshots.npz", compressed=True, images=np.asarray(snapshots, np.uint8),
                       iterations=np.asarray(snapshot_iterations, np.int64))
        if gif:
            files.write_gif(d / "optimisation.gif", snapshots)
    files.write_json(d / "result.json", dict(result or {}, seed=int(seed), direction=direction))
    return d


def run_directions(run: dict) -> List[str]:
    """The result folders of a run (``run.json``): s2t and/or t2s (runs written before the released
    loop names were normalised may say d1 = t2s, d2 = s2t)."""
    from dds_jax.dds.optimize import DIRECTION_ALIASES
    return [DIRECTION_ALIASES.get(d, d) for d in run.get("directions", list(DIRECTIONS))]


def seed_is_done(run_dir, direction: str, seed: int) -> bool:
    return (seed_dir(run_dir, direction, seed) / "result.json").is_file()


def load_run(run_dir) -> dict:
    path = pathlib.Path(run_dir) / "run.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a DDS run directory (no run.json)")
    with open(path) as f:
        return json.load(f)


def finished_seeds(run_dir, direction: str) -> List[int]:
    base = pathlib.Path(run_dir) / direction
    if not base.is_dir():
        return []
    seeds = [int(p.name.split("_", 1)[1]) for p in base.glob("seed_*") if (p / "result.json").is_file()]
    return sorted(seeds)


def read_images(run_dir, direction: str, name: str, seeds: Iterable[int]) -> np.ndarray:
    """One image set as float32 [N, H, W, 3] in [0, 1] (masks as [N, H, W])."""
    if name not in IMAGE_NAMES:
        raise ValueError(f"unknown image {name!r}; one of {IMAGE_NAMES}")
    out = [files.read_image(seed_dir(run_dir, direction, s) / f"{name}.png") for s in seeds]
    return np.stack(out).astype(np.float32) / 255.0


def read_snapshots(run_dir, direction: str, seeds: Iterable[int]):
    """(iterations [K], frames float32 [K, N, H, W, 3] in [0, 1]) for seeds that all share the schedule."""
    frames, iterations = [], None
    for s in seeds:
        path = seed_dir(run_dir, direction, s) / "snapshots.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no snapshots (run with snapshot_every > 0)")
        with np.load(path) as z:
            it = z["iterations"]
            if iterations is not None and not np.array_equal(it, iterations):
                raise ValueError(f"{path}: snapshot iterations differ from the other seeds")
            iterations = it
            frames.append(z["images"])
    return iterations, np.stack(frames, axis=1).astype(np.float32) / 255.0


def forget_seeds(run_dir, seeds: Iterable[int]) -> None:
    """Make ``seeds`` to-do again in a run: their result folders go and run.json (written atomically)
    no longer lists them as finished or failed."""
    import shutil
    seeds = {int(s) for s in seeds}
    if not seeds:
        return
    run = load_run(run_dir)
    for d in run_directions(run):
        for s in seeds:
            shutil.rmtree(seed_dir(run_dir, d, s), ignore_errors=True)
    run["seeds"] = [s for s in run.get("seeds", []) if s not in seeds]
    run["failed_seeds"] = {d: [s for s in ss if s not in seeds] for d, ss in run.get("failed_seeds", {}).items()}
    run["failures"] = [f for f in run.get("failures", []) if f.get("seed") not in seeds]
    run["final_losses"] = {d: {k: v for k, v in losses.items() if int(k) not in seeds}
                           for d, losses in run.get("final_losses", {}).items()}
    files.write_json(pathlib.Path(run_dir) / "run.json", run)
