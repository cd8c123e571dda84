"""Few-shot cross-domain adaptation of a StyleGAN2 (Ojha et al., CVPR 2021; DDS paper Sec. 3.1): make the
second generator of a dual-domain pair from ~10 images of the new domain (see dds_jax.gan.adapt).

  python -m dds_jax.cli.adapt --source=ckpt/ffhq --images=my_10_sketches/ --out=runs/sketch
  python -m dds_jax.cli.adapt --source=ckpt/ffhq --source_d=ckpt/ffhq_d --images=... --out=... --steps=5000
  python -m dds_jax.cli.adapt --source=... --images=... --out=runs/sketch --resume
  python -m dds_jax.cli.adapt --source=... --images=... --out=... --freeze_mapping --freeze_res=16 \
      --patch_res=16 --ema_decay=0.99 --kl_weight=10 --feat_const_batch=8 --edge_weight=1 --steps=1600
      # small (32x32) generators, photo -> line drawing: the demo's recipe

``--freeze_mapping`` / ``--freeze_res=R`` keep the mapping network and the synthesis layers up to RxR
at the source's weights (the latent -> pose/geometry map stays the source's, so the pair keeps its
correspondence; only the finer convolutions and the ToRGB layers learn the new domain's look); with the
geometry frozen, a light CDC weight keeps more of it (demo: 92 % retrieval at 10 vs 86 % at the released 1000).
``--structure_weight`` adds a spatial self-correlation consistency term (RSSA-style; off by default).
``--edge_weight`` (line-drawing targets; off by default) adds a contrastive term over the CDC latents: each
adapted drawing's lines should correlate with its own source image's edges more than with the others'
(demo: validation retrieval 91-92 % -> 100 %).

OUT/generator is a dds-jax generator that every other command accepts
(e.g. ``--config.target_ckpt=runs/sketch/generator``).
"""
from absl import flags

from dds_jax.cli import common
from dds_jax.gan import adapt, trainer
from dds_jax.gan import flags as train_flags

FLAGS = flags.FLAGS


def define_flags():
    train_flags.define_training_flags(trainer.TrainConfig.few_shot(), steps=5000, checkpoint_every=1000,
                                      sample_every=500)
    flags.adopt_module_key_flags(train_flags)       # --help lists the training flags too
    flags.DEFINE_string("source", None, "The source generator (a dds-jax stylegan2 model directory).")
    flags.DEFINE_string("source_d", None, "The source discriminator (dds-jax model directory); random if unset.")
    flags.DEFINE_string("images", None, "Folder with the few (>= 2, typically 10) images of the new domain.")
    flags.DEFINE_integer("patch_res", 0, "Resolution of the patch-level D logits (0 = the discriminator's "
                         "own, size // 8). On small images use size // 2: see gan.adapt.run_adaptation.")
    flags.mark_flags_as_required(["source", "images"])


def main(argv):
    del argv
    state = adapt.run_adaptation(FLAGS.out, FLAGS.source, FLAGS.images, train_flags.train_config(adapt=True),
                                 FLAGS.steps, FLAGS.source_d, FLAGS.seed, FLAGS.resume, FLAGS.overwrite,
                                 patch_res=FLAGS.patch_res, **train_flags.loop_options())
    print(f"adapted for {int(state.step)} iterations; generator in {FLAGS.out}/generator")


def resume_command(argv) -> str:
    return common.resume_command(argv, "python -m dds_jax.cli.adapt", "--resume")


def run():
    common.run(main, define_flags, resume=resume_command)


if __name__ == "__main__":
    run()
