"""Convert PyTorch checkpoints into dds-jax model directories (orbax params + model.json).

Examples:
  python convert/torch_to_flax.py --kind=stylegan2 --src=ffhq.pt --out=ckpt/ffhq
  python convert/torch_to_flax.py --kind=stylegan2 --src=caricature.pt --generator_key=g --out=ckpt/car_g
  python convert/torch_to_flax.py --kind=vgg16 --src=vgg16-397923af.pth --out=ckpt/vgg16
  python convert/torch_to_flax.py --kind=segmenter --src=segmenter.pt --out=ckpt/seg
  python convert/torch_to_flax.py --kind=discriminator --src=550000.pt --out=ckpt/ffhq_d
  python convert/torch_to_flax.py --kind=discriminator --src=d_only.pt --discriminator_key=d --out=ckpt/d

``--src`` may also be an ``.npz`` of a flat state_dict. ``.pt`` files are read with
``torch.load(weights_only=True)``: no pickled code runs.
"""
import os
import sys

from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dds_jax import checkpoint, conversion  # noqa: E402
from dds_jax.conversion import torch_io  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("kind", None, conversion.kinds(), "What the checkpoint holds.")
flags.DEFINE_string("src", None, "The .pt/.pth file (or .npz state_dict) to convert.")
flags.DEFINE_string("out", None, "Output model directory.")
flags.DEFINE_string("generator_key", "g_ema",
                    "stylegan2 only: which generator of a training checkpoint to take (g_ema or g).")
flags.DEFINE_string("discriminator_key", "d",
                    "discriminator only: which entry of a training checkpoint holds D (a bare D "
                    "state_dict is taken as is).")
flags.DEFINE_bool("overwrite", False, "Replace an existing model in --out.")
flags.mark_flags_as_required(["kind", "src", "out"])


def run(kind, src, out, overwrite=False, **options):
    obj = torch_io.load_any(src)
    config, params = conversion.convert(kind, obj, source=str(src), **options)
    path = checkpoint.save_model(out, kind, config, params, overwrite=overwrite)
    return path, config


def main(argv):
    del argv
    options = {}
    if FLAGS.kind == "stylegan2":
        options["generator_key"] = FLAGS.generator_key
    elif FLAGS.kind == "discriminator":
        options["discriminator_key"] = FLAGS.discriminator_key
    try:
        path, config = run(FLAGS.kind, FLAGS.src, FLAGS.out, FLAGS.overwrite, **options)
    except KeyboardInterrupt:
        print(f"interrupted; {FLAGS.out} holds no model from this run (run the command again)", file=sys.stderr)
        sys.exit(130)
    except (conversion.ConversionError, ValueError, OSError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)   # one line; not also through absl logging
        sys.exit(2)
    logging.info("wrote %s model to %s: %s", FLAGS.kind, path, config)
    print(f"wrote {FLAGS.kind} model to {path}")


if __name__ == "__main__":
    app.run(main)
