"""The tiny models of the offline demo (``configs/demo.py``), built deterministically.

  python -m dds_jax.demo_models --out=dds_jax/assets/demo      # rebuild the shipped weights

* ``source``: a 32x32 StyleGAN2 with seeded random weights.
* ``target``: the same mapping network and coarse layers (4x4, 8x8) as ``source`` — so both share one
  latent space and layout, as a few-shot adapted pair does — with re-drawn fine layers and the colour
  channels of every ToRGB rotated, a second "domain" of different colour and texture.
* ``segmenter``: a FewShotCNN 'S' trained one-shot (paper Sec. 3.2) on one labelled ``source`` sample,
  whose label marks the pixels where a fixed direction of the 8x8 features is high (a blob-shaped
  "part" that the segmenter then finds in every seed and in both domains).

These are not faces: the demo exercises the whole pipeline without downloads; real checkpoints are
converted with convert/torch_to_flax.py (see README).
"""
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from dds_jax import checkpoint as ckpt_io
from dds_jax.models import stylegan2 as sg

DEMO_CONFIG = sg.GeneratorConfig(size=32, style_dim=64, n_mlp=4,
                                 channels=((4, 64), (8, 64), (16, 32), (32, 32)))
SEED = 2022
LABEL_SEED = 0           # the one labelled sample
COARSE_LEVELS = ("const", "conv1", "to_rgb1", "convs_0", "convs_1", "to_rgbs_0")


RGB_GAIN = 0.25         # random ToRGB weights saturate the images; this keeps them near [-1, 1]


def _scale_to_rgb(params, gain):
    synth = dict(params["synthesis"])
    for name, sub in synth.items():
        if name.startswith("to_rgb"):
            conv = dict(sub["conv"], weight=np.asarray(sub["conv"]["weight"]) * gain)
            synth[name] = dict(sub, conv=conv, bias=np.asarray(sub["bias"]) * gain)
    return dict(params, synthesis=synth)


def source_variables():
    v = jax.device_get(sg.init_variables(DEMO_CONFIG, jax.random.PRNGKey(SEED)))
    return {"params": _scale_to_rgb(v["params"], RGB_GAIN), "buffers": v["buffers"]}


def target_variables(source):
    """Shares mapping + coarse synthesis with ``source``; fine layers re-drawn; ToRGB colours rotated."""
    fresh = jax.device_get(sg.init_variables(DEMO_CONFIG, jax.random.PRNGKey(SEED + 1)))
    fresh = {"params": _scale_to_rgb(fresh["params"], RGB_GAIN)}
    synth = {}
    for name, sub in source["params"]["synthesis"].items():
        if name in COARSE_LEVELS:
            synth[name] = sub
        else:  # a blend keeps some of the source's structure at fine scales
            synth[name] = jax.tree_util.tree_map(lambda a, b: 0.8 * a + 0.6 * b, sub,
                                                 fresh["params"]["synthesis"][name])
    for name in synth:
        if name.startswith("to_rgb"):
            rgb = dict(synth[name])
            conv = dict(rgb["conv"])
            conv["weight"] = np.roll(np.asarray(conv["weight"]), 1, axis=-1)
            rgb["conv"] = conv
            rgb["bias"] = np.roll(np.asarray(rgb["bias"]), 1) + 0.1
            synth[name] = rgb
    params = {"mapping": source["params"]["mapping"], "synthesis": synth}
    return {"params": params, "buffers": source["buffers"]}


def label_for(gen: sg.LoadedGenerator, z: np.ndarray) -> np.ndarray:
    """The demo 'part' of the sample z: where the 16x16 features project high on a fixed direction
    (the top 30% of pixels), nearest-up-sampled to the image size. [H, W] uint8 in {0, 1}."""
    _, feats = gen.module.apply(gen.variables, jnp.asarray(z[None]))
    f = np.asarray(feats[4][0])                                   # [16, 16, C]
    direction = np.random.default_rng(SEED).standard_normal(f.shape[-1])
    score = f @ direction
    label = (score >= np.quantile(score, 0.7)).astype(np.uint8)
    s = DEMO_CONFIG.size // label.shape[0]
    return np.repeat(np.repeat(label, s, 0), s, 1)


def build(out_dir, overwrite: bool = False, epochs: int = 100):
    from dds_jax import cli_utils, segmentation
    out = pathlib.Path(out_dir)
    src = source_variables()
    tgt = target_variables(src)
    ckpt_io.save_model(out / "source", "stylegan2", DEMO_CONFIG.to_dict(), src, overwrite=overwrite)
    ckpt_io.save_model(out / "target", "stylegan2", DEMO_CONFIG.to_dict(), tgt, overwrite=overwrite)
    gen = sg.from_variables(DEMO_CONFIG, src)
    z = cli_utils.z_from_seeds([LABEL_SEED], DEMO_CONFIG.style_dim)
    label = label_for(gen, z[0])
    seg_config, seg_params = segmentation.train_segmenter(gen, z, label[None].astype(np.int32),
                                                          n_class=2, size="S", epochs=epochs,
                                                          truncation=1.0, key=jax.random.PRNGKey(SEED))
    seg_config["parts"] = ["part"]
    ckpt_io.save_model(out / "segmenter", "segmenter", seg_config, seg_params, overwrite=overwrite)
    return out


FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("out", str(pathlib.Path(__file__).parent / "assets" / "demo"), "Where to write.")
    flags.DEFINE_bool("overwrite", True, "Replace existing demo models.")


def main(argv):
    del argv
    print(f"demo models written to {build(FLAGS.out, FLAGS.overwrite)}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
