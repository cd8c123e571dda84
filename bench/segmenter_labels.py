"""Hair IoU of the segmenter against the number of labelled faces (docs/demo_models.md, issue 13's limit).

  python bench/segmenter_labels.py --runs=1:100,8:100,32:50,128:30,128:60 --out=runs/segexp

Trains FewShotCNN on the photo generator's W+ inversions of n labelled faces (``render_faces(40, n)``)
and scores it on the reported faces (``render_faces(30, eval_faces)``), drawn as photos and inverted
into the photo generator, and drawn as sketches and inverted into the sketch generator, against the
renderer's true masks. Inversions are cached in ``OUT/inversions.npz``; results go to
``OUT/labels.json`` (one entry per ``n:epochs``). Slow on a CPU (inversions ~10 min, n=128 ~5 min).
"""
import json
import os
import sys

import jax
import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dds_jax import render  # noqa: E402
from dds_jax.dds import invert  # noqa: E402
from dds_jax.demo import models as demo_models  # noqa: E402
from dds_jax.models import stylegan2 as sg  # noqa: E402
from dds_jax.segmentation import oneshot as seg  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("runs", "1:100,8:100,32:50,128:30,128:60", "Comma-separated n_faces:epochs.")
flags.DEFINE_string("photo", "dds_jax/assets/demo/photo", "Photo (source) generator checkpoint.")
flags.DEFINE_string("sketch", "dds_jax/assets/demo/sketch", "Sketch (target) generator checkpoint.")
flags.DEFINE_integer("eval_faces", 64, "Reported faces, render_faces(EVAL_SEED, eval_faces) as in report.json.")
flags.DEFINE_integer("steps", 500, "Inversion steps.")
flags.DEFINE_string("size", "S", "FewShotCNN size.")
flags.DEFINE_string("out", "runs/segexp", "Output folder.")

LABEL_SEED = 40   # render_faces(LABEL_SEED, n): the labelled faces, apart from the reported ones
# name -> (renderer seed, style, generator); "tr" holds the labelled faces, "ph"/"sk" the reported faces.
SETS = {"tr": (LABEL_SEED, "photo", "photo"), "ph": (demo_models.EVAL_SEED, "photo", "photo"),
        "sk": (demo_models.EVAL_SEED, "sketch", "sketch")}


def _features(d, name):
    keys = sorted((k for k in d if k.startswith(name + "_f")), key=lambda k: int(k.split("_f")[1]))
    return [d[k] for k in keys]


def inversions(path, gens, n_train, res):
    """{set: (W+ inversion features, true masks)}, cached in `path` (written atomically)."""
    counts = {"tr": n_train, "ph": FLAGS.eval_faces, "sk": FLAGS.eval_faces}
    if os.path.exists(path):
        d = dict(np.load(path))
        if all(d[f"{k}_mask"].shape[0] >= n for k, n in counts.items()):
            return {k: ([f[:n] for f in _features(d, k)], d[f"{k}_mask"][:n]) for k, n in counts.items()}
    arrays = {}
    for name, (seed, style, gen) in SETS.items():
        img, mask = render.render_faces(seed, counts[name], res, style)
        _, _, feats, mse = invert.invert(gens[gen], img, steps=FLAGS.steps)
        print(f"{name}: {counts[name]} faces ({style}) inverted, MSE {float(np.mean(mse)):.4f}", flush=True)
        arrays[f"{name}_mask"] = mask
        arrays.update({f"{name}_f{i}": f for i, f in enumerate(feats)})
    np.savez(path + ".tmp.npz", **arrays)
    os.replace(path + ".tmp.npz", path)
    return {k: (_features(arrays, k), arrays[f"{k}_mask"]) for k in SETS}


def main(argv):
    del argv
    runs = [tuple(int(v) for v in r.split(":")) for r in FLAGS.runs.split(",")]
    gens = {"photo": sg.load_generator(FLAGS.photo), "sketch": sg.load_generator(FLAGS.sketch)}
    res = gens["photo"].config.size
    os.makedirs(FLAGS.out, exist_ok=True)
    data = inversions(os.path.join(FLAGS.out, "inversions.npz"), gens, max(n for n, _ in runs), res)
    n_class = len(render.PARTS)

    def iou(s, feats, mask):
        per_class = seg.iou_per_class(seg.predict(s, feats, res), mask, n_class)
        return dict(zip(render.PARTS, np.round(per_class, 3).tolist()))

    results = {}
    for n, epochs in runs:
        feats, mask = [f[:n] for f in data["tr"][0]], data["tr"][1][:n].astype(np.int32)
        cfg, params = seg.train_segmenter(gens["photo"], None, mask, n_class=n_class, size=FLAGS.size,
                                          epochs=epochs, key=jax.random.PRNGKey(0),
                                          parts=list(render.PARTS[1:]), features=feats)
        s = seg.from_params(cfg, params)
        results[f"{n}:{epochs}"] = {"photo": iou(s, *data["ph"]), "sketch": iou(s, *data["sk"]),
                                    "train_fit": iou(s, feats, mask)}
        print(n, epochs, json.dumps(results[f"{n}:{epochs}"]), flush=True)
    with open(os.path.join(FLAGS.out, "labels.json"), "w") as f:
        json.dump(results, f, indent=1)
    print("| labelled faces n | epochs | hair photo | hair sketch | hair fit |\n|---|---|---|---|---|")
    for key, r in results.items():
        n, epochs = key.split(":")
        print(f"| {n} | {epochs} | {r['photo']['hair']:.2f} | {r['sketch']['hair']:.2f} | "
              f"{r['train_fit']['hair']:.2f} |")


if __name__ == "__main__":
    app.run(main)
