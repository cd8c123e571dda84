"""DDS optimisation throughput: seed-iterations/s of the one jitted + vmapped + scanned step.

  python bench/bench_dds.py --size=256 --backbone=vgg16 --batches=1,4 --chunk=5
  python bench/bench_dds.py --size=64 --backbone=generator --batches=1,8,32 --chunk=10
  python bench/bench_dds.py --size=256 --batches=1,2,4 --memory_only      # XLA memory + FLOPs, no timing
  python bench/bench_dds.py --size=256 --batches=1,8,32,100 --precisions=float32,tf32,bf16 --other_batches=100 \
      --time_budget=220                                                  # bench/gpu.sh

Random generator / backbone weights (no downloads), paper mode (two generators, Z latent), masks are
centred squares. Reports compile time, seconds per chunk, seed-iterations/s and the compiled program's
memory (XLA's memory_analysis: arguments + outputs + temporaries; on a GPU also the allocator's peak)
and the achieved FLOP/s (XLA's cost_analysis FLOPs of the chunk / its wall time) next to a plain float32
matmul on the same machine, as a Markdown table for BENCHMARKS.md.

``--precisions`` / ``--remat`` set DDSConfig's ``precision`` / ``remat`` fields (the generators' and the
backbone's convolutions; generator rematerialisation), as ``--config.precision`` / ``--config.remat`` do.
"""
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from dds_jax import ops
from dds_jax.dds import optimize as opt
from dds_jax.models import stylegan2 as sg

FLAGS = flags.FLAGS
flags.DEFINE_integer("size", 256, "Generator resolution (config-f channel table).")
flags.DEFINE_integer("style_dim", 512, "Generator latent size (the issue-15 64² pair: 128).")
flags.DEFINE_string("backbone", "vgg16", "Perceptual backbone: a registry name or 'generator'.")
flags.DEFINE_string("batches", "1,4", "Comma-separated numbers of seeds optimised together.")
flags.DEFINE_integer("chunk", 5, "Iterations per compiled call.")
flags.DEFINE_integer("repeats", 2, "Timed chunks per configuration (after the compiling one).")
flags.DEFINE_string("mode", "paper", "paper | reference")
flags.DEFINE_string("precisions", "float32", f"Comma-separated generator precisions: {tuple(ops.PRECISIONS)}.")
flags.DEFINE_string("other_batches", None, "Batches for the precisions after the first (default: --batches).")
flags.DEFINE_string("remat", None, f"Generator remat option {sg.REMAT}; default: the mode's (DDSConfig).")
flags.DEFINE_bool("memory_only", False, "Compile only: memory analysis and FLOPs, no timing.")
flags.DEFINE_float("time_budget", 0, "Seconds; skip the configurations that would start after it (0: none).")


def _models(size, backbone, style_dim=512):
    config = sg.GeneratorConfig(size=size, style_dim=style_dim)
    gen_s = sg.from_variables(config, sg.init_variables(config, jax.random.PRNGKey(0)))
    gen_t = sg.from_variables(config, sg.init_variables(config, jax.random.PRNGKey(1)))
    params = None
    if backbone != "generator":
        from dds_jax.models import backbones
        params = backbones.random_params(backbone, seed=2)
    return opt.DDSModels.create(gen_s, gen_t, backbone, params)


def bench(models, cfg, batch, chunk, repeats, memory_only=False):
    mesh = opt.seed_mesh()
    size = models.config_s.size
    y = np.zeros((batch, size, size, 1), np.float32)
    y[:, size // 4:3 * size // 4, size // 4:3 * size // 4] = 1
    zs = jax.random.normal(jax.random.PRNGKey(3), (batch, models.config_s.style_dim))
    inputs = opt.prepare_inputs(models, zs, cfg, masks=(jnp.asarray(y), jnp.asarray(y)))
    inputs, _ = opt.pad_seeds(inputs, mesh.size)
    inputs = opt.shard_seeds(inputs, mesh)
    state = opt.init_state(models, inputs, cfg, jax.random.PRNGKey(4), mesh=mesh)
    run = opt.make_run_chunk(models, cfg, chunk, 0, mesh)
    t0 = time.perf_counter()
    compiled = run.lower(state, inputs).compile()
    compile_s = time.perf_counter() - t0
    peak_gb = memory_gib(compiled)
    flops = _flops(compiled)
    if memory_only:
        return compile_s, float("nan"), float("nan"), peak_gb, float("nan"), flops
    state, out = run(state, inputs)
    jax.block_until_ready(out.losses["loss"])
    t0 = time.perf_counter()
    for _ in range(repeats):
        state, out = run(state, inputs)
        jax.block_until_ready(out.losses["loss"])
    per_chunk = (time.perf_counter() - t0) / repeats
    return compile_s, per_chunk, batch * chunk / per_chunk, peak_gb, flops / per_chunk, flops


def memory_gib(compiled) -> float:
    """arguments + outputs + temporaries of a compiled program (XLA's memory_analysis), GiB."""
    mem = compiled.memory_analysis()
    if mem is None:
        return float("nan")
    return sum(getattr(mem, f, 0) for f in ("argument_size_in_bytes", "output_size_in_bytes",
                                             "temp_size_in_bytes")) / 2 ** 30


def device_peak_gib() -> float:
    """The allocator's peak since start (GPU/TPU), GiB; nan where the backend keeps no statistics."""
    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # the CPU client has none
        stats = {}
    return stats.get("peak_bytes_in_use", float("nan")) / 2 ** 30


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", float("nan")))


def matmul_flops_per_s(n: int = 2048, repeats: int = 5, precision=None) -> float:
    """Achieved FLOP/s of a plain n x n float32 matmul: the machine's practical ceiling."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n))
    f = jax.jit(lambda x: jnp.dot(x, x, precision=precision))
    f(a).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(repeats):
        f(a).block_until_ready()
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0)


def main(argv):
    del argv
    start = time.perf_counter()
    models = _models(FLAGS.size, FLAGS.backbone, FLAGS.style_dim)
    dev = jax.devices()[0]
    remat = opt.DDSConfig(mode=FLAGS.mode, remat=FLAGS.remat).resolved().remat   # None: the mode's default
    print(f"# DDS {FLAGS.mode} mode, generators {FLAGS.size}x{FLAGS.size} config-f style {FLAGS.style_dim}, backbone {FLAGS.backbone}, "
          f"generator remat {remat!r}, {len(jax.devices())} x {dev.platform} ({dev.device_kind}), "
          f"{platform.machine()}, jax {jax.__version__}")
    peak = float("nan")
    if not FLAGS.memory_only:
        peak = matmul_flops_per_s(precision=ops.precision_spec("float32").conv)
        print(f"# plain 2048^2 float32 matmul: {peak / 1e9:.1f} GFLOP/s")
    print("| size | precision | seeds | chunk | compile s | s / chunk | seed-it/s | s per 1000 it (all seeds) "
          "| peak GiB (XLA) | device peak GiB | GFLOP / seed-it | GFLOP/s | % of f32 matmul |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    last = 0.0
    for i, precision in enumerate(FLAGS.precisions.split(",")):
        cfg = opt.DDSConfig(mode=FLAGS.mode, backbone=FLAGS.backbone, precision=precision,
                            remat=remat).resolved()
        batches = FLAGS.other_batches if i and FLAGS.other_batches else FLAGS.batches
        for batch in (int(b) for b in batches.split(",")):
            elapsed = time.perf_counter() - start
            if FLAGS.time_budget and elapsed + last > FLAGS.time_budget:
                print(f"| {FLAGS.size} | {precision} | {batch} | {FLAGS.chunk} | skipped: {elapsed:.0f} s of the "
                      f"{FLAGS.time_budget:.0f} s budget used | | | | | | | | |", flush=True)
                continue
            t0 = time.perf_counter()
            c, t, ips, gb, fps, flops = bench(models, cfg, batch, FLAGS.chunk, FLAGS.repeats, FLAGS.memory_only)
            last = time.perf_counter() - t0
            per_seed_it = flops / (batch * FLAGS.chunk) / 1e9
            print(f"| {FLAGS.size} | {precision} | {batch} | {FLAGS.chunk} | {c:.1f} | {t:.2f} | {ips:.3f} "
                  f"| {1000 * batch / ips:.0f} | {gb:.2f} | {device_peak_gib():.2f} | {per_seed_it:.0f} "
                  f"| {fps / 1e9:.1f} | {100 * fps / peak:.0f}% |", flush=True)


if __name__ == "__main__":
    app.run(main)
