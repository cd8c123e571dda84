"""Robustness to α, β, γ (paper Sec. 5.1, Fig. 8): re-run DDS with one loss weight changed at a time and
plot FID against the target domain D_t (or, without Inception weights, SSIM/PSNR) per value.

  python -m dds_jax.cli.sweep --config=configs/faces_caricature.py --config.num_seeds=100 \
      --values=0,0.25,0.5,0.75,1 --inception_ckpt=ckpt/inception --out=runs/sweep

Every run is an ordinary DDS run directory (``OUT/<param>_<value>/``, resumable: finished seeds are kept);
the other two weights stay at the config's values. Writes ``OUT/sweep.json`` and ``OUT/sweep.png``.
"""
import copy
import pathlib
from typing import Dict, List, Optional, Sequence

from absl import logging

from dds_jax import files
from dds_jax.eval import evaluate
from dds_jax.dds import pipeline

PARAMS = ("alpha", "beta", "gamma")
GREEK = {"alpha": "α", "beta": "β", "gamma": "γ"}


def run_name(param: str, value: float) -> str:
    return f"{param}_{value:g}"


def sweep(config, params: Sequence[str], values: Sequence[float], out, features=None) -> Dict[str, List[dict]]:
    """{param: [{"value", "run", "fid"?, "ssim", "psnr"} vs D_t, one per value]} for direction(s) of the config."""
    unknown = [p for p in params if p not in PARAMS]
    if unknown or not params:
        raise ValueError(f"--params must be some of {PARAMS}, got {list(params)}")
    if not values:
        raise ValueError("--values is empty")
    defaults = pipeline.dds_config(config).resolved()
    out = pathlib.Path(out)
    results = {}
    for param in params:
        results[param] = []
        for value in values:
            c = copy.deepcopy(config)
            with c.unlocked():
                for p in PARAMS:                      # pin the other weights to the mode defaults
                    if c[p] is None:
                        c[p] = float(getattr(defaults, p))
                c[param] = float(value)
                c.output_dir = str(out / run_name(param, value))
                c.resume = (pathlib.Path(c.output_dir) / "run.json").is_file()
            logging.info("sweep: %s = %g -> %s", param, value, c.output_dir)
            run_dir = pipeline.run_dds(c)
            rows = [r for r in evaluate.evaluate_run(run_dir, features, run_name(param, value)) if r["set"] == "D_t"]
            for r in rows:
                results[param].append({"value": float(value), "run": str(run_dir), "direction": r["direction"],
                                       **{k: r[k] for k in ("fid", "ssim", "psnr") if k in r}})
    return results


def plot_sweep(results: Dict[str, List[dict]], path, metric: str) -> None:
    """Fig. 8 layout: metric vs D_t against the weight's value, one line per weight (and direction)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (param, rows) in enumerate(results.items()):
        for j, d in enumerate(dict.fromkeys(r["direction"] for r in rows)):
            pts = sorted((r["value"], r[metric]) for r in rows if r["direction"] == d)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-" if j == 0 else "s--", color=f"C{i}",
                    label=f"{GREEK[param]} ({d})")
    ax.set_xlabel("weight value (the other two fixed)")
    ax.set_ylabel(f"{metric.upper()} vs D_t")
    ax.set_title("Impact of α, β, γ (Eq. 6)")
    ax.legend(fontsize=8)
    files.save_figure(fig, path)


def run_sweep(config, params, values, out, inception_ckpt: Optional[str] = None, batch_size: int = 16):
    features = evaluate.FeatureExtractor(inception_ckpt, batch_size) if inception_ckpt else None
    results = sweep(config, params, [float(v) for v in values], out, features)
    out = pathlib.Path(out)
    files.write_json(out / "sweep.json", results)
    metric = "fid" if features is not None else "psnr"
    plot_sweep(results, out / "sweep.png", metric)
    return results, out
