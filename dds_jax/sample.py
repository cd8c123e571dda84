"""Sample images from a converted StyleGAN2 generator.

  python -m dds_jax.sample --ckpt=ckpt/ffhq --seeds=0-7 --truncation=0.7 --out=samples/
  python -m dds_jax.sample --ckpt=ckpt/ffhq --latents=z.npy --save_npy --out=samples/

Writes ``seed_<N>.png`` per seed (``latent_<i>.png`` with ``--latents``), ``grid.png``, ``z.npy`` and,
with ``--save_npy``, ``images.npy``: raw float32 [N, H, W, 3] in the generator's output range.
"""
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from dds_jax import cli_utils
from dds_jax.models import stylegan2 as sg

FLAGS = flags.FLAGS


def define_flags():
    """CLI flags, defined only when this module is the entry point."""
    flags.DEFINE_string("ckpt", None, "Generator model directory (from convert/torch_to_flax.py --kind=stylegan2).")
    flags.DEFINE_string("seeds", "0-7", "Seeds: a range '0-7' or a list '1,5,9'. Ignored with --latents.")
    flags.DEFINE_string("latents", None, "A .npy of z's, float32 [N, style_dim], instead of --seeds.")
    flags.DEFINE_float("truncation", 1.0, "Truncation psi (1 = none).")
    flags.DEFINE_integer("truncation_mean", 4096,
                         "z's averaged for the truncation latent when the checkpoint has no latent_avg.")
    flags.DEFINE_enum("noise", "const", ["const", "random"],
                      "const: the checkpoint's fixed noise buffers; random: fresh noise per image.")
    flags.DEFINE_integer("batch_size", 8, "Images per forward pass.")
    flags.DEFINE_integer("noise_seed", 0, "PRNG seed for --noise=random and the truncation mean.")
    flags.DEFINE_bool("save_npy", False, "Also write images.npy (raw float32 NHWC, unclipped).")
    flags.DEFINE_string("out", None, "Output directory.")
    flags.mark_flags_as_required(["ckpt", "out"])



def truncation_latent(gen: sg.LoadedGenerator, n: int, key) -> jnp.ndarray:
    """The checkpoint's ``latent_avg`` if it has one, else the mean of style(z) over ``n`` z's: the
    same function ``segment`` and ``main`` use (seed N is the same image in every command)."""
    from dds_jax import segmentation
    return segmentation.truncation_mean(gen, key, n)


def load_latents(path, style_dim: int) -> np.ndarray:
    z = np.load(path)
    if z.ndim != 2 or z.shape[1] != style_dim:
        raise ValueError(f"{path}: latents must be float32 [N, {style_dim}], got shape {z.shape}")
    return z.astype(np.float32)


def generate(gen: sg.LoadedGenerator, z: np.ndarray, truncation: float = 1.0, w_avg=None,
             noise: str = "const", batch_size: int = 8, key=None) -> np.ndarray:
    """Images [N, H, W, 3] float32 for the z's, batched through one jitted forward."""
    randomize = noise == "random"

    @jax.jit
    def forward(variables, zb, w_avg, key):
        img, _ = gen.module.apply(variables, zb, truncation=truncation, truncation_latent=w_avg,
                                  randomize_noise=randomize, rngs={"noise": key})
        return img

    key = jax.random.PRNGKey(0) if key is None else key
    w_avg = jnp.zeros((gen.config.style_dim,)) if w_avg is None else w_avg
    out = []
    for start in range(0, len(z), batch_size):
        zb = z[start:start + batch_size]
        pad = batch_size - len(zb)  # keep one compiled shape
        zb = np.concatenate([zb, np.zeros((pad, zb.shape[1]), np.float32)]) if pad else zb
        key, sub = jax.random.split(key)
        out.append(np.asarray(forward(gen.variables, jnp.asarray(zb), w_avg, sub))[:batch_size - pad])
    return np.concatenate(out)


def run(ckpt, out, seeds=None, latents=None, truncation=1.0, truncation_mean=4096, noise="const",
        batch_size=8, noise_seed=0, save_npy=False):
    gen = sg.load_generator(cli_utils.resolve_model_path(ckpt))
    if latents is not None:
        z = load_latents(latents, gen.config.style_dim)
        names = [f"latent_{i}" for i in range(len(z))]
    else:
        seed_list = cli_utils.parse_seeds(seeds)
        z = cli_utils.z_from_seeds(seed_list, gen.config.style_dim)
        names = [f"seed_{s}" for s in seed_list]
    key = jax.random.PRNGKey(noise_seed)
    w_avg = truncation_latent(gen, truncation_mean, key) if truncation < 1 else None
    key, _ = jax.random.split(key)
    images = generate(gen, z, truncation, w_avg, noise, min(batch_size, len(z)), key)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pngs = cli_utils.to_uint8(images)
    for name, im in zip(names, pngs):
        cli_utils.save_png(out / f"{name}.png", im)
    cli_utils.save_png(out / "grid.png", cli_utils.make_grid(list(pngs), ncols=min(8, len(pngs))))
    cli_utils.save_npy(out / "z.npy", z)
    if save_npy:
        cli_utils.save_npy(out / "images.npy", images.astype(np.float32))
    return images, names


def main(argv):
    del argv
    try:
        images, names = run(FLAGS.ckpt, FLAGS.out, FLAGS.seeds, FLAGS.latents, FLAGS.truncation,
                            FLAGS.truncation_mean, FLAGS.noise, FLAGS.batch_size, FLAGS.noise_seed,
                            FLAGS.save_npy)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    logging.info("wrote %d images to %s", len(names), FLAGS.out)
    print(f"wrote {len(names)} images and grid.png to {FLAGS.out}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
