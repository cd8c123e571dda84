"""A whole DDS run from a config: load models, make inputs and masks, optimise, write results.

Seeds are processed in batches of ``config.batch_size``; each batch is one vmapped, sharded problem
axis (see :mod:`dds_jax.dds.optimize`). Python only runs between chunks of ``config.chunk``
iterations: progress bar, snapshots, orbax checkpoints of the optimiser state. A run directory that
already holds finished seeds is continued with ``config.resume=True`` (finished seeds are skipped, the
batch in progress restarts from its last checkpoint).
"""
import dataclasses
import pathlib
import platform
import shutil
import time
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

import dds_jax
from dds_jax import checkpoint as ckpt_io
from dds_jax import cli_utils, run_io
from dds_jax.config import validate
from dds_jax.dds import optimize as opt
from dds_jax.models import stylegan2 as sg

DEMO_DIR = pathlib.Path(__file__).parent / "assets" / "demo"
# Fields that must match when a run is resumed (the rest, e.g. output paths, may change).
_RESUME_KEYS = ("source_ckpt", "target_ckpt", "segmenter_ckpt", "parts", "backbone", "mode",
                "latent_space", "alpha", "beta", "gamma", "lr", "iterations", "init_seed", "paired",
                "target_seed_offset", "truncation_source", "truncation_target", "direction", "chunk",
                "snapshot_every")


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------
def resolve_model_path(path: str) -> pathlib.Path:
    """A model directory; ``demo:<name>`` is one of the tiny models shipped with the package."""
    if path.startswith("demo:"):
        p = DEMO_DIR / path.split(":", 1)[1]
    else:
        p = pathlib.Path(path).expanduser()
    if not (p / "model.json").is_file():
        raise FileNotFoundError(f"{path}: no converted model there (expected {p}/model.json); convert "
                                "a checkpoint with convert/torch_to_flax.py")
    return p


def dds_config(c: ml_collections.ConfigDict) -> opt.DDSConfig:
    return opt.DDSConfig(mode=c.mode, direction=c.direction, latent_space=c.latent_space,
                         paired=c.paired, backbone=c.backbone, imagenet_normalize=c.imagenet_normalize,
                         alpha=c.alpha, beta=c.beta, gamma=c.gamma, perceptual_weight=c.perceptual_weight,
                         lr=c.lr, iterations=c.iterations,
                         truncation_source=c.truncation_source, truncation_target=c.truncation_target,
                         truncation_mean=c.truncation_mean)


def load_models(c: ml_collections.ConfigDict):
    """(DDSModels, seg_fn) for the config; seg_fn(images, features) -> binary part masks [B,H,W,1]."""
    from dds_jax import segmentation
    gen_s = sg.load_generator(resolve_model_path(c.source_ckpt))
    gen_t = sg.load_generator(resolve_model_path(c.target_ckpt))
    backbone_params = None
    if c.backbone != "generator":
        backbone_params = ckpt_io.load_model(resolve_model_path(c.backbone_ckpt), expect_kind=c.backbone).params
    models = opt.DDSModels.create(gen_s, gen_t, c.backbone, backbone_params)
    seg = segmentation.load_segmenter(resolve_model_path(c.segmenter_ckpt))
    for gen, name in ((gen_s, "source"), (gen_t, "target")):
        segmentation.check_compatible(gen.config, seg)
    parts = segmentation.parse_parts(c.parts, seg)
    return models, segmentation.binary_mask_fn(seg, parts)


def select_seeds(c: ml_collections.ConfigDict) -> List[int]:
    if c.num_seeds > 0:
        return list(range(c.first_seed, c.first_seed + c.num_seeds))
    return cli_utils.parse_seeds(c.seeds)


# --------------------------------------------------------------------------------------------------
# Run bookkeeping
# --------------------------------------------------------------------------------------------------
def _config_dict(c) -> dict:
    return {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in c.items()}


def _start_run(c, out: pathlib.Path) -> dict:
    """Create or reopen ``run.json``; refuse to mix runs."""
    path = out / "run.json"
    if path.is_file():
        run = run_io.load_run(out)
        if not c.resume:
            raise FileExistsError(f"{out} already holds a DDS run; continue it with --config.resume=True "
                                  "or choose another --config.output_dir")
        old = run["config"]
        diff = [k for k in _RESUME_KEYS if old.get(k) != c[k]]
        if diff:
            raise ValueError(f"cannot resume {out}: config differs in {diff} "
                             f"({', '.join(f'{k}: {old.get(k)!r} -> {c[k]!r}' for k in diff)})")
        run["config"] = _config_dict(c)
        return run
    directions = ["s2t", "t2s"] if c.direction == "both" else [c.direction]
    return {"config": _config_dict(c), "directions": directions, "seeds": [], "failed_seeds": {},
            "failures": [], "final_losses": {}, "timings": {}, "batches": []}


def _versions() -> dict:
    import flax
    import optax
    return {"dds_jax": dds_jax.__version__, "jax": jax.__version__, "flax": flax.__version__,
            "optax": optax.__version__, "python": platform.python_version(),
            "devices": [str(d) for d in jax.devices()]}


def _record_failure(run: dict, direction: str, seed: int, reason: str):
    run["failed_seeds"].setdefault(direction, [])
    if seed not in run["failed_seeds"][direction]:
        run["failed_seeds"][direction].append(seed)
    run["failures"].append({"seed": seed, "direction": direction, "reason": reason})


# --------------------------------------------------------------------------------------------------
# One batch of seeds
# --------------------------------------------------------------------------------------------------
def _take(inputs: opt.Inputs, idx: np.ndarray) -> opt.Inputs:
    return jax.tree_util.tree_map(lambda a: a[idx], inputs)


def _initial_state(models, inputs, dcfg, c, mesh, batch_seeds):
    """Per-seed initial latents / noises (independent of how seeds are batched)."""
    base = jax.random.PRNGKey(c.init_seed)
    seeds = [batch_seeds[int(i)] for i in np.asarray(inputs.seed)]
    t2s = np.asarray(inputs.t2s)
    keys = [jax.random.fold_in(jax.random.fold_in(base, s), int(d)) for s, d in zip(seeds, t2s)]
    latent0 = jnp.concatenate([opt.initial_latents(models, dcfg, k, 1) for k in keys])
    noises0 = None
    if dcfg.resolved().mode == "reference":
        shapes = models.config_s.noise_shapes()
        noises0 = [jnp.stack([jax.random.normal(jax.random.fold_in(k, 1 + j), s[1:]) for k in keys])
                   for j, s in enumerate(shapes)]
    return opt.init_state(models, inputs, dcfg, base, latent0=latent0, noises0=noises0, mesh=mesh)


def _make_inputs(models, seg_fn, dcfg, c, batch_seeds):
    z_s = cli_utils.z_from_seeds(batch_seeds, models.config_s.style_dim)
    if c.paired:
        zs = jnp.asarray(z_s)
    else:
        z_t = cli_utils.z_from_seeds([s + c.target_seed_offset for s in batch_seeds], models.config_t.style_dim)
        zs = (jnp.asarray(z_s), jnp.asarray(z_t))
    return opt.prepare_inputs(models, zs, dcfg, jax.random.PRNGKey(c.init_seed), seg_fn=seg_fn)


def _direction(t2s) -> str:
    return "t2s" if bool(t2s) else "s2t"


def _seed_images(inputs: opt.Inputs, result: np.ndarray, i: int) -> Dict[str, np.ndarray]:
    """The six images of problem i, oriented by its direction (source = the domain giving the part)."""
    t2s = bool(np.asarray(inputs.t2s)[i])
    x_s, x_t = np.asarray(inputs.x_s[i]), np.asarray(inputs.x_t[i])
    y_s, y_t = np.asarray(inputs.y_s[i])[..., 0], np.asarray(inputs.y_t[i])[..., 0]
    if t2s:
        x_s, x_t, y_s, y_t = x_t, x_s, y_t, y_s
    mask = lambda m: (np.asarray(m) > 0.5).astype(np.uint8) * 255
    return {"source": cli_utils.to_uint8(x_s), "target": cli_utils.to_uint8(x_t),
            "mask_source": mask(y_s), "mask_target": mask(y_t),
            "crossover": cli_utils.to_uint8(np.asarray(inputs.x_c[i])), "dds": cli_utils.to_uint8(result)}


def run_batch(models, seg_fn, dcfg, c, mesh, batch_seeds: Sequence[int], out: pathlib.Path, run: dict,
              progress=None):
    t0 = time.perf_counter()
    inputs = _make_inputs(models, seg_fn, dcfg, c, batch_seeds)
    # Empty masks: warn, report, and leave the problem out (never optimise it silently).
    empty = np.asarray(opt.mask_is_empty(inputs.y_s)) | np.asarray(opt.mask_is_empty(inputs.y_t))
    for i in np.flatnonzero(empty):
        seed, d = batch_seeds[int(inputs.seed[i])], _direction(inputs.t2s[i])
        msg = f"seed {seed} ({d}): a segmentation mask has no foreground pixels; seed skipped"
        warnings.warn(msg)
        logging.warning(msg)
        _record_failure(run, d, seed, "empty mask")
    done_mask = np.array([run_io.seed_is_done(out, _direction(inputs.t2s[i]), batch_seeds[int(inputs.seed[i])])
                          for i in range(len(empty))])
    keep = np.flatnonzero(~empty & ~done_mask)
    if len(keep) == 0:
        return
    inputs = _take(inputs, keep)
    inputs, n = opt.pad_seeds(inputs, mesh.size)
    inputs = opt.shard_seeds(inputs, mesh)
    state = _initial_state(models, inputs, dcfg, c, mesh, batch_seeds)

    total, chunk = int(c.iterations), int(min(c.chunk, c.iterations))
    k = int(c.snapshot_every) if c.snapshot_every and chunk % c.snapshot_every == 0 else 0
    state_dir = out / "state"
    done, losses, snaps, snap_steps = 0, [], [], []
    tag = {"seeds": [int(batch_seeds[int(s)]) for s in np.asarray(inputs.seed)[:n]],
           "t2s": [bool(t) for t in np.asarray(inputs.t2s)[:n]]}
    if c.resume and (state_dir / "progress.json").is_file():
        import json
        saved = json.loads((state_dir / "progress.json").read_text())
        if saved.get("tag") == tag:
            state = opt.shard_seeds(ckpt_io.restore_pytree(state_dir / "state", jax.device_get(state)), mesh)
            with np.load(state_dir / "progress.npz") as z:
                losses = [{name[5:]: z[name] for name in z.files if name.startswith("loss_")}]
                if "snapshots" in z.files:
                    snaps, snap_steps = [z["snapshots"]], [z["snapshot_steps"]]
            done = int(saved["done"])
            logging.info("resumed batch %s at iteration %d", tag["seeds"], done)
    run_chunk = opt.make_run_chunk(models, dcfg, chunk, k, mesh)
    last_ckpt = done
    while done < total:
        if total - done < chunk:
            chunk = total - done
            run_chunk = opt.make_run_chunk(models, dcfg, chunk, 0, mesh)
        state, o = run_chunk(state, inputs)
        o = jax.device_get(opt.unpad(o, n, axis=1))
        losses.append({name: np.asarray(v) for name, v in o.losses.items()})
        if o.snapshots is not None:
            snaps.append(cli_utils.to_uint8(o.snapshots))
            snap_steps.append(np.asarray(o.snapshot_steps))
        done += chunk
        if progress is not None:
            progress.update(chunk * n)
            progress.set_postfix(loss=f"{float(np.nanmean(o.losses['loss'][-1])):.4f}")
        if c.checkpoint_every and done - last_ckpt >= c.checkpoint_every and done < total:
            _save_progress(state_dir, state, losses, snaps, snap_steps, done, tag)
            last_ckpt = done

    images = jax.device_get(opt.unpad(opt.final_images(models, state, inputs, dcfg), n))["result"]
    all_losses = {name: np.concatenate([l[name] for l in losses]) for name in losses[0]}
    snapshots = np.concatenate(snaps) if snaps else None
    steps = np.concatenate(snap_steps) if snap_steps else None
    failed = {(p_seed, d): it for _, p_seed, d, it in opt.failed_problems(jax.device_get(state), inputs)}
    inputs_np = jax.device_get(opt.unpad(inputs, n))
    for i in range(n):
        seed, d = batch_seeds[int(inputs_np.seed[i])], _direction(inputs_np.t2s[i])
        key = (int(inputs_np.seed[i]), d)
        if key in failed:
            reason = f"non-finite loss or gradient at iteration {failed[key]}"
            logging.error("seed %d (%s): %s; stopped", seed, d, reason)
            _record_failure(run, d, seed, reason)
            continue
        final = {name: float(v[-1, i]) for name, v in all_losses.items()}
        run["final_losses"].setdefault(d, {})[str(seed)] = final
        run_io.write_seed_result(
            out, d, seed, _seed_images(inputs_np, images[i], i),
            snapshots=None if snapshots is None else snapshots[:, i],
            snapshot_iterations=() if steps is None else steps[:, i], result={"final_losses": final},
            gif=c.gif)
        if seed not in run["seeds"]:
            run["seeds"].append(seed)
    shutil.rmtree(state_dir, ignore_errors=True)
    run["batches"].append({"seeds": tag["seeds"], "seconds": round(time.perf_counter() - t0, 3),
                           "iterations": total})


def _save_progress(state_dir, state, losses, snaps, snap_steps, done, tag):
    state_dir.mkdir(parents=True, exist_ok=True)
    ckpt_io.save_pytree(state_dir / "state", state)
    arrays = {f"loss_{name}": np.concatenate([l[name] for l in losses]) for name in losses[0]}
    if snaps:
        arrays["snapshots"] = np.concatenate(snaps)
        arrays["snapshot_steps"] = np.concatenate(snap_steps)
    tmp = state_dir / ".progress.npz.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    tmp.replace(state_dir / "progress.npz")
    ckpt_io.write_json_atomic(state_dir / "progress.json", {"done": done, "tag": tag})


# --------------------------------------------------------------------------------------------------
# Contact sheet
# --------------------------------------------------------------------------------------------------
def write_contact_sheet(out: pathlib.Path, direction: str, seeds: Sequence[int]) -> Optional[pathlib.Path]:
    """Rows = seeds; columns = source, target, source mask, target mask, crossover, DDS."""
    tiles = []
    for s in seeds:
        d = run_io.seed_dir(out, direction, s)
        if not (d / "result.json").is_file():
            continue
        tiles += [cli_utils.read_image(d / f"{name}.png") for name in run_io.IMAGE_NAMES]
    if not tiles:
        return None
    path = out / f"contact_sheet_{direction}.png"
    cli_utils.save_png(path, cli_utils.make_grid(tiles, ncols=len(run_io.IMAGE_NAMES)))
    return path


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------
def run_dds(c: ml_collections.ConfigDict, mesh=None) -> pathlib.Path:
    """Run the experiment of config ``c``; returns the run directory."""
    from tqdm import tqdm
    validate(c)
    t0 = time.perf_counter()
    models, seg_fn = load_models(c)          # before touching the output: a bad path leaves nothing behind
    out = pathlib.Path(c.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = _start_run(c, out)
    run["versions"] = _versions()
    ckpt_io.write_json_atomic(out / "run.json", run)
    dcfg = dds_config(c)
    mesh = opt.seed_mesh() if mesh is None else mesh
    seeds = select_seeds(c)
    failed = {(d, s) for d, ss in run["failed_seeds"].items() for s in ss}
    pending = [s for s in seeds
               if any(not run_io.seed_is_done(out, d, s) and (d, s) not in failed for d in run["directions"])]
    logging.info("%d of %d seeds to do (%s)", len(pending), len(seeds), ", ".join(run["directions"]))
    run["timings"]["load_s"] = round(time.perf_counter() - t0, 3)
    per_seed = c.iterations * len(run["directions"])
    with tqdm(total=len(pending) * per_seed, unit="it", desc="DDS seed-iterations", dynamic_ncols=True,
              disable=None) as progress:
        for start in range(0, len(pending), c.batch_size):
            batch = pending[start:start + c.batch_size]
            run_batch(models, seg_fn, dcfg, c, mesh, batch, out, run, progress)
            ckpt_io.write_json_atomic(out / "run.json", run)
    for d in run["directions"]:
        write_contact_sheet(out, d, seeds)
    run["timings"]["total_s"] = round(time.perf_counter() - t0, 3)
    run["seeds"] = sorted(run["seeds"])
    ckpt_io.write_json_atomic(out / "run.json", run)
    return out
    return out
