"""A whole DDS run from a config: load models, make inputs and masks, optimise, write results.

Seeds are processed in batches of ``config.batch_size``; each batch is one vmapped, sharded problem
axis (see :mod:`dds_jax.dds.optimize`). Python only runs between chunks of ``config.chunk``
iterations: progress bar, snapshots, orbax checkpoints of the optimiser state. A run directory that
already holds finished seeds is continued with ``config.resume=True`` (finished seeds are skipped, the
batch in progress restarts from its last checkpoint).
"""
import dataclasses
import json
import pathlib
import platform
import shutil
import time
from typing import Dict, List, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

import dds_jax
from dds_jax import generation
from dds_jax import checkpoint as ckpt_io
from dds_jax import files
from dds_jax.dds import image_inputs, run_io
from dds_jax.dds.config import RESUME_FIELDS, dds_config, select_seeds, validate
from dds_jax.dds import objectives
from dds_jax.dds import optimize as opt
from dds_jax.models import stylegan2 as sg


class NoResultsError(ValueError):
    """A run in which no seed could be optimised (every mask empty, every problem non-finite)."""


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------
def load_models(c: ml_collections.ConfigDict):
    """(DDSModels, seg_fn, (gen_s, gen_t), fg_fn) for the config; seg_fn(images, features) -> binary part
    masks [B,H,W,1]; the loaded generators for inverting the user's images; fg_fn the segmenter's
    foreground (every class but the background) for aligning them (``config.align_images``).

    ``models.latent_avgs`` are the truncation centres the other commands use too (the checkpoint's
    ``latent_avg``, else the same ``truncation_mean``-z estimate as ``sample`` and ``segment``), so
    seed N is the same image in every command."""
    from dds_jax.segmentation import oneshot as segmentation
    gen_s = sg.load_generator(ckpt_io.resolve_model_path(c.source_ckpt))
    gen_t = sg.load_generator(ckpt_io.resolve_model_path(c.target_ckpt))
    backbone_params = None
    if c.backbone != "generator":
        backbone_params = ckpt_io.load_model(ckpt_io.resolve_model_path(c.backbone_ckpt), expect_kind=c.backbone).params
    dcfg = dds_config(c).resolved()
    models = opt.DDSModels.create(gen_s, gen_t, c.backbone, backbone_params)
    avgs = tuple(None if t >= 1 else generation.truncation_mean(g, jax.random.PRNGKey(0), dcfg.truncation_mean)
                 for g, t in ((gen_s, dcfg.truncation_source), (gen_t, dcfg.truncation_target)))
    models = dataclasses.replace(models, latent_avgs=avgs)
    seg = segmentation.load_segmenter(ckpt_io.resolve_model_path(c.segmenter_ckpt))
    for gen, name in ((gen_s, "source"), (gen_t, "target")):
        segmentation.check_compatible(gen.config, seg)
    parts = segmentation.parse_parts(c.parts, seg)
    return models, segmentation.binary_mask_fn(seg, parts), (gen_s, gen_t), segmentation.foreground_mask_fn(seg)


# --------------------------------------------------------------------------------------------------
# Run bookkeeping
# --------------------------------------------------------------------------------------------------
def _config_dict(c) -> dict:
    return {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in c.items()}


def _result_fields(c) -> dict:
    """Every field that changes a run's results (:data:`RESUME_FIELDS`), DDS fields as resolved
    (mode defaults filled in, direction aliases normalised): equal dicts = the same results."""
    d = dataclasses.asdict(dds_config(c).resolved())
    # align_images only acts on two different image folders (a run from before it existed did not align)
    d["align_images"] = bool(c.get("align_images")) and image_inputs.unpaired(c)
    return {k: d[k] if k in d else c.get(k) for k in RESUME_FIELDS}


def resume_differences(old_config: dict, c) -> List[str]:
    """'field: old -> new' for every result-changing field in which ``c`` differs from a run's config."""
    old, new = _result_fields(old_config), _result_fields(c)
    return [f"{k}: {old[k]!r} -> {new[k]!r}" for k in RESUME_FIELDS if old[k] != new[k]]


def _start_run(c, out: pathlib.Path) -> dict:
    """Create or reopen ``run.json``; refuse to mix runs."""
    path = out / "run.json"
    if path.is_file():
        run = run_io.load_run(out)
        if not c.resume:
            raise FileExistsError(f"{out} already holds a DDS run; continue it with --config.resume=True "
                                  "or choose another --config.output_dir")
        diff = resume_differences(run["config"], c)
        if diff:
            raise ValueError(f"cannot resume {out}: the config differs in {'; '.join(diff)} (resume with the "
                             "run's values or choose another --config.output_dir)")
        run["config"] = _config_dict(c)
        return run
    direction = dds_config(c).direction        # d1/d2 -> t2s/s2t
    directions = ["s2t", "t2s"] if direction == "both" else [direction]
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
    latent0 = jnp.concatenate([opt.initial_latents(models, dcfg, k, 1, _take(inputs, np.array([i])))
                               for i, k in enumerate(keys)])
    noises0 = None
    if dcfg.objective.fresh_noise:
        shapes = models.config_s.noise_shapes()
        noises0 = [jnp.stack([jax.random.normal(jax.random.fold_in(k, 1 + j), s[1:]) for k in keys])
                   for j, s in enumerate(shapes)]
    return opt.init_state(models, inputs, dcfg, base, latent0=latent0, noises0=noises0, mesh=mesh)


def _make_inputs(models, seg_fn, dcfg, c, batch_seeds, images=None):
    """The problems of a batch: seeds -> z -> G_s, G_t (truncated), or images ``batch_seeds`` of
    ``images`` (an :class:`image_inputs.ImageSet`) when the run is on the user's images."""
    if images is not None:
        return image_inputs.make_inputs(images, batch_seeds, dcfg, seg_fn)
    z_s = files.z_from_seeds(batch_seeds, models.config_s.style_dim)
    if c.paired:
        zs = jnp.asarray(z_s)
    else:
        z_t = files.z_from_seeds([s + c.target_seed_offset for s in batch_seeds], models.config_t.style_dim)
        zs = (jnp.asarray(z_s), jnp.asarray(z_t))
    return opt.prepare_inputs(models, zs, dcfg, jax.random.PRNGKey(c.init_seed), seg_fn=seg_fn,
                              trunc_latents=models.latent_avgs)


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
    return {"source": files.to_uint8(x_s), "target": files.to_uint8(x_t),
            "mask_source": mask(y_s), "mask_target": mask(y_t),
            "crossover": files.to_uint8(np.asarray(inputs.x_c[i])), "dds": files.to_uint8(result)}


def run_batch(models, seg_fn, dcfg, c, mesh, batch_seeds: Sequence[int], out: pathlib.Path, run: dict,
              progress=None, images=None):
    t0 = time.perf_counter()
    inputs = _make_inputs(models, seg_fn, dcfg, c, batch_seeds, images)
    # Empty masks: warn, report, and leave the problem out (never optimise it silently).
    empty = np.asarray(opt.mask_is_empty(inputs.y_s)) | np.asarray(opt.mask_is_empty(inputs.y_t))
    for i in np.flatnonzero(empty):
        seed, d = batch_seeds[int(inputs.seed[i])], _direction(inputs.t2s[i])
        logging.warning("seed %d (%s): a segmentation mask has no foreground pixels; seed skipped", seed, d)
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

    total = int(dcfg.resolved().iterations)
    state_dir = out / _state_name()
    done, losses, snaps, snap_steps = 0, [], [], []
    tag = {"seeds": [int(batch_seeds[int(s)]) for s in np.asarray(inputs.seed)[:n]],
           "t2s": [bool(t) for t in np.asarray(inputs.t2s)[:n]]}
    if c.resume and (state_dir / "progress.json").is_file():
        saved = json.loads((state_dir / "progress.json").read_text())
        if saved.get("tag") == tag:
            state = opt.shard_seeds(ckpt_io.restore_state(state_dir / "state", jax.device_get(state)), mesh)
            with np.load(state_dir / "progress.npz") as z:
                losses = [{name[5:]: z[name] for name in z.files if name.startswith("loss_")}]
                if "snapshots" in z.files:
                    snaps, snap_steps = [z["snapshots"]], [z["snapshot_steps"]]
            done = int(saved["done"])
            logging.info("resumed batch %s at iteration %d", tag["seeds"], done)
    last_ckpt = step_before = done
    for done, state, o in opt.iterate_chunks(models, dcfg, state, inputs, n, done=done, chunk=int(c.chunk),
                                             snapshot_every=int(c.snapshot_every or 0), mesh=mesh):
        losses.append({name: np.asarray(v) for name, v in o.losses.items()})
        if o.snapshots is not None:
            snaps.append(files.to_uint8(o.snapshots))
            snap_steps.append(np.asarray(o.snapshot_steps))
        if progress is not None:
            progress.update((done - step_before) * n)
            progress.set_postfix(loss=f"{float(np.nanmean(o.losses['loss'][-1])):.4f}")
        step_before = done
        if c.checkpoint_every and done - last_ckpt >= c.checkpoint_every and done < total:
            _save_progress(state_dir, state, losses, snaps, snap_steps, done, tag)
            last_ckpt = done

    images = jax.device_get(opt.unpad(opt.final_images(models, state, inputs, dcfg), n))["result"]
    all_losses = {name: np.concatenate([l[name] for l in losses]) for name in (losses[0] if losses else ())}
    if snaps:    # the GIF / the FID curve end with the final x̂ (after the last update)
        snaps.append(files.to_uint8(images)[None])
        snap_steps.append(np.full((1, images.shape[0]), total, np.int64))
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


def _state_name() -> str:
    """The batch-in-progress checkpoint folder: one per process of a multi-process run."""
    return "state" if jax.process_count() == 1 else f"state_{jax.process_index()}"


def _save_progress(state_dir, state, losses, snaps, snap_steps, done, tag):
    state_dir.mkdir(parents=True, exist_ok=True)
    ckpt_io.save_state(state_dir / "state", state)
    arrays = {f"loss_{name}": np.concatenate([l[name] for l in losses]) for name in losses[0]}
    if snaps:
        arrays["snapshots"] = np.concatenate(snaps)
        arrays["snapshot_steps"] = np.concatenate(snap_steps)
    files.save_npz(state_dir / "progress.npz", **arrays)
    files.write_json(state_dir / "progress.json", {"done": done, "tag": tag})


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
        tiles += [files.read_image(d / f"{name}.png") for name in run_io.IMAGE_NAMES]
    if not tiles:
        return None
    path = out / f"contact_sheet_{direction}.png"
    files.save_png(path, files.make_grid(tiles, ncols=len(run_io.IMAGE_NAMES)))
    return path


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------
def run_dds(c: ml_collections.ConfigDict, mesh=None, progress_bar=None) -> pathlib.Path:
    """Run the experiment of config ``c``; returns the run directory. ``progress_bar``: a tqdm-like
    class used instead of tqdm (``update(n)``, ``set_postfix``; the studio's live progress).

    Everything is checked (config, seeds, models) before the output directory is touched; a new run
    in which no seed could be optimised removes what it wrote and raises :class:`NoResultsError`."""
    from tqdm import tqdm
    validate(c)
    t0 = time.perf_counter()
    dcfg = dds_config(c)
    seeds = select_seeds(c)
    models, seg_fn, gens, fg_fn = load_models(c)    # before touching the output: a bad path leaves nothing behind
    dcfg, note = objectives.for_generators(dcfg, models.config_s, models.config_t)
    if note:
        logging.warning("%s", note)
    out = pathlib.Path(c.output_dir)
    rank, n_proc = jax.process_index(), jax.process_count()
    new_dir, new_run = not out.exists(), not (out / "run.json").is_file()
    if not new_run and rank == 0:
        _start_run(c, out)                   # refuses to mix runs before anything is written
    images = image_inputs.load(c, *gens, out, foreground_fn=fg_fn) if image_inputs.uses_images(c) else None
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        run = _start_run(c, out)
        run["versions"] = _versions()
        if images is not None:
            run["images"] = images.report()
        files.write_json(out / "run.json", run)
    _barrier("dds_run_started")
    if rank > 0:                             # the others keep a record of their own seeds, merged at the end
        run = dict(run_io.load_run(out), seeds=[], failed_seeds={}, failures=[], final_losses={}, batches=[],
                   timings={})
    mesh = opt.seed_mesh() if mesh is None else mesh
    failed = {(d, s) for d, ss in run["failed_seeds"].items() for s in ss}
    pending = [s for s in seeds
               if any(not run_io.seed_is_done(out, d, s) and (d, s) not in failed for d in run["directions"])]
    pending = pending[rank::n_proc]          # multi-process: this process's share (same list everywhere)
    logging.info("%d of %d seeds to do (%s)%s", len(pending), len(seeds), ", ".join(run["directions"]),
                 f" in process {rank} of {n_proc}" if n_proc > 1 else "")
    record = out / ("run.json" if rank == 0 else f"run.process_{rank}.json")
    run["timings"]["load_s"] = round(time.perf_counter() - t0, 3)
    per_seed = dcfg.resolved().iterations * len(run["directions"])
    with (progress_bar or tqdm)(total=len(pending) * per_seed, unit="it", desc="DDS seed-iterations",
                                dynamic_ncols=True, disable=None) as progress:
        for start in range(0, len(pending), c.batch_size):
            batch = pending[start:start + c.batch_size]
            run_batch(models, seg_fn, dcfg, c, mesh, batch, out, run, progress, images)
            files.write_json(record, run)
    _barrier("dds_run_done")
    if rank > 0:
        return out
    for k in range(1, n_proc):
        _merge_record(run, out / f"run.process_{k}.json")
    if not run["seeds"]:
        _no_results(out, run, new_dir, new_run)
    for d in run["directions"]:
        write_contact_sheet(out, d, seeds)
    run["timings"]["total_s"] = round(time.perf_counter() - t0, 3)
    run["seeds"] = sorted(run["seeds"])
    files.write_json(out / "run.json", run)
    for k in range(1, n_proc):
        (out / f"run.process_{k}.json").unlink(missing_ok=True)
    return out


def _barrier(name: str) -> None:
    """Wait for every process of a multi-process run (``jax.distributed``); no-op in one process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)


def _merge_record(run: dict, path: pathlib.Path) -> None:
    """Add another process's record (its seeds, failures, losses, batches) to ``run``."""
    other = json.loads(path.read_text())
    run["seeds"] = sorted(set(run["seeds"]) | set(other["seeds"]))
    for d, ss in other["failed_seeds"].items():
        run["failed_seeds"].setdefault(d, [])
        run["failed_seeds"][d] += [s for s in ss if s not in run["failed_seeds"][d]]
    run["failures"] += other["failures"]
    for d, losses in other["final_losses"].items():
        run["final_losses"].setdefault(d, {}).update(losses)
    run["batches"] += other["batches"]


def _no_results(out: pathlib.Path, run: dict, new_dir: bool, new_run: bool):
    """No seed finished: remove what a new run wrote (so the corrected command runs) and raise."""
    shown = [f"seed {f['seed']} ({f['direction']}): {f['reason']}" for f in run["failures"][:4]]
    more = f" and {len(run['failures']) - 4} more" if len(run["failures"]) > 4 else ""
    if new_run:
        shutil.rmtree(out / "state", ignore_errors=True)
        (out / "run.json").unlink(missing_ok=True)
        if new_dir and not any(out.iterdir()):
            out.rmdir()
    hint = (" (the segmenter finds no pixel of config.parts; choose other --config.parts or seeds)"
            if any(f["reason"] == "empty mask" for f in run["failures"]) else "")
    raise NoResultsError(f"no seed could be optimised, nothing written to {out}: "
                         f"{'; '.join(shown) or 'no seeds'}{more}{hint}")
