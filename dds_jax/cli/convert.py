"""Convert PyTorch checkpoints into dds-jax model directories (orbax params + model.json).

  python convert/torch_to_flax.py --kind=stylegan2 --src=ffhq.pt --out=ckpt/ffhq
  python convert/torch_to_flax.py --kind=stylegan2 --src=caricature.pt --generator_key=g --out=ckpt/car_g
  python convert/torch_to_flax.py --kind=vgg16 --src=vgg16-397923af.pth --out=ckpt/vgg16
  python convert/torch_to_flax.py --kind=segmenter --src=segmenter.pt --out=ckpt/seg
  python convert/torch_to_flax.py --kind=discriminator --src=550000.pt --out=ckpt/ffhq_d
  python convert/torch_to_flax.py --kind=discriminator --src=d_only.pt --discriminator_key=d --out=ckpt/d

(also ``python -m dds_jax.cli.convert`` or ``dds-convert``). ``--src`` may also be an ``.npz`` of a flat
state_dict. ``.pt`` files are read with ``torch.load(weights_only=True)``: no pickled code runs.
"""
from absl import flags, logging

from dds_jax import checkpoint, conversion
from dds_jax.cli import common
from dds_jax.conversion import torch_io

FLAGS = flags.FLAGS


def define_flags():
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


def convert_file(kind, src, out, overwrite=False, **options):
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
    path, config = convert_file(FLAGS.kind, FLAGS.src, FLAGS.out, FLAGS.overwrite, **options)
    logging.info("wrote %s model to %s: %s", FLAGS.kind, path, config)
    print(f"wrote {FLAGS.kind} model to {path}")


def run():
    common.run(main, define_flags, errors=common.USER_ERRORS + (OSError, ImportError),
               interrupt_note="the output holds no model from this run (run the command again)")


if __name__ == "__main__":
    run()
