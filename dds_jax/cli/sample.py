"""Sample images from a converted StyleGAN2 generator.

  python -m dds_jax.cli.sample --ckpt=ckpt/ffhq --seeds=0-7 --truncation=0.7 --out=samples/
  python -m dds_jax.cli.sample --ckpt=ckpt/ffhq --latents=z.npy --save_npy --out=samples/

Writes ``seed_<N>.png`` per seed (``latent_<i>.png`` with ``--latents``), ``grid.png``, ``z.npy`` and,
with ``--save_npy``, ``images.npy``: raw float32 [N, H, W, 3] in the generator's output range.
"""
from absl import flags

from dds_jax import generation
from dds_jax.cli import common

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("ckpt", None, "Generator model directory (from convert/torch_to_flax.py --kind=stylegan2).")
    flags.DEFINE_string("seeds", "0-7", "Seeds: a range '0-7' or a list '1,5,9'. Ignored with --latents.")
    flags.DEFINE_string("latents", None, "A .npy of z's, float32 [N, style_dim], instead of --seeds.")
    flags.DEFINE_float("truncation", 1.0, "Truncation psi (1 = none).")
    flags.DEFINE_integer("truncation_mean", 4096,
                         "z's averaged for the truncation latent when the checkpoint has no latent_avg.")
    flags.DEFINE_enum("noise", "const", list(generation.NOISE_MODES),
                      "const: the checkpoint's fixed noise buffers; random: fresh noise per image.")
    flags.DEFINE_integer("batch_size", 8, "Images per forward pass.")
    flags.DEFINE_integer("noise_seed", 0, "PRNG seed for --noise=random and the truncation mean.")
    flags.DEFINE_bool("save_npy", False, "Also write images.npy (raw float32 NHWC, unclipped).")
    flags.DEFINE_string("out", None, "Output directory.")
    flags.mark_flags_as_required(["ckpt", "out"])


def main(argv):
    del argv
    _, names = generation.sample_to_folder(FLAGS.ckpt, FLAGS.out, FLAGS.seeds, FLAGS.latents, FLAGS.truncation,
                                           FLAGS.truncation_mean, FLAGS.noise, FLAGS.batch_size,
                                           FLAGS.noise_seed, FLAGS.save_npy)
    print(f"wrote {len(names)} images and grid.png to {FLAGS.out}")


def run():
    common.run(main, define_flags)


if __name__ == "__main__":
    run()
