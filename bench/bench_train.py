"""GAN training speed: iterations/s of the jitted training step (from scratch and few-shot adaptation),
its compile time, and the blur (upfirdn2d) as separable sums vs XLA's depthwise convolution.

  python bench/bench_train.py --size=32 --channels=4:128,8:96,16:48,32:24 --batch=8 --iters=50

Random weights and random images (speed does not depend on the values). Prints Markdown tables.
"""
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from jax import lax

from dds_jax import ops
from dds_jax.gan import trainer
from dds_jax.models import stylegan2 as sg
from timing import time_compiled

FLAGS = flags.FLAGS
flags.DEFINE_integer("size", 32, "Resolution.")
flags.DEFINE_string("channels", "4:128,8:96,16:48,32:24", "Channels per resolution.")
flags.DEFINE_integer("style_dim", 64, "Style dimension.")
flags.DEFINE_integer("batch", 8, "Batch (adaptation uses its own default of 4 unless --adapt_batch).")
flags.DEFINE_integer("adapt_batch", 4, "Batch of the adaptation step.")
flags.DEFINE_integer("iters", 50, "Timed iterations (after the compile).")


def bench_step(g_config, cfg, iters):
    models = trainer.Models(g_config, trainer.default_d_config(g_config))
    state = trainer.init_state(models, cfg, jax.random.PRNGKey(0))
    buffers = sg.init_variables(g_config, jax.random.PRNGKey(1))["buffers"]
    source = jax.tree_util.tree_map(lambda x: jnp.asarray(np.array(x)), {"params": state.g, "buffers": buffers}) \
        if cfg.adapt else None
    real = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (cfg.batch, g_config.size, g_config.size, 3)),
                       jnp.float32)
    step = trainer.make_train_step(models, cfg)
    t0 = time.perf_counter()
    state, m = step(state, real, buffers, source)
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(iters):
        state, m = step(state, real, buffers, source)
    jax.block_until_ready(m)
    return compile_s, iters / (time.perf_counter() - t0)


def depthwise_blur(x, kernel, down, pad):
    c = x.shape[-1]
    x = lax.pad(x, jnp.array(0, x.dtype), ((0, 0, 0), (pad[0], pad[1], 0), (pad[0], pad[1], 0), (0, 0, 0)))
    w = jnp.broadcast_to(jnp.flip(jnp.asarray(kernel), (0, 1))[:, :, None, None], kernel.shape + (1, c))
    return lax.conv_general_dilated(x, w, (down, down), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    feature_group_count=c)


def main(argv):
    del argv
    pairs = [tuple(int(v) for v in item.split(":")) for item in FLAGS.channels.split(",")]
    g_config = sg.GeneratorConfig(size=FLAGS.size, style_dim=FLAGS.style_dim, n_mlp=4, channels=tuple(pairs))
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
    print("| run | batch | compile s | it/s |\n|---|---|---|---|")
    for name, cfg in (("from scratch", trainer.TrainConfig(batch=FLAGS.batch)),
                      ("few-shot adaptation", trainer.TrainConfig.few_shot(batch=FLAGS.adapt_batch))):
        compile_s, its = bench_step(g_config, cfg, FLAGS.iters)
        print(f"| {name} | {cfg.batch} | {compile_s:.1f} | {its:.2f} |", flush=True)
    print("\n| blur (down 2, [1,3,3,1]) on [16, 64, 64, 64], forward + backward | ms |\n|---|---|")
    k = ops.make_kernel([1, 3, 3, 1])
    x = jax.random.normal(jax.random.PRNGKey(0), (16, 64, 64, 64))
    for name, fn in (("depthwise conv", lambda x: depthwise_blur(x, k, 2, (1, 1))),
                     ("separable sums (ops.upfirdn2d)", lambda x: ops.upfirdn2d(x, k, down=2, pad=(1, 1)))):
        _, s = time_compiled(jax.grad(lambda x: jnp.sum(fn(x) ** 2)), (x,), 5)
        print(f"| {name} | {1000 * s:.1f} |", flush=True)


if __name__ == "__main__":
    app.run(main)
