"""FLOPs (XLA cost_analysis) and time of ONE DDS reference-mode iteration, unrolled (no loop), split into
its generator and backbone parts: where a configuration's floor lies on this machine.

  python bench/step_flops.py --size=64 --style_dim=128            # the issue-15 64² pair
  python bench/step_flops.py --size=256 --repeats=0               # FLOPs only (compile, no timing)

Parts: "generator" = G(ŵ) forward + the gradient w.r.t. ŵ of a fixed linear function of the image;
"backbone" = VGG16 (to relu4_2) of the image up-sampled to 256² forward + its input gradient; "step" =
the whole reference-mode loss and its gradient (what the DDS chunk runs per iteration). The floor is
FLOPs / the plain float32 matmul rate measured next to it.
"""
import sys

import jax
import jax.numpy as jnp
from absl import app

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import bench_dds  # noqa: E402  (the same models and matmul ceiling)
from timing import time_calls  # noqa: E402
from dds_jax.dds import optimize as opt  # noqa: E402

FLAGS = bench_dds.FLAGS
# --size, --style_dim and --repeats (0: FLOPs only) are bench_dds's flags.


def measure(fn, *args):
    compiled = jax.jit(fn).lower(*args).compile()
    flops = bench_dds._flops(compiled)
    return flops, time_calls(compiled, args, FLAGS.repeats) if FLAGS.repeats else float("nan")


def main(argv):
    del argv
    models = bench_dds._models(FLAGS.size, "vgg16", FLAGS.style_dim)
    cfg = opt.DDSConfig(mode="reference", backbone="vgg16").resolved()
    size = FLAGS.size
    y = jnp.zeros((1, size, size, 1)).at[:, size // 4:3 * size // 4, size // 4:3 * size // 4].set(1.0)
    zs = jax.random.normal(jax.random.PRNGKey(3), (1, FLAGS.style_dim))
    inp = opt.prepare_inputs(models, zs, cfg, masks=(y, y))
    state = opt.init_state(models, inp, cfg, jax.random.PRNGKey(4))
    one = jax.tree_util.tree_map(lambda a: a[0], (state.latent, state.noises, inp))
    latent, noises, inp1 = one
    params = models.params
    tgt = opt.make_targets(models, cfg, params, inp1)

    def step(latent):
        return jax.value_and_grad(opt.problem_loss, has_aux=True)(latent, models, cfg, params, noises, inp1, tgt)

    img0, _ = opt._synth(models.gen_s, params["g_s"], latent, cfg.latent_space, noises)
    probe = jax.random.normal(jax.random.PRNGKey(5), img0.shape)

    def generator(latent):
        return jax.grad(lambda l: jnp.sum(opt._synth(models.gen_s, params["g_s"], l, cfg.latent_space,
                                                     noises)[0] * probe))(latent)

    def backbone(img):
        return jax.grad(lambda x: sum(jnp.sum(f) for f in opt._image_features(models, cfg, params, x)))(img)

    peak = bench_dds.matmul_flops_per_s()
    print(f"# {size}² config-f style {FLAGS.style_dim}, reference mode, VGG16 at {cfg.perceptual_size}², "
          f"{jax.devices()[0].platform}, jax {jax.__version__}; plain 2048² f32 matmul {peak / 1e9:.0f} GFLOP/s")
    print("| part | GFLOP | s | GFLOP/s | floor s at matmul rate |")
    print("|---|---|---|---|---|")
    for name, fn, arg in (("generator fwd + grad", generator, latent), ("backbone fwd + input grad", backbone, img0),
                          ("step (loss + grad)", step, latent)):
        flops, sec = measure(fn, arg)
        print(f"| {name} | {flops / 1e9:.1f} | {sec:.3f} | {flops / sec / 1e9:.1f} | {flops / peak:.3f} |",
              flush=True)


if __name__ == "__main__":
    app.run(main)
