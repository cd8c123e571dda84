"""FewShotCNN inference on a full generator feature set: memory-light first layer vs the concatenated input.

  python bench/bench_segmenter.py --size=256 --batches=1,16 --repeats=2
  python bench/bench_segmenter.py --naive_batches=1 --run_naive=False   # naive: compile-time memory only

Random weights and random features of the shapes a config-f generator of ``--size`` produces (13 maps,
5376 channels at 256x256; no downloads). Peak memory is XLA's compile-time ``memory_analysis()``:
``temp`` (scratch the program needs) and ``peak`` = arguments + outputs + temp. Prints a Markdown table
for BENCHMARKS.md.
"""
import datetime
import os
import platform
import time

import jax
from absl import app, flags

from dds_jax.models import segmenter as seg
from dds_jax.models import stylegan2 as sg

FLAGS = flags.FLAGS
flags.DEFINE_integer("size", 256, "Image size of the (config-f) generator whose features are segmented.")
flags.DEFINE_enum("arch", "S", ["S", "M", "L"], "FewShotCNN size.")
flags.DEFINE_integer("n_class", 2, "Segmenter classes.")
flags.DEFINE_string("batches", "1,16", "Comma-separated batch sizes for the memory-light path.")
flags.DEFINE_string("naive_batches", "1,16", "Batch sizes for the concatenated-input path.")
flags.DEFINE_bool("run_naive", True, "Also time the concatenated path (else compile and report memory only).")
flags.DEFINE_integer("max_naive_run_batch", 1, "Time the concatenated path only up to this batch size.")
flags.DEFINE_integer("repeats", 2, "Timed calls per configuration (after one warm-up).")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _features(config: sg.GeneratorConfig, batch: int, key):
    keys = jax.random.split(key, config.num_layers)
    return [jax.random.normal(k, (batch, r, r, c))
            for k, r, c in zip(keys, config.feature_sizes, config.feature_channels)]


def bench(params, feats, image_size, memory_light: bool, run: bool, repeats: int):
    fwd = jax.jit(lambda p, f: seg.logits_from_features(p, f, image_size, memory_light=memory_light))
    t0 = time.perf_counter()
    compiled = fwd.lower(params, feats).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    temp = getattr(mem, "temp_size_in_bytes", float("nan"))
    peak = temp + getattr(mem, "argument_size_in_bytes", 0) + getattr(mem, "output_size_in_bytes", 0)
    per_call = float("nan")
    if run:
        compiled(params, feats).block_until_ready()
        t0 = time.perf_counter()
        for _ in range(repeats):
            compiled(params, feats).block_until_ready()
        per_call = (time.perf_counter() - t0) / repeats
    return compile_s, per_call, temp, peak


def main(argv):
    del argv
    config = sg.GeneratorConfig(size=FLAGS.size)
    in_ch = sum(config.feature_channels)
    params = seg.init_params(jax.random.PRNGKey(0), in_ch, FLAGS.n_class, FLAGS.arch)
    dev = jax.devices()[0]
    print(f"# FewShotCNN {FLAGS.arch} on {config.num_layers} feature maps ({in_ch} channels), "
          f"{FLAGS.size}x{FLAGS.size}; device {dev.platform} ({dev.device_kind}); CPU {_cpu_model()}, "
          f"nproc {os.cpu_count()}; jax {jax.__version__}; {datetime.date.today().isoformat()}")
    print("| first layer | batch | compile s | s / call | images/s | temp GiB | peak GiB |")
    print("|---|---|---|---|---|---|---|")
    gib = 2.0 ** 30
    rows = [(True, int(b)) for b in FLAGS.batches.split(",") if b]
    rows += [(False, int(b)) for b in FLAGS.naive_batches.split(",") if b]
    for memory_light, batch in rows:
        feats = _features(config, batch, jax.random.PRNGKey(batch))
        run = memory_light or (FLAGS.run_naive and batch <= FLAGS.max_naive_run_batch)
        c, t, temp, peak = bench(params, feats, FLAGS.size, memory_light, run, FLAGS.repeats)
        name = "memory-light" if memory_light else "concatenated (naive)"
        ips = batch / t if t == t else float("nan")
        tcol = f"{t:.2f}" if t == t else "not run"
        ipscol = f"{ips:.2f}" if ips == ips else "-"
        print(f"| {name} | {batch} | {c:.1f} | {tcol} | {ipscol} | {temp / gib:.3f} | {peak / gib:.3f} |",
              flush=True)
        del feats


if __name__ == "__main__":
    app.run(main)
