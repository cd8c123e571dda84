r"""One-shot part segmenter (paper Sec. 3.2): sample images, train on one labelled sample, predict masks.

  python -m dds_jax.segment sample  --ckpt=ckpt/ffhq --seeds=0-2 --out=seg_data/
      -> seg_data/seed_<N>.png and seg_data/latents.npz (seeds, z, truncation and its mean latent).

  (paint a label for one sample in any image editor: seg_data/labels/seed_<N>.png, same size as the
   image, one flat colour per part on black; save as PNG, paint with a hard-edged brush)

  python -m dds_jax.segment train   --ckpt=ckpt/ffhq --samples=seg_data --labels=seg_data/labels \
      --parts=eyes,nose,mouth --colors="eyes=#ff0000,nose=#00ff00,mouth=#0000ff" --out=ckpt/seg_enm
  python -m dds_jax.segment predict --ckpt=ckpt/caricature --seg=ckpt/seg_enm --seeds=0-7 --out=masks/
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
import json
import pathlib
import re
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from dds_jax import cli_utils

COMMANDS = ("sample", "train", "predict")
LATENTS_FILE = "latents.npz"
PALETTE = ["#ff0000", "#00ff00", "#0000ff", "#ffff00", "#ff00ff", "#00ffff", "#ff8000", "#8000ff",
           "#00ff80", "#ff0080", "#80ff00", "#0080ff"]
BACKGROUND = "background"

RGB = Tuple[int, int, int]


# --------------------------------------------------------------------------------------------------
# Parts and colours
# --------------------------------------------------------------------------------------------------
def parse_class_spec(parts) -> List[List[str]]:
    """``"eyes,nose+mouth"`` (or a list) -> [["eyes"], ["nose", "mouth"]]: the painted names of each class."""
    items = parts.split(",") if isinstance(parts, str) else list(parts or [])
    classes = []
    for item in items:
        names = [n.strip() for n in str(item).split("+") if n.strip()]
        if names:
            classes.append(names)
    if not classes:
        raise ValueError("no parts given: pass --parts=name[,name...] (e.g. --parts=eyes,nose,mouth)")
    flat = [n for c in classes for n in c]
    dup = sorted({n for n in flat if flat.count(n) > 1})
    if dup:
        raise ValueError(f"part name(s) {dup} given more than once in --parts")
    if BACKGROUND in flat:
        raise ValueError("'background' is class 0 and cannot be a part")
    return classes


def _split_top_level(text: str) -> List[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [s.strip() for s in out if s.strip()]


def parse_color(value) -> RGB:
    from PIL import ImageColor
    if isinstance(value, (list, tuple)) and len(value) == 3:
        return tuple(int(v) for v in value)
    try:
        rgb = ImageColor.getrgb(str(value).strip())
    except ValueError as e:
        raise ValueError(f"bad colour {value!r}: use #rrggbb, #rgb, a colour name or rgb(r,g,b)") from e
    return tuple(int(v) for v in rgb[:3])


def parse_colors(text) -> Dict[str, RGB]:
    """``"eyes=#ff0000,nose=#0f0"``, a JSON object (text or ``.json`` file) or a dict -> {name: (r, g, b)}."""
    if not text:
        return {}
    if isinstance(text, dict):
        raw = text
    else:
        text = str(text).strip()
        if text.endswith(".json") and pathlib.Path(text).is_file():
            text = pathlib.Path(text).read_text()
        if text.startswith("{"):
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"--colors is not valid JSON: {e}") from e
        else:
            raw = {}
            for item in _split_top_level(text):
                if "=" not in item:
                    raise ValueError(f"bad --colors entry {item!r}: use name=colour, e.g. eyes=#ff0000")
                name, value = item.split("=", 1)
                raw[name.strip()] = value.strip()
    return {str(k): parse_color(v) for k, v in raw.items()}


def hex_color(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def color_table(classes: List[List[str]], colors: Dict[str, RGB]) -> Dict[RGB, int]:
    """{colour: class}: class c+1 for the names of ``classes[c]``, 0 for the background colour and for
    names of ``colors`` that no class uses."""
    names = [n for c in classes for n in c]
    missing = [n for n in names if n not in colors]
    if colors and missing:
        raise ValueError(f"--colors gives no colour for part(s) {missing} (it has: {sorted(colors)})")
    if not colors:
        defaults = ["#ffffff"] if len(names) == 1 else PALETTE
        if len(names) > len(defaults):
            raise ValueError(f"{len(names)} parts but only {len(defaults)} default colours: pass --colors")
        colors = {n: parse_color(defaults[i]) for i, n in enumerate(names)}
    colors = dict(colors)
    bg = colors.pop(BACKGROUND, (0, 0, 0))
    table: Dict[RGB, int] = {tuple(bg): 0}
    owner: Dict[RGB, str] = {tuple(bg): BACKGROUND}
    class_of = {n: i + 1 for i, c in enumerate(classes) for n in c}
    for name, rgb in colors.items():
        cls = class_of.get(name, 0)
        rgb = tuple(rgb)
        if rgb in table and table[rgb] != cls:
            raise ValueError(f"parts {owner[rgb]!r} and {name!r} share the colour {hex_color(rgb)} but belong "
                             "to different classes (merge them with '+' in --parts, or repaint)")
        table[rgb] = cls
        owner.setdefault(rgb, name)
    return table


def class_colors(classes: List[List[str]], table: Dict[RGB, int]) -> Dict[str, List[str]]:
    """{class name: [hex colours]} for the model config."""
    out = {}
    for i, c in enumerate(classes):
        out["+".join(c)] = [hex_color(rgb) for rgb, k in table.items() if k == i + 1]
    return out


# --------------------------------------------------------------------------------------------------
# Label images
# --------------------------------------------------------------------------------------------------
def read_label(path, table: Dict[RGB, int], size: Tuple[int, int], tolerance: int = 0) -> np.ndarray:
    """A painted label PNG -> int32 [H, W] class map. Errors name the file: wrong size, unknown colours
    (listed with pixel counts), no foreground pixel."""
    from PIL import Image
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label not found: {path}")
    try:
        with Image.open(path) as im:
            rgba = np.asarray(im.convert("RGBA"))
    except Exception as e:
        raise ValueError(f"{path}: unreadable image ({type(e).__name__}: {e})") from e
    h, w = rgba.shape[:2]
    if (h, w) != tuple(size):
        raise ValueError(f"{path}: label is {w}x{h} pixels, the images are {size[1]}x{size[0]}")
    packed = (rgba[..., 0].astype(np.int64) << 16) | (rgba[..., 1].astype(np.int64) << 8) | rgba[..., 2]
    transparent = rgba[..., 3] == 0
    colors, inverse, counts = np.unique(np.where(transparent, -1, packed), return_inverse=True,
                                        return_counts=True)
    known = np.array(list(table.keys()), np.int64).reshape(-1, 3)
    lut = np.zeros(len(colors), np.int32)
    unknown = []
    for i, c in enumerate(colors):
        if c < 0:
            continue                                          # transparent: background
        rgb = ((c >> 16) & 255, (c >> 8) & 255, c & 255)
        if rgb in table:
            lut[i] = table[rgb]
            continue
        dist = np.abs(known - np.array(rgb)).max(axis=1)
        j = int(np.argmin(dist))
        if tolerance > 0 and dist[j] <= tolerance:
            lut[i] = table[tuple(int(v) for v in known[j])]
        else:
            unknown.append((int(counts[i]), rgb))
    if unknown:
        unknown.sort(reverse=True)
        shown = ", ".join(f"{hex_color(rgb)} ({n} px)" for n, rgb in unknown[:12])
        more = f" and {len(unknown) - 12} more" if len(unknown) > 12 else ""
        expected = ", ".join(f"{hex_color(rgb)}={k}" for rgb, k in table.items())
        raise ValueError(f"{path}: {len(unknown)} colour(s) not in the colour map: {shown}{more}. Expected "
                         f"colour=class: {expected}. Repaint with exact colours (hard-edged brush), "
                         "set --colors, or pass --color_tolerance")
    label = lut[inverse.reshape(h, w)]
    if not (label > 0).any():
        found = [hex_color(((c >> 16) & 255, (c >> 8) & 255, c & 255)) for c in colors if c >= 0]
        raise ValueError(f"{path}: the label has no foreground pixel (every pixel is background; colours "
                         f"found: {', '.join(found) or 'none (transparent)'}; part colours: "
                         f"{', '.join(hex_color(rgb) for rgb, k in table.items() if k > 0)})")
    return label.astype(np.int32)


def find_labels(labels_dir, seeds: Optional[Sequence[int]] = None) -> Dict[int, pathlib.Path]:
    """{seed: label path}: every ``seed_<N>.png`` in ``labels_dir``, or exactly those of ``seeds``."""
    labels_dir = pathlib.Path(labels_dir)
    if not labels_dir.is_dir():
        raise FileNotFoundError(f"labels directory not found: {labels_dir}")
    if seeds is not None:
        paths = {int(s): labels_dir / f"seed_{int(s)}.png" for s in seeds}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"missing label(s) for sample(s): {', '.join(missing)}")
        return paths
    found = {}
    for p in sorted(labels_dir.glob("seed_*.png")):
        m = re.fullmatch(r"seed_(\d+)\.png", p.name)
        if m:
            found[int(m.group(1))] = p
    if not found:
        raise FileNotFoundError(f"no labels in {labels_dir}: paint seed_<N>.png for a sample seed_<N>.png")
    return dict(sorted(found.items()))


# --------------------------------------------------------------------------------------------------
# Latents of a sample folder
# --------------------------------------------------------------------------------------------------
def save_latents(out_dir, seeds, z, truncation: float, w_avg) -> pathlib.Path:
    path = pathlib.Path(out_dir) / LATENTS_FILE
    tmp = path.with_name(".latents.tmp.npz")
    np.savez(tmp, seeds=np.asarray(seeds, np.int64), z=np.asarray(z, np.float32),
             truncation=np.float64(truncation), truncation_latent=np.asarray(w_avg, np.float32))
    tmp.replace(path)
    return path


def load_latents(samples_dir) -> dict:
    path = pathlib.Path(samples_dir) / LATENTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: make the samples with `python -m dds_jax.segment sample`")
    with np.load(path) as f:
        return {"seeds": [int(s) for s in f["seeds"]], "z": f["z"].astype(np.float32),
                "truncation": float(f["truncation"]), "truncation_latent": f["truncation_latent"]}


# --------------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------------
def _w_avg(gen, truncation: float, n: int, seed: int):
    import jax
    import jax.numpy as jnp
    from dds_jax import segmentation
    if truncation >= 1:
        return jnp.zeros((gen.config.style_dim,), jnp.float32)
    return segmentation.truncation_mean(gen, jax.random.PRNGKey(seed), n)


def run_sample(ckpt, out, seeds="0-2", truncation=0.7, truncation_mean=4096, batch_size=8, noise_seed=0):
    """Images to label: ``out/seed_<N>.png`` + ``out/latents.npz`` (merged with an existing one)."""
    from dds_jax import segmentation
    from dds_jax.models import stylegan2 as sg
    gen = sg.load_generator(cli_utils.resolve_model_path(ckpt))
    seed_list = cli_utils.parse_seeds(seeds)
    z = cli_utils.z_from_seeds(seed_list, gen.config.style_dim)
    w_avg = np.asarray(_w_avg(gen, truncation, truncation_mean, noise_seed))
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / LATENTS_FILE).is_file():
        old = load_latents(out)
        if old["z"].shape[1] != z.shape[1] or abs(old["truncation"] - truncation) > 1e-6 \
                or not np.allclose(old["truncation_latent"], w_avg):
            raise ValueError(f"{out} holds samples of another generator or truncation "
                             f"({old['truncation']}); choose another --out")
        keep = [i for i, s in enumerate(old["seeds"]) if s not in seed_list]
        seed_list = [old["seeds"][i] for i in keep] + seed_list
        z = np.concatenate([old["z"][keep], z])
    images, _ = segmentation.generate(gen, z, truncation, w_avg if truncation < 1 else None, batch_size)
    for s, im in zip(seed_list, cli_utils.to_uint8(images)):
        cli_utils.save_png(out / f"seed_{s}.png", im)
    save_latents(out, seed_list, z, truncation, w_avg)
    return seed_list


def run_train(ckpt, samples, labels, parts, out, colors=None, seeds=None, size="S", epochs=100,
              lr=1e-3, weight_decay=1e-3, color_tolerance=0, train_seed=0, overwrite=False,
              progress=True, callback=None):
    """Train a segmenter on the labelled samples; returns the saved model's config. ``callback(epoch,
    loss)`` after every epoch (see :func:`segmentation.train_segmenter`)."""
    import jax
    from dds_jax import checkpoint, segmentation
    from dds_jax.models import stylegan2 as sg
    out_dir = pathlib.Path(out)       # checkpoint.save_model would refuse it, but only after training
    if not overwrite and ((out_dir / "model.json").exists() or (out_dir / "params").exists()):
        raise FileExistsError(f"{out} already holds a model: pass --overwrite to replace it, or choose "
                              "another --out")
    classes = parse_class_spec(parts)
    table = color_table(classes, parse_colors(colors))
    gen = sg.load_generator(cli_utils.resolve_model_path(ckpt))
    lat = load_latents(samples)
    paths = find_labels(labels, seeds)
    no_sample = [s for s in paths if s not in lat["seeds"]]
    if no_sample:
        raise ValueError(f"label(s) {[str(paths[s]) for s in no_sample]} have no sample in {samples} "
                         f"(sampled seeds: {lat['seeds']})")
    hw = (gen.config.size, gen.config.size)
    label_maps = np.stack([read_label(p, table, hw, color_tolerance) for p in paths.values()])
    for i, c in enumerate(classes):
        if not (label_maps == i + 1).any():
            raise ValueError(f"part {'+'.join(c)!r} (colour(s) {class_colors(classes, table)['+'.join(c)]}) "
                             f"has no pixel in any label ({', '.join(str(p) for p in paths.values())})")
    idx = [lat["seeds"].index(s) for s in paths]
    z = lat["z"][idx]
    truncation = lat["truncation"]
    w_avg = lat["truncation_latent"] if truncation < 1 else None
    images, _ = segmentation.generate(gen, z, truncation, w_avg)
    for s, im in zip(paths, cli_utils.to_uint8(images)):
        png = pathlib.Path(samples) / f"seed_{s}.png"
        if png.is_file():
            diff = np.abs(cli_utils.read_image(png)[..., :3].astype(np.float32) - im).mean()
            if diff > 2.0:
                raise ValueError(f"{png} differs from what --ckpt={ckpt} generates for seed {s} (mean |diff| "
                                 f"{diff:.1f}/255): the samples were made with another generator")
    names = ["+".join(c) for c in classes]
    config, params = segmentation.train_segmenter(
        gen, z, label_maps, n_class=len(classes) + 1, size=size, epochs=epochs, truncation=truncation,
        truncation_latent=w_avg, key=jax.random.PRNGKey(train_seed), lr=lr, weight_decay=weight_decay,
        parts=names, progress=progress, callback=callback)
    config["colors"] = class_colors(classes, table)
    config["training"].update({"seeds": list(paths), "labels": [str(p) for p in paths.values()]})
    checkpoint.save_model(out, "segmenter", config, params, overwrite=overwrite)
    return config


def overlay(image: np.ndarray, classes: np.ndarray, highlight: Sequence[int], alpha: float = 0.5) -> np.ndarray:
    """uint8 image with the ``highlight`` classes tinted (class k gets PALETTE[k-1])."""
    out = image.astype(np.float32)
    for k in highlight:
        if k == 0:
            continue
        rgb = np.array(parse_color(PALETTE[(k - 1) % len(PALETTE)]), np.float32)
        m = classes == k
        out[m] = (1 - alpha) * out[m] + alpha * rgb
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def run_predict(ckpt, seg, out, seeds="0-7", truncation=0.7, truncation_mean=4096, parts=None,
                batch_size=8, noise_seed=0):
    """Masks (``seed_<N>_mask.png``) and overlays (``seed_<N>_overlay.png``) for the seeds."""
    import jax
    import jax.numpy as jnp
    from dds_jax import segmentation
    from dds_jax.models import stylegan2 as sg
    gen = sg.load_generator(cli_utils.resolve_model_path(ckpt))
    model = segmentation.load_segmenter(cli_utils.resolve_model_path(seg))
    segmentation.check_compatible(gen.config, model)
    selected = segmentation.parse_parts(parts, model) if parts else None
    seed_list = cli_utils.parse_seeds(seeds)
    z = cli_utils.z_from_seeds(seed_list, gen.config.style_dim)
    w_avg = _w_avg(gen, truncation, truncation_mean, noise_seed)
    forward = segmentation.forward_fn(gen.config, bool(getattr(gen.module, "fused", False)))
    size = (gen.config.size, gen.config.size)

    @jax.jit
    def predict(variables, params, zb, psi, w_avg):
        img, feats = forward(variables, zb, psi, w_avg)
        return img, jnp.argmax(model.module.apply({"params": params}, feats, size), axis=-1)

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bs = max(1, min(batch_size, len(z)))
    psi = jnp.float32(min(truncation, 1.0))
    for start in range(0, len(z), bs):
        zb = z[start:start + bs]
        pad = bs - len(zb)
        if pad:
            zb = np.concatenate([zb, np.zeros((pad, zb.shape[1]), np.float32)])
        img, cls = jax.device_get(predict(gen.variables, model.params, jnp.asarray(zb), psi, w_avg))
        for s, im, c in zip(seed_list[start:start + bs], cli_utils.to_uint8(img), cls):
            if selected is not None:
                mask = np.isin(c, selected).astype(np.uint8) * 255
                highlight = selected
            elif model.n_class == 2:
                mask = (c == 1).astype(np.uint8) * 255
                highlight = [1]
            else:
                mask = c.astype(np.uint8)
                highlight = list(range(1, model.n_class))
            cli_utils.save_png(out / f"seed_{s}_mask.png", mask)
            cli_utils.save_png(out / f"seed_{s}_overlay.png", overlay(im, c, highlight))
    return seed_list


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------
def define_flags():
    from absl import flags
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


def _require(FLAGS, command, *names):
    missing = [f"--{n}" for n in names if getattr(FLAGS, n) in (None, "")]
    if missing:
        raise ValueError(f"{command} needs {', '.join(missing)}")


def main(argv):
    from absl import flags
    FLAGS = flags.FLAGS
    if len(argv) != 2 or argv[1] not in COMMANDS:
        extra = f" (got {' '.join(argv[1:])!r})" if len(argv) > 1 else ""
        print(f"usage: python -m dds_jax.segment {{{'|'.join(COMMANDS)}}} --flags ...{extra}; "
              "--help for details", file=sys.stderr)
        sys.exit(2)
    command = argv[1]
    try:
        if command == "sample":
            _require(FLAGS, command, "ckpt", "out")
            seeds = run_sample(FLAGS.ckpt, FLAGS.out, FLAGS.seeds or "0-2", FLAGS.truncation,
                               FLAGS.truncation_mean, FLAGS.batch_size, FLAGS.noise_seed)
            print(f"wrote {len(seeds)} samples and {LATENTS_FILE} to {FLAGS.out}; paint labels as "
                  f"<labels>/seed_<N>.png and run `python -m dds_jax.segment train`")
        elif command == "train":
            _require(FLAGS, command, "ckpt", "samples", "labels", "parts", "out")
            seeds = cli_utils.parse_seeds(FLAGS.seeds) if FLAGS.seeds else None
            config = run_train(FLAGS.ckpt, FLAGS.samples, FLAGS.labels, FLAGS.parts, FLAGS.out, FLAGS.colors,
                               seeds, FLAGS.size, FLAGS.epochs, FLAGS.lr, FLAGS.weight_decay,
                               FLAGS.color_tolerance, FLAGS.train_seed, FLAGS.overwrite)
            print(f"wrote segmenter to {FLAGS.out}: parts {config['parts']}, final loss "
                  f"{config['training']['final_loss']:.4f}")
        else:
            _require(FLAGS, command, "ckpt", "seg", "out")
            seeds = run_predict(FLAGS.ckpt, FLAGS.seg, FLAGS.out, FLAGS.seeds or "0-7", FLAGS.truncation,
                                FLAGS.truncation_mean, FLAGS.parts, FLAGS.batch_size, FLAGS.noise_seed)
            print(f"wrote {len(seeds)} masks and overlays to {FLAGS.out}")
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    from absl import app
    define_flags()
    app.run(main)
