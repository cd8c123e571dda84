"""DDS optimisation throughput: seed-iterations/s of the one jitted + vmapped + scanned step.

  python bench/bench_dds.py --size=256 --backbone=vgg16 --batches=1,4 --chunk=5
  python bench/bench_dds.py --size=64 --backbone=generator --batches=1,8,32 --chunk=10

Random generator / backbone weights (no downloads), paper mode (two generators, Z latent), masks are
centred squares. Reports compile time, seconds per chunk, seed-iterations/s and the compiled program's
memory (XLA's memory_analysis: arguments + outputs + temporaries) and the achieved FLOP/s (XLA's
cost_analysis FLOPs of the chunk / its wall time) next to a plain float32 matmul on the same machine,
as a Markdown table for BENCHMARKS.md.
"""
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from dds_jax.dds import optimize as opt
from dds_jax.models import stylegan2 as sg

FLAGS = flags.FLAGS
flags.DEFINE_integer("size", 256, "Generator resolution (config-f channel table).")
flags.DEFINE_string("backbone", "vgg16", "Perceptual backbone: a registry name or 'generator'.")
flags.DEFINE_string("batches", "1,4", "Comma-separated numbers of seeds optimised together.")
flags.DEFINE_integer("chunk", 5, "Iterations per compiled call.")
flags.DEFINE_integer("repeats", 2, "Timed chunks per configuration (after the compiling one).")
flags.DEFINE_string("mode", "paper", "paper | reference")


def _models(size, backbone):
    config = sg.GeneratorConfig(size=size)
    gen_s = sg.from_variables(config, sg.init_variables(config, jax.random.PRNGKey(0)))
    gen_t = sg.from_variables(config, sg.init_variables(config, jax.random.PRNGKey(1)))
    params = None
    if backbone != "generator":
        from dds_jax.models import backbones
        params = backbones.random_params(backbone, seed=2)
    return opt.DDSModels.create(gen_s, gen_t, backbone, params)


def bench(models, cfg, batch, chunk, repeats):
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
    mem = compiled.memory_analysis()
    peak_gb = float("nan")
    if mem is not None:
        peak_gb = sum(getattr(mem, f, 0) for f in ("argument_size_in_bytes", "output_size_in_bytes",
                                                    "temp_size_in_bytes")) / 2 ** 30
    flops = _flops(compiled)
    state, out = run(state, inputs)
    jax.block_until_ready(out.losses["loss"])
    t0 = time.perf_counter()
    for _ in range(repeats):
        state, out = run(state, inputs)
        jax.block_until_ready(out.losses["loss"])
    per_chunk = (time.perf_counter() - t0) / repeats
    return compile_s, per_chunk, batch * chunk / per_chunk, peak_gb, flops / per_chunk


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", float("nan")))


def matmul_flops_per_s(n: int = 2048, repeats: int = 5) -> float:
    """Achieved FLOP/s of a plain n x n float32 matmul: the machine's practical ceiling."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n))
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(repeats):
        f(a).block_until_ready()
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0)


def main(argv):
    del argv
    models = _models(FLAGS.size, FLAGS.backbone)
    cfg = opt.DDSConfig(mode=FLAGS.mode, backbone=FLAGS.backbone).resolved()
    dev = jax.devices()[0]
    print(f"# DDS {FLAGS.mode} mode, generators {FLAGS.size}x{FLAGS.size} config-f, backbone {FLAGS.backbone}, "
          f"{len(jax.devices())} x {dev.platform} ({dev.device_kind}), {platform.machine()}, jax {jax.__version__}")
    peak = matmul_flops_per_s()
    print(f"# plain 2048^2 float32 matmul: {peak / 1e9:.1f} GFLOP/s")
    print("| size | seeds | chunk | compile s | s / chunk | seed-it/s | s per 1000 it (all seeds) | peak GiB "
          "| GFLOP/s | % of matmul |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for batch in (int(b) for b in FLAGS.batches.split(",")):
        c, t, ips, gb, fps = bench(models, cfg, batch, FLAGS.chunk, FLAGS.repeats)
        print(f"| {FLAGS.size} | {batch} | {FLAGS.chunk} | {c:.1f} | {t:.2f} | {ips:.3f} | {1000 * batch / ips:.0f} "
              f"| {gb:.2f} | {fps / 1e9:.1f} | {100 * fps / peak:.0f}% |", flush=True)


if __name__ == "__main__":
    app.run(main)
