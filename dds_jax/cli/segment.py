r"""One-shot part segmenter (paper Sec. 3.2): sample images, train on one labelled sample, predict masks.

  python -m dds_jax.cli.segment sample  --ckpt=ckpt/ffhq --seeds=0-2 --out=seg_data/
      -> seg_data/seed_<N>.png and seg_data/latents.npz (seeds, z, truncation and its mean latent).

  (paint a label for one sample in any image editor: seg_data/labels/seed_<N>.png, same size as the
   image, one flat colour per part on black; save as PNG, paint with a hard-edged brush)

  python -m dds_jax.cli.segment train   --ckpt=ckpt/ffhq --samples=seg_data --labels=seg_data/labels \
      --parts=eyes,nose,mouth --colors="eyes=#ff0000,nose=#00ff00,mouth=#0000ff" --out=ckpt/seg_enm
  python -m dds_jax.cli.segment predict --ckpt=ckpt/caricature --seg=ckpt/seg_enm --seeds=0-7 --out=masks/
      -> masks/seed_<N>_mask.png (0 = background; 255 = the part with one part or --parts, else the class
         index) and masks/seed_<N>_overlay.png. Works on either domain's generator (same architecture).

Parts and colours (train):
  --parts   comma-separated classes, class i+1 for the i-th (0 = background). A class may merge several
            painted parts with '+': --parts=eyes+nose+mouth trains ONE class from the pixels of all
            three colours; --parts=eyes,nose+mouth trains two classes.
  --colors  the colour of every painted name: "eyes=#ff0000,nose=#00ff00" (any PIL colour: #rgb,
            #rrggbb, red, rgb(255,0,0)), a JSON object or a .json file. Default: one name -> white
            (a black/white label, white = part); several names -> red, green, blue, yellow, magenta,
            cyan, orange, purple, ... in the order they appear in --parts. Background is black
            (override with background=<colour>); fully transparent pixels are background too. Colours
            named in --colors but not used by --parts count as background, so one set of labels can
            train several segmenters. --color_tolerance=T accepts colours within T (per channel) of a
            listed one (anti-aliased brushes); other colours are an error that lists what was found.
  Labels are read for every seed with a file labels/seed_<N>.png (or exactly the --seeds given).
"""
import sys

from absl import flags

from dds_jax import files
from dds_jax.cli import common
from dds_jax.segmentation import workflow as segment

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("ckpt", None, "Generator model directory (convert/torch_to_flax.py --kind=stylegan2).")
    flags.DEFINE_string("out", None, "sample/predict: output directory; train: the segmenter model directory.")
    flags.DEFINE_string("seeds", None, "Seeds '0-7' or '1,5,9'. sample: default 0-2; predict: default 0-7; "
                        "train: default every seed with a label file.")
    flags.DEFINE_float("truncation", 0.7, "sample/predict: truncation psi (1 = none). train uses the samples'.")
    flags.DEFINE_integer("truncation_mean", 4096,
                         "z's averaged for the truncation latent when the checkpoint has no latent_avg.")
    flags.DEFINE_integer("noise_seed", 0, "PRNG seed of that average.")
    flags.DEFINE_integer("batch_size", 8, "sample/predict: images per forward pass.")
    flags.DEFINE_string("samples", None, "train: the folder written by `sample` (images + latents.npz).")
    flags.DEFINE_string("labels", None, "train: folder of painted labels seed_<N>.png.")
    flags.DEFINE_string("parts", None, "train: classes 'eyes,nose,mouth' ('+' merges painted parts into one "
                        "class). predict: optional classes (names or indices) merged into a binary mask.")
    flags.DEFINE_string("colors", None, "train: colour of each painted name: 'eyes=#ff0000,nose=#00ff00', "
                        "JSON or a .json file (see the top of this help for the defaults).")
    flags.DEFINE_integer("color_tolerance", 0, "train: accept label colours within this per-channel distance "
                         "of a listed colour.")
    flags.DEFINE_enum("size", "S", ["S", "M", "L"], "train: FewShotCNN size.")
    flags.DEFINE_integer("epochs", 100, "train: passes over the labelled samples (lr x0.1 every 50).")
    flags.DEFINE_float("lr", 1e-3, "train: Adam learning rate.")
    flags.DEFINE_float("weight_decay", 1e-3, "train: L2 weight decay (torch Adam weight_decay).")
    flags.DEFINE_integer("train_seed", 0, "train: PRNG seed of the initialisation and sample order.")
    flags.DEFINE_string("seg", None, "predict: segmenter model directory.")
    flags.DEFINE_bool("overwrite", False, "train: replace an existing model in --out.")


def _require(command, *names):
    missing = [f"--{n}" for n in names if getattr(FLAGS, n) in (None, "")]
    if missing:
        raise ValueError(f"{command} needs {', '.join(missing)}")


def main(argv):
    if len(argv) != 2 or argv[1] not in segment.COMMANDS:
        extra = f" (got {' '.join(argv[1:])!r})" if len(argv) > 1 else ""
        print(f"usage: python -m dds_jax.cli.segment {{{'|'.join(segment.COMMANDS)}}} --flags ...{extra}; "
              "--help for details", file=sys.stderr)
        sys.exit(2)
    command = argv[1]
    if command == "sample":
        _require(command, "ckpt", "out")
        seeds = segment.run_sample(FLAGS.ckpt, FLAGS.out, FLAGS.seeds or "0-2", FLAGS.truncation,
                           FLAGS.truncation_mean, FLAGS.batch_size, FLAGS.noise_seed)
        print(f"wrote {len(seeds)} samples and {segment.LATENTS_FILE} to {FLAGS.out}; paint labels as "
              f"<labels>/seed_<N>.png and run `python -m dds_jax.cli.segment train`")
    elif command == "train":
        _require(command, "ckpt", "samples", "labels", "parts", "out")
        seeds = files.parse_seeds(FLAGS.seeds) if FLAGS.seeds else None
        config = segment.run_train(FLAGS.ckpt, FLAGS.samples, FLAGS.labels, FLAGS.parts, FLAGS.out, FLAGS.colors,
                           seeds, FLAGS.size, FLAGS.epochs, FLAGS.lr, FLAGS.weight_decay,
                           FLAGS.color_tolerance, FLAGS.train_seed, FLAGS.overwrite)
        print(f"wrote segmenter to {FLAGS.out}: parts {config['parts']}, final loss "
              f"{config['training']['final_loss']:.4f}")
    else:
        _require(command, "ckpt", "seg", "out")
        seeds = segment.run_predict(FLAGS.ckpt, FLAGS.seg, FLAGS.out, FLAGS.seeds or "0-7", FLAGS.truncation,
                            FLAGS.truncation_mean, FLAGS.parts, FLAGS.batch_size, FLAGS.noise_seed)
        print(f"wrote {len(seeds)} masks and overlays to {FLAGS.out}")


def run():
    common.run(main, define_flags)


if __name__ == "__main__":
    run()
