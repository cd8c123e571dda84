"""The training loop around the jitted step: output folder, orbax checkpoints, resume, sample grids,
progress bar, metrics log. Shared by ``python -m dds_jax.cli.train`` and ``python -m dds_jax.cli.adapt``.

Output folder::

    OUT/train.json         what was trained (architectures, hyper-parameters, data, progress, timings)
    OUT/generator/         the EMA generator as a dds-jax model (every other command accepts it)
    OUT/discriminator/     the discriminator (start of a later adaptation)
    OUT/state/             the whole training state (orbax), for --resume
    OUT/samples/NNNNNN.png a grid of the EMA generator on fixed z's, every sample_every iterations
    OUT/metrics.jsonl      losses every log_every iterations
"""
import dataclasses
import json
import pathlib
import shutil
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from dds_jax import checkpoint, files
from dds_jax.gan import data, trainer
from dds_jax.models import discriminator as disc
from dds_jax.models import stylegan2 as sg

OWNED = ("train.json", "generator", "discriminator", "state", "samples", "metrics.jsonl")


@dataclasses.dataclass
class RunSpec:
    """Everything that defines a training run (compared on resume)."""
    mode: str                          # "train" or "adapt"
    g_config: sg.GeneratorConfig
    d_config: disc.DiscriminatorConfig
    train: trainer.TrainConfig
    steps: int
    seed: int = 0
    data: str = ""
    source: str = ""

    def to_dict(self) -> dict:
        return {"mode": self.mode, "generator": self.g_config.to_dict(), "discriminator": self.d_config.to_dict(),
                "train": self.train.to_dict(), "seed": self.seed, "data": self.data, "source": self.source}


def _train_defaults() -> dict:
    """TrainConfig's defaults as train.json stores them: the values of fields an older run predates (the
    behaviour it ran with), so a run made before a new hyper-parameter existed still resumes."""
    return json.loads(json.dumps(trainer.TrainConfig().to_dict()))


def prepare_out(out, spec: RunSpec, resume: bool, overwrite: bool) -> bool:
    """Create ``out``; returns True when a previous state should be restored. A folder with a run in it
    needs ``resume`` (same spec) or ``overwrite``."""
    out = pathlib.Path(out)
    meta = out / "train.json"
    if meta.exists() and not overwrite:
        if not resume:
            raise FileExistsError(f"{out} already holds a training run; pass --resume to continue it or "
                                  "--overwrite to start again")
        with open(meta) as f:
            old = json.load(f)
        new = json.loads(json.dumps(spec.to_dict()))
        old["train"] = {**_train_defaults(), **old.get("train", {})}
        diff = sorted(k for k in new if old.get(k) != new[k])
        if diff:
            raise ValueError(f"{out}: cannot resume, the run was made with different {diff}; "
                             "use the original settings or --overwrite")
        return (out / "state").exists()
    if overwrite:
        for name in OWNED:
            p = out / name
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    files.write_json(meta, dict(spec.to_dict(), steps_done=0, steps=spec.steps))
    return False


def save_state(out, state: trainer.TrainState) -> None:
    checkpoint.save_state(pathlib.Path(out) / "state", state)


def restore_state(out, like: trainer.TrainState) -> trainer.TrainState:
    restored = checkpoint.restore_state(pathlib.Path(out) / "state", like)
    return jax.tree_util.tree_map(jnp.asarray, restored)


def export_models(out, spec: RunSpec, state: trainer.TrainState, buffers) -> None:
    """The EMA generator (+ the training noise buffers) and the discriminator as dds-jax models."""
    out = pathlib.Path(out)
    g_vars = {"params": jax.device_get(state.g_ema), "buffers": jax.device_get(buffers)}
    checkpoint.save_model(out / "generator", "stylegan2", spec.g_config.to_dict(), g_vars, overwrite=True)
    checkpoint.save_model(out / "discriminator", "discriminator", spec.d_config.to_dict(),
                          jax.device_get(state.d), overwrite=True)


def sample_grid(spec: RunSpec, state, buffers, z) -> np.ndarray:
    images = trainer.make_sampler(spec.g_config)({"params": state.g_ema, "buffers": buffers}, z)
    images = files.to_uint8(jax.device_get(images))
    return files.make_grid(list(images), ncols=int(np.ceil(np.sqrt(len(images)))))


def fit(out, spec: RunSpec, state: trainer.TrainState, buffers, batch_at: Callable[[int], np.ndarray],
        source_variables=None, *, checkpoint_every: int = 500, sample_every: int = 500, log_every: int = 10,
        n_sample: int = 16, progress: bool = True, stop_after: Optional[int] = None) -> trainer.TrainState:
    """Run iterations ``state.step .. spec.steps - 1``; checkpoint (state + exported models) every
    ``checkpoint_every`` and at the end; ``stop_after`` ends early after that many iterations of this
    call (an interruption, for tests) after writing a checkpoint."""
    from tqdm import tqdm
    out = pathlib.Path(out)
    step_fn = trainer.make_train_step(trainer.Models(spec.g_config, spec.d_config), spec.train)
    sample_z = jnp.asarray(files.z_from_seeds(range(n_sample), spec.g_config.style_dim))
    start = int(state.step)
    meta_path = out / "train.json"
    with open(meta_path) as f:
        meta = json.load(f)
    elapsed = float(meta.get("train_seconds", 0.0))
    bar = tqdm(total=spec.steps, initial=start, desc=spec.mode, unit="it", disable=not progress,
               dynamic_ncols=True)
    shown = {}
    t0 = time.perf_counter()
    done_here = 0
    step = start
    with open(out / "metrics.jsonl", "a") as log:
        while step < spec.steps:
            real = jnp.asarray(batch_at(step))
            state, metrics = step_fn(state, real, buffers, source_variables)
            step += 1
            done_here += 1
            last = step == spec.steps or (stop_after is not None and done_here >= stop_after)
            if step % log_every == 0 or last:
                values = {k: float(v) for k, v in jax.device_get(metrics).items()}
                trainer.check_finite(values, step)
                shown.update({k: v for k, v in values.items() if k not in ("r1", "path") or v != 0.0})
                log.write(json.dumps({"step": step, **values}) + "\n")
                log.flush()
                bar.set_postfix({k: f"{shown[k]:.3f}" for k in ("d", "g", "r1", "path", "cdc") if k in shown})
            bar.update(1)
            if step % sample_every == 0 or last:
                files.save_png(out / "samples" / f"{step:06d}.png", sample_grid(spec, state, buffers, sample_z))
            if step % checkpoint_every == 0 or last:
                jax.block_until_ready(state)
                elapsed_now = elapsed + time.perf_counter() - t0
                save_state(out, state)
                export_models(out, spec, state, buffers)
                meta.update(steps_done=step, train_seconds=round(elapsed_now, 2),
                            seconds_per_iteration=round((time.perf_counter() - t0) / max(done_here, 1), 4))
                files.write_json(meta_path, meta)
                logging.info("checkpoint at iteration %d in %s", step, out)
            if last:
                break
    bar.close()
    return state


# --------------------------------------------------------------------------------------------------
# Training from scratch (``python -m dds_jax.cli.train``); adaptation is in dds_jax.gan.adapt
# --------------------------------------------------------------------------------------------------
def data_source(spec: str, batch: int, size: int, seed: int):
    """``render:photo`` / ``render:sketch`` (endless procedural faces) or a folder of images."""
    if spec.startswith("render:"):
        return data.render_batches(spec.split(":", 1)[1], batch, size, seed)
    return data.folder_batches(data.load_image_folder(spec, size), batch, seed)


def run_training(out, g_config: sg.GeneratorConfig, cfg: trainer.TrainConfig, steps: int, data_spec: str,
                 seed: int = 0, resume: bool = False, overwrite: bool = False, **loop):
    """Train (or resume) a generator from scratch; returns the final state."""
    d_config = trainer.default_d_config(g_config)
    spec = RunSpec("train", g_config, d_config, cfg, steps, seed=seed, data=data_spec)
    batch_at = data_source(data_spec, cfg.batch, g_config.size, seed)
    restore = prepare_out(out, spec, resume, overwrite)
    models = trainer.Models(g_config, d_config)
    key = jax.random.PRNGKey(seed)
    state = trainer.init_state(models, cfg, key)
    buffers = sg.init_variables(g_config, jax.random.fold_in(key, 7))["buffers"]
    if restore:
        state = restore_state(out, state)
        logging.info("resuming %s at iteration %d", out, int(state.step))
    return fit(out, spec, state, buffers, batch_at, **loop)
