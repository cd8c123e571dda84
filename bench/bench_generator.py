"""Generator forward throughput: images/s and compile time, fused vs non-fused modulation.

  python bench/bench_generator.py --size=256 --batches=1,4,16 --repeats=3

Random weights (no downloads). Prints a Markdown table for BENCHMARKS.md.
"""
import platform
import time

import jax
from absl import app, flags

from dds_jax.models import stylegan2 as sg

FLAGS = flags.FLAGS
flags.DEFINE_integer("size", 256, "Generator resolution.")
flags.DEFINE_string("batches", "1,4,16", "Comma-separated batch sizes.")
flags.DEFINE_integer("repeats", 3, "Timed calls per configuration (after one warm-up).")
flags.DEFINE_string("modes", "unfused,fused", "Modulation implementations to compare.")


def bench(config, fused, batch, repeats):
    variables = sg.init_variables(config, jax.random.PRNGKey(0))
    module = sg.Generator(config, fused=fused)
    fwd = jax.jit(lambda v, z: module.apply(v, z)[0])
    z = jax.random.normal(jax.random.PRNGKey(1), (batch, config.style_dim))
    t0 = time.perf_counter()
    compiled = fwd.lower(variables, z).compile()
    compile_s = time.perf_counter() - t0
    compiled(variables, z).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(repeats):
        compiled(variables, z).block_until_ready()
    per_call = (time.perf_counter() - t0) / repeats
    return compile_s, per_call, batch / per_call


def main(argv):
    del argv
    config = sg.GeneratorConfig(size=FLAGS.size)
    dev = jax.devices()[0]
    print(f"# generator {FLAGS.size}x{FLAGS.size}, device {dev.platform} ({dev.device_kind}), "
          f"{platform.processor() or platform.machine()}, jax {jax.__version__}")
    print("| modulation | batch | compile s | s / call | images/s |")
    print("|---|---|---|---|---|")
    for mode in FLAGS.modes.split(","):
        for batch in (int(b) for b in FLAGS.batches.split(",")):
            c, t, ips = bench(config, mode == "fused", batch, FLAGS.repeats)
            print(f"| {mode} | {batch} | {c:.1f} | {t:.3f} | {ips:.2f} |", flush=True)


if __name__ == "__main__":
    app.run(main)
