"""Evaluate finished DDS runs as the paper's Table 1, and draw Fig. 7 (FID per iteration).

  python -m dds_jax.cli.evaluate --run=runs/faces_M1 --label=M1 --run=runs/faces_M2 --label=M2 \
      --inception_ckpt=ckpt/inception --out=runs/table1

For every run (a mask / segmentation model) and direction, the set of DDS results x̂ is compared with
the source images D_s, the naive crossovers {x_c} (Eq. 1) and the target images D_t: FID between the
sets (pytorch-fid Inception pool3), SSIM and PSNR per seed pair averaged over seeds (images in [0, 1],
see ``dds_jax.eval.metrics``). Writes ``table1.md``, ``table1.csv``, ``table1.json`` and, with snapshots,
``fid_per_iteration.png``.
"""
import csv
import io
import pathlib
from typing import Dict, List, Optional, Sequence

import numpy as np
from absl import logging

from dds_jax import checkpoint as ckpt_io
from dds_jax import files
from dds_jax.dds import run_io

ROWS = (("source", "D_s"), ("crossover", "{x_c}"), ("target", "D_t"))
DIRECTION_TITLES = {"s2t": "DDS source→target", "t2s": "DDS target→source"}


class FeatureExtractor:
    """Inception pool3 features of [0, 1] images with converted pytorch-fid weights."""

    def __init__(self, ckpt_dir, batch_size: int = 16):
        from dds_jax.models import inception
        model = ckpt_io.load_model(ckpt_io.resolve_model_path(ckpt_dir), expect_kind="inception")
        self._params = model.params
        self._fn = inception.pool3_features
        self.batch_size = batch_size

    def __call__(self, images01: np.ndarray) -> np.ndarray:
        return np.asarray(self._fn(self._params, images01, batch_size=self.batch_size), np.float64)


def _check_sets(a: np.ndarray, b: np.ndarray, what: str):
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"{what}: empty image set")
    if a.shape != b.shape:
        raise ValueError(f"{what}: image sets differ in shape {a.shape} vs {b.shape}")


def set_metrics(results: np.ndarray, reference: np.ndarray, features=None, what: str = "") -> Dict[str, float]:
    """FID (if ``features``), mean SSIM and mean PSNR of ``results`` vs ``reference``, both [N,H,W,3] in [0,1]."""
    from dds_jax.eval import metrics
    _check_sets(results, reference, what)
    out = {"ssim": float(np.mean(np.asarray(metrics.ssim(results, reference, size_average=False)))),
           "psnr": float(np.mean(np.asarray(metrics.psnr(results, reference, data_range=1.0))))}
    if features is not None:
        if len(results) < 2:
            raise ValueError(f"{what}: FID needs at least 2 images per set, got {len(results)}")
        out["fid"] = float(metrics.fid_from_features(features(results), features(reference)))
    return out


def evaluate_run(run_dir, features=None, label: str = "") -> List[dict]:
    """Rows of Table 1 for one run: one per (direction, reference set)."""
    run = run_io.load_run(run_dir)
    rows = []
    for direction in run_io.run_directions(run):
        failed = {int(s) for s in run.get("failed_seeds", {}).get(direction, [])}
        seeds = [s for s in run_io.finished_seeds(run_dir, direction) if s not in failed]
        if not seeds:
            raise ValueError(f"{run_dir}: no finished seeds for direction {direction}")
        dds = run_io.read_images(run_dir, direction, "dds", seeds)
        for name, row in ROWS:
            ref = run_io.read_images(run_dir, direction, name, seeds)
            m = set_metrics(dds, ref, features, what=f"{run_dir} {direction} vs {name}")
            rows.append({"mask": label or pathlib.Path(run_dir).name, "direction": direction,
                         "set": row, "n_seeds": len(seeds), **m})
    return rows


def table_markdown(rows: List[dict]) -> str:
    """Table 1 layout: rows = (mask, set), column groups = directions, columns FID↓ SSIM↑ PSNR↑."""
    directions = list(dict.fromkeys(r["direction"] for r in rows))
    masks = list(dict.fromkeys(r["mask"] for r in rows))
    has_fid = any("fid" in r for r in rows)
    cols = (["FID↓"] if has_fid else []) + ["SSIM↑", "PSNR↑"]
    head = "| mask | set | " + " | ".join(f"{DIRECTION_TITLES.get(d, d)} {c}" for d in directions for c in cols) + " |"
    lines = [head, "|" + "---|" * (2 + len(directions) * len(cols))]
    index = {(r["mask"], r["direction"], r["set"]): r for r in rows}
    for mask in masks:
        for _, set_name in ROWS:
            cells = []
            for d in directions:
                r = index.get((mask, d, set_name))
                keys = (["fid"] if has_fid else []) + ["ssim", "psnr"]
                cells += ["–" if r is None else f"{r[k]:.2f}" for k in keys]
            lines.append(f"| {mask} | {set_name} | " + " | ".join(cells) + " |")
    n = sorted({r["n_seeds"] for r in rows})
    lines.append("")
    lines.append(f"Seeds per cell: {', '.join(map(str, n))}. SSIM/PSNR on images in [0, 1] (PSNR with R = 1).")
    return "\n".join(lines) + "\n"


def write_table(rows: List[dict], out_dir) -> pathlib.Path:
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files.write_text(out / "table1.md", table_markdown(rows))
    buf = io.StringIO()
    fields = ["mask", "direction", "set", "n_seeds", "fid", "ssim", "psnr"]
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in fields})
    files.write_text(out / "table1.csv", buf.getvalue())
    files.write_json(out / "table1.json", {"rows": rows})
    return out


# ------------------------------------------------------------------------------------------------
# Fig. 7: FID of the snapshots vs iteration
# ------------------------------------------------------------------------------------------------
def fid_curve(run_dir, features, direction: str) -> Dict[str, list]:
    from dds_jax.eval import metrics
    run = run_io.load_run(run_dir)
    failed = {int(s) for s in run.get("failed_seeds", {}).get(direction, [])}
    seeds = [s for s in run_io.finished_seeds(run_dir, direction) if s not in failed]
    iterations, frames = run_io.read_snapshots(run_dir, direction, seeds)
    ref_feats = {name: features(run_io.read_images(run_dir, direction, name, seeds))
                 for name in ("source", "target")}
    curve = {"iterations": [int(i) for i in iterations], "source": [], "target": []}
    for k in range(len(iterations)):
        f = features(frames[k])
        for name in ("source", "target"):
            curve[name].append(float(metrics.fid_from_features(f, ref_feats[name])))
    return curve


def plot_fid_curves(curves: Dict[str, Dict[str, list]], path) -> None:
    """Fig. 7 style: solid = vs target domain, dashed = vs source domain, one colour per run."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (label, c) in enumerate(curves.items()):
        color = f"C{i}"
        ax.plot(c["iterations"], c["target"], "-", color=color, label=f"{label} vs D_t")
        ax.plot(c["iterations"], c["source"], "--", color=color, label=f"{label} vs D_s")
    ax.set_xlabel("iteration")
    ax.set_ylabel("FID")
    ax.set_title("FID during latent optimisation")
    ax.legend(fontsize=7)
    files.save_figure(fig, path)


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------
def run_evaluation(runs: Sequence[str], labels: Sequence[str] = (), inception_ckpt: Optional[str] = None,
                   out: Optional[str] = None, fid_curve_plot: bool = True, batch_size: int = 16):
    if not runs:
        raise ValueError("give at least one --run")
    if labels and len(labels) != len(runs):
        raise ValueError(f"{len(labels)} --label for {len(runs)} --run")
    labels = list(labels) or [pathlib.Path(r).name for r in runs]
    features = FeatureExtractor(inception_ckpt, batch_size) if inception_ckpt else None
    rows = []
    for run_dir, label in zip(runs, labels):
        rows += evaluate_run(run_dir, features, label)
    out_dir = write_table(rows, out or runs[0])
    if features is not None and fid_curve_plot:
        curves = {}
        for run_dir, label in zip(runs, labels):
            for direction in run_io.run_directions(run_io.load_run(run_dir)):
                try:
                    curves[f"{label} {direction}"] = fid_curve(run_dir, features, direction)
                except FileNotFoundError as e:
                    logging.warning("no FID curve for %s: %s", run_dir, e)
        if curves:
            files.write_json(out_dir / "fid_per_iteration.json", curves)
            plot_fid_curves(curves, out_dir / "fid_per_iteration.png")
    return rows, out_dir
