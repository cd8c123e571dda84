"""Dual-domain synthesis measured against ground truth.

  python -m dds_jax.cli.benchmark --out=runs/benchmark                         # shipped demo models, 32 faces
  python -m dds_jax.cli.benchmark --out=runs/benchmark --config=configs/benchmark.py --config.n=8
  python -m dds_jax.cli.benchmark --out=runs/b --config.source_ckpt=DIR --config.target_ckpt=DIR \\
      --config.segmenter_ckpt=DIR --config.methods=x_t,x_c,target      # any pair: see configs/benchmark.py

The paper has no ground truth for a dual-domain image; the renderer (``dds_jax.render``) has one: it
draws the same face in the source style and in the target style with the true part masks, so the true
result is the source rendering inside the part and the target rendering outside it. The benchmark

1. renders ``n`` faces (seeded) in both styles, with their true masks and the true dual-domain image;
2. inverts each rendering into its own generator (W+, ``dds_jax.dds.invert``, batched; cached in OUT);
3. segments the two inversions with the segmenter (the masks every method gets, as in a real run);
4. runs every method on these same inputs: ``x_t`` (the target inversion, i.e. doing nothing),
   ``x_c`` (the naive crossover of Eq. 1) and the DDS objectives of :data:`METHODS`;
5. scores each result against the truth: MSE and SSIM on the whole image, inside the TRUE part and
   outside it, and a domain score from a small per-pixel style classifier trained on renderings
   (P(source style) inside the part, P(target style) outside it).

Writes ``OUT/benchmark.json`` (``{"default": name, "methods": {name: metrics}, ...}``),
``OUT/benchmark.md`` (the table) and ``OUT/contact_sheet.png`` (rows = faces; columns = source
rendering, target rendering, TRUTH, then every method in table order). The inversion step
(``dds.invert.invert_pair`` + ``inputs_from_inversions``) is shared with DDS on the user's own images.
"""
import dataclasses
import pathlib
import time
from typing import Dict, List, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import linen as nn

from dds_jax import checkpoint as ckpt_io
from dds_jax import files, render
from dds_jax.dds import align
from dds_jax.dds import invert
from dds_jax.eval import metrics
from dds_jax.dds import objectives
from dds_jax.dds import optimize as opt

# DDS methods: name -> DDSConfig fields (iterations and backbone come from the benchmark config).
METHODS: Dict[str, dict] = {
    "paper": dict(mode="paper"),                              # Eqs. 1-6: two generators, ẑ in Z
    "reference": dict(mode="reference"),                      # released loop: G_s, W+, fresh noise
    "inner": dict(mode="inner"),                              # released loop on G_s, fixed noise
    "outer_mean": dict(mode="outer", init="mean"),            # the loop on G_t from the mean latent
    "outer": dict(mode="outer"),                              # ... from the target's latent
    "outer_pixel": dict(mode="outer", perceptual_weight=0.0),     # ... without the perceptual terms
    "blend_forward": dict(mode="blend_forward"),              # G_s inside / G_t outside, one forward pass
    "blend": dict(mode="blend"),                              # ... its latents optimised (region means)
}
BASELINES = ("x_t", "x_c")
DEFAULT_METHOD = "blend"
METRICS = ("mse", "mse_in_part", "mse_out_part", "ssim", "ssim_in_part", "ssim_out_part",
           "p_source_in_part", "p_target_out_part", "seam")
LOWER_IS_BETTER = ("mse", "mse_in_part", "mse_out_part", "seam")
# Tracks: paired = the same face in both domains; unpaired = target face A gets the part of another
# face B (B_i = face i+1), the truth drawn by the renderer as A with B's part parameters (hairstyle
# transfer, paper Fig. 11). "<track>_oracle": the renderer's true masks instead of the segmenter's.
TRACKS = ("paired", "unpaired")


def default_config() -> ml_collections.ConfigDict:
    """Every benchmark option (``--config.<field>=...``); configs/benchmark.py returns this."""
    c = ml_collections.ConfigDict()
    c.source_ckpt = "demo:sketch"     # G_s and the style its renderings are drawn in
    c.target_ckpt = "demo:photo"
    c.segmenter_ckpt = "demo:segmenter"
    c.source_style = "sketch"         # dds_jax.render styles
    c.target_style = "photo"
    c.part = "hair"                   # render.PARTS names, comma-separated (segmenter and truth)
    c.n = 32                          # faces
    c.seed = 1000                     # render_faces seed of the faces (not a training seed of the demo)
    c.invert_steps = 300              # Adam steps of each W+ inversion
    c.invert_lr = 0.05
    c.iterations = 200                # DDS iterations of every method (the demo's)
    c.chunk = 50
    c.backbone = "generator"          # DDS perceptual backbone (generator: no torchvision weights)
    c.backbone_ckpt = ""
    c.methods = ""                    # comma-separated subset of x_t, x_c and METHODS; "" = all
    c.tracks = "paired,unpaired"      # comma-separated subset of TRACKS
    c.oracle = True                   # also run every track with the renderer's true masks
    c.align = True                    # unpaired track: the DDS methods get the source aligned to the target
                                      # (dds.align; x_t and x_c stay the naive baselines)
    c.default_method = DEFAULT_METHOD
    c.init_seed = 0
    c.classifier_steps = 400          # the style classifier's Adam steps (batch 32 renderings)
    c.classifier_seed = 2000
    c.sheet_rows = 8
    return c


# --------------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Renders:
    """uint8 renderings [N, H, W, 3] of the inputs (source style, target style), the true part mask of
    the RESULT [N, H, W] (bool), the true dual-domain image (source style inside the part, target style
    outside), and the true part masks of the two inputs (the oracle's y_s, y_t)."""
    source: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    truth: np.ndarray
    source_mask: np.ndarray = None
    target_mask: np.ndarray = None


def part_ids(part: str) -> List[int]:
    names = [p.strip() for p in str(part).split(",") if p.strip()]
    bad = [p for p in names if p not in render.PARTS[1:]]
    if not names or bad:
        raise ValueError(f"config.part = {part!r}: use names of {', '.join(render.PARTS[1:])}")
    return [render.PARTS.index(p) for p in names]


def render_truth(seed: int, n: int, size: int, part: str, source_style: str = "sketch",
                 target_style: str = "photo") -> Renders:
    """The paired track: face i in both styles; the truth is its source rendering inside the part."""
    src, labels = render.render_faces(seed, n, size, source_style)
    tgt, _ = render.render_faces(seed, n, size, target_style)    # same faces: same labels
    mask = np.isin(labels, part_ids(part))
    truth = np.where(mask[..., None], src, tgt)
    return Renders(src, tgt, mask, truth, mask, mask)


def donor_index(n: int) -> np.ndarray:
    """The unpaired track's face B of target face A = i: face i+1 (the last takes face 0)."""
    return np.roll(np.arange(n), -1)


def render_unpaired_truth(seed: int, n: int, size: int, part: str, source_style: str = "sketch",
                          target_style: str = "photo") -> Renders:
    """The unpaired track: x_t = face A_i (target style), x_s = face B_i = A_{i+1} (source style), the
    truth = A_i drawn with B_i's part parameters (``render.with_parts``), source style inside ITS part
    mask. B's part sits elsewhere in x_s (another pose), so cut-and-paste puts it in the wrong place."""
    ids = part_ids(part)
    a = render.face_params(seed, n)
    b = {k: v[donor_index(n)] for k, v in a.items()}
    src, src_labels = render.render(b, size, source_style)
    tgt, tgt_labels = render.render(a, size, target_style)
    mixed = render.with_parts(a, b, [render.PARTS[i] for i in ids])
    t_src, labels = render.render(mixed, size, source_style)
    t_tgt, _ = render.render(mixed, size, target_style)
    mask = np.isin(labels, ids)
    return Renders(src, tgt, mask, np.where(mask[..., None], t_src, t_tgt),
                   np.isin(src_labels, ids), np.isin(tgt_labels, ids))


def unpaired_inversions(inv: dict) -> dict:
    """The paired track's inversions with the source side taken from the donor faces (B_i = face i+1):
    the unpaired track needs no inversion of its own."""
    idx = donor_index(len(inv["w_s"]))
    out = dict(inv)
    for k in ("w_s", "x_s", "mse_s"):
        out[k] = np.asarray(inv[k])[idx]
    out["feats_s"] = [np.asarray(f)[idx] for f in inv["feats_s"]]
    return out


# --------------------------------------------------------------------------------------------------
# Inputs: inversion + segmentation (reusable for any source / target images)
# --------------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------------
# Domain classifier: per-pixel P(source style), trained on renderings
# --------------------------------------------------------------------------------------------------
class StyleNet(nn.Module):
    """Three 3x3 convolutions (receptive field 7x7 pixels): per-pixel logit of 'source style'."""

    @nn.compact
    def __call__(self, x):
        for ch in (24, 24):
            x = nn.relu(nn.Conv(ch, (3, 3))(x))
        return nn.Conv(1, (3, 3))(x)[..., 0]


def style_mix(rng: np.random.Generator, source, target, labels):
    """Renderings with a random subset of parts (each with probability 1/2, the background too) in the
    source style and the rest in the target style -> (images in [-1, 1], label 1 = source style)."""
    chosen = rng.random((len(labels), len(render.PARTS))) < 0.5
    mask = np.take_along_axis(chosen, labels.reshape(len(labels), -1).astype(np.int64), 1).reshape(labels.shape)
    images = np.where(mask[..., None], source, target).astype(np.float32) / 127.5 - 1.0
    return images, mask.astype(np.float32)


def train_style_classifier(size: int, source_style: str, target_style: str, steps: int = 400,
                           seed: int = 2000, batch: int = 32):
    """Params of :class:`StyleNet` trained with per-pixel logistic loss on mixed renderings (a stream
    of faces unrelated to the benchmark's), and a jitted ``p_source(params, images [-1, 1]) -> [N, H, W]``."""
    net = StyleNet()
    params = net.init(jax.random.PRNGKey(seed), jnp.zeros((1, size, size, 3)))
    tx = optax.adam(3e-3)
    state = tx.init(params)

    @jax.jit
    def step(params, state, x, y):
        def loss_fn(p):
            return jnp.mean(optax.sigmoid_binary_cross_entropy(net.apply(p, x), y))
        loss, g = jax.value_and_grad(loss_fn)(params)
        u, state = tx.update(g, state, params)
        return optax.apply_updates(params, u), state, loss

    rng = np.random.default_rng(seed)
    n_batches = 8                                       # a fixed pool of renderings, re-mixed each step
    pool = [render.batch_params(seed, k, batch) for k in range(n_batches)]
    styled = [(render.render(p, size, source_style), render.render(p, size, target_style)) for p in pool]
    for i in range(int(steps)):
        (src, labels), (tgt, _) = styled[i % n_batches]
        x, y = style_mix(rng, src, tgt, labels)
        params, state, _ = step(params, state, jnp.asarray(x), jnp.asarray(y))
    return params, jax.jit(lambda p, x: jax.nn.sigmoid(net.apply(p, x)))


# --------------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------------
def _region_mean(values, region):
    """Per-image mean of values [N, H, W(, C)] over region [N, H, W] (NaN where the region is empty)."""
    v = np.asarray(values, np.float64)
    if v.ndim == 4:
        v = v.mean(-1)
    r = np.asarray(region, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (v * r).sum((1, 2)) / r.sum((1, 2))


def boundary_band(mask) -> np.ndarray:
    """[N, H, W] bool: the pixels on either side of the part's boundary (a 4-neighbour differs)."""
    m = np.asarray(mask, bool)
    band = np.zeros_like(m)
    for axis in (1, 2):
        diff = np.diff(m, axis=axis)
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        band[tuple(lo)] |= diff
        band[tuple(hi)] |= diff
    return band


def image_gradients(images) -> np.ndarray:
    """[N, H, W, 2C]: forward differences along x and y (0 on the last row / column)."""
    x = np.asarray(images, np.float32)
    gx = np.zeros_like(x)
    gy = np.zeros_like(x)
    gx[:, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
    gy[:, :-1] = x[:, 1:] - x[:, :-1]
    return np.concatenate([gx, gy], axis=-1)


def seam_error(images, truth, mask) -> np.ndarray:
    """Per image: the mean over the boundary band of the true part of |∇image - ∇truth| (the RMS over
    x/y and channels): a pasted edge or a halo scores high, the truth's own contour scores 0."""
    d = image_gradients(images) - image_gradients(truth)
    return _region_mean(np.sqrt(np.mean(d ** 2, axis=-1)), boundary_band(mask))


def score_images(images, truth, mask, p_source: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """Per-image scores of images against the truth (both float in [0, 1], [N, H, W, 3]; mask [N, H, W]
    bool, the TRUE part). p_source: the style classifier's P(source style) map of ``images``."""
    images, truth = np.asarray(images, np.float32), np.asarray(truth, np.float32)
    inside = np.asarray(mask, bool)
    outside = ~inside
    err = (images - truth) ** 2
    s_map = np.asarray(metrics.ssim_map(jnp.asarray(images), jnp.asarray(truth)))
    full = np.ones(inside.shape, bool)
    out = {"mse": _region_mean(err, full), "mse_in_part": _region_mean(err, inside),
           "mse_out_part": _region_mean(err, outside), "ssim": _region_mean(s_map, full),
           "ssim_in_part": _region_mean(s_map, inside), "ssim_out_part": _region_mean(s_map, outside),
           "seam": seam_error(images, truth, inside)}
    if p_source is not None:
        out["p_source_in_part"] = _region_mean(p_source, inside)
        out["p_target_out_part"] = _region_mean(1.0 - np.asarray(p_source), outside)
    return out


def summarize(per_image: Dict[str, np.ndarray]) -> Dict[str, float]:
    return {k: round(float(np.nanmean(v)), 5) for k, v in per_image.items()}


# --------------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------------
def method_names(spec: str) -> List[str]:
    known = list(BASELINES) + list(METHODS)
    names = [m.strip() for m in str(spec).split(",") if m.strip()] or known
    bad = [m for m in names if m not in known]
    if bad:
        raise ValueError(f"config.methods: unknown {bad}; known methods: {', '.join(known)}")
    return names


def method_config(name: str, c) -> opt.DDSConfig:
    """The DDSConfig of a method: the benchmark's backbone and iterations (a one-forward objective
    such as ``blend_forward`` keeps its 0 iterations)."""
    fields = dict(METHODS[name], backbone=c.backbone)
    if objectives.get(fields["mode"]).defaults.get("iterations") != 0:
        fields["iterations"] = int(c.iterations)
    return opt.DDSConfig(**fields).resolved()


def run_method(name: str, models: opt.DDSModels, inputs: opt.Inputs, c, progress=None) -> np.ndarray:
    """x̂ [N, H, W, 3] in [-1, 1] of one method on the benchmark inputs."""
    if name == "x_t":
        return np.asarray(inputs.x_t)
    if name == "x_c":
        return np.asarray(inputs.x_c)
    dcfg, note = objectives.for_generators(method_config(name, c), models.config_s, models.config_t)
    if note:
        logging.warning("%s", note)
    dcfg = dcfg.resolved()
    last = [0]

    def tick(done, *_):
        if progress is not None:
            progress.update((done - last[0]) * int(inputs.x_s.shape[0]))
        last[0] = done
    res = opt.run_dds(models, inputs, dcfg, jax.random.PRNGKey(c.init_seed), chunk=int(c.chunk), callback=tick)
    if res.failed:
        raise RuntimeError(f"method {name}: non-finite loss for problems {res.failed}")
    return np.asarray(res.images["result"])


# --------------------------------------------------------------------------------------------------
# Whole benchmark
# --------------------------------------------------------------------------------------------------
def load(c):
    """(gen_s, gen_t, DDSModels, seg_fn, fg_fn) of the config's checkpoints: seg_fn the part mask,
    fg_fn the foreground mask (every class but the background; :func:`dds_jax.dds.align.align_inversions`)."""
    from dds_jax.segmentation import oneshot as segmentation
    from dds_jax.models import stylegan2 as sg
    gen_s = sg.load_generator(ckpt_io.resolve_model_path(c.source_ckpt))
    gen_t = sg.load_generator(ckpt_io.resolve_model_path(c.target_ckpt))
    backbone_params = None
    if c.backbone != "generator":
        backbone_params = ckpt_io.load_model(ckpt_io.resolve_model_path(c.backbone_ckpt),
                                             expect_kind=c.backbone).params
    models = opt.DDSModels.create(gen_s, gen_t, c.backbone, backbone_params)
    seg = segmentation.load_segmenter(ckpt_io.resolve_model_path(c.segmenter_ckpt))
    for gen in (gen_s, gen_t):
        segmentation.check_compatible(gen.config, seg)
    parts = segmentation.parse_parts(c.part, seg)
    return gen_s, gen_t, models, segmentation.binary_mask_fn(seg, parts), segmentation.foreground_mask_fn(seg)


def track_names(c) -> List[str]:
    names = [t.strip() for t in str(c.tracks).split(",") if t.strip()]
    bad = [t for t in names if t not in TRACKS]
    if not names or bad:
        raise ValueError(f"config.tracks = {c.tracks!r}: use a comma-separated subset of {', '.join(TRACKS)}")
    return [v for t in names for v in ([t, f"{t}_oracle"] if c.oracle else [t])]


def run_benchmark(c, out) -> dict:
    """The whole benchmark (see the module docstring); returns what benchmark.json holds: the first
    track's ``default``/``methods``/``truth``/... at the top (the paired track with the segmenter's
    masks), and every track in the same shape under ``tracks``."""
    from tqdm import tqdm
    out = pathlib.Path(out)
    names = method_names(c.methods)
    if c.default_method not in names:
        raise ValueError(f"config.default_method = {c.default_method!r} is not among the methods run "
                         f"({', '.join(names)})")
    if int(c.n) < 1:
        raise ValueError(f"config.n must be >= 1, got {c.n}")
    part_ids(c.part)
    tracks = track_names(c)
    t0 = time.perf_counter()
    gen_s, gen_t, models, seg_fn, fg_fn = load(c)
    size = models.config_t.size
    paired = render_truth(c.seed, c.n, size, c.part, c.source_style, c.target_style)
    out.mkdir(parents=True, exist_ok=True)
    # faces i < n depend only on (seed, i): a cache of more faces serves a smaller n
    key = {"source": invert.fingerprint(gen_s.variables), "target": invert.fingerprint(gen_t.variables),
           "source_ckpt": c.source_ckpt, "target_ckpt": c.target_ckpt, "source_style": c.source_style,
           "target_style": c.target_style, "seed": int(c.seed), "steps": int(c.invert_steps),
           "lr": float(c.invert_lr), "size": size}
    timings = {}
    inv = invert.invert_pair(gen_s, gen_t, paired.source, paired.target, c.invert_steps, c.invert_lr,
                             cache=out / "inversions.npz", key=key)
    timings["inversion_s"] = round(time.perf_counter() - t0, 1)
    cls_params, p_source = train_style_classifier(size, c.source_style, c.target_style,
                                                  c.classifier_steps, c.classifier_seed)
    classify = lambda img01: np.asarray(p_source(cls_params, jnp.asarray(img01 * 2.0 - 1.0)))   # noqa: E731
    per_track = sum(int(method_config(name, c).iterations) for name in names if name in METHODS)
    report = {"tracks": {}}
    aligned = None               # (inversions, transforms) of the aligned unpaired sources, made once
    with tqdm(total=len(tracks) * per_track * int(c.n), unit="it",
              desc="benchmark problem-iterations", dynamic_ncols=True, disable=None) as progress:
        for track in tracks:
            base = track.split("_")[0]
            truth = paired if base == "paired" else render_unpaired_truth(
                c.seed, c.n, size, c.part, c.source_style, c.target_style)
            track_inv = inv if base == "paired" else unpaired_inversions(inv)
            masks = None
            if track.endswith("_oracle"):
                masks = tuple(jnp.asarray(m[..., None], jnp.float32) for m in (truth.source_mask, truth.target_mask))
            inputs = invert.inputs_from_inversions(track_inv, opt.DDSConfig(), seg_fn, masks=masks)
            method_inputs = inputs
            if base == "unpaired" and c.align and any(name in METHODS for name in names):
                if aligned is None:
                    t1 = time.perf_counter()
                    aligned = align.align_inversions(track_inv, truth.source, gen_s, fg_fn, c.invert_steps,
                                                     c.invert_lr, out / "inversions_aligned.npz", key)
                    timings["alignment_s"] = round(time.perf_counter() - t1, 1)
                a_inv, transforms = aligned
                a_masks = None if masks is None else (
                    jnp.asarray(align.warp_masks(truth.source_mask, transforms)[..., None], jnp.float32), masks[1])
                method_inputs = invert.inputs_from_inversions(a_inv, opt.DDSConfig(), seg_fn, masks=a_masks)
            result, images = run_track(track, names, models, method_inputs, truth, classify, c, progress,
                                       baseline_inputs=inputs)
            report["tracks"][track] = result
            rows = min(int(c.sheet_rows), int(c.n))
            tiles = []
            for i in range(rows):
                tiles += [truth.source[i], truth.target[i], truth.truth[i]]
                tiles += [files.to_uint8(images[name][i], (0.0, 1.0)) for name in names]
            sheet = "contact_sheet.png" if track == tracks[0] else f"contact_sheet_{track}.png"
            files.save_png(out / sheet, files.make_grid(tiles, ncols=3 + len(names)))
    first = report["tracks"][tracks[0]]
    report.update({k: first[k] for k in ("default", "methods", "truth", "segmenter_iou")})
    report.update({
        "inversion": {"mse_source": round(float(np.mean(inv["mse_s"])), 5),
                      "mse_target": round(float(np.mean(inv["mse_t"])), 5)},
        "config": c.to_dict(), "timings": dict(timings, total_s=round(time.perf_counter() - t0, 1)),
        "dds_configs": {n: dataclasses.asdict(method_config(n, c)) for n in names if n in METHODS},
    })
    files.write_json(out / "benchmark.json", report)
    files.write_text(out / "benchmark.md", markdown_table(report))
    return report


def run_track(track: str, names, models, inputs, truth: Renders, classify, c, progress=None,
              baseline_inputs=None):
    """Every method on one track's inputs, scored against its truth -> (``{"default", "methods",
    "truth", "segmenter_iou"}``, images in [0, 1] per method). ``baseline_inputs`` (default ``inputs``):
    the unaligned inputs x_t and x_c are taken from (the aligned unpaired track keeps the naive baselines)."""
    baseline_inputs = inputs if baseline_inputs is None else baseline_inputs
    to01 = lambda x: np.clip((np.asarray(x, np.float32) + 1.0) / 2.0, 0.0, 1.0)      # noqa: E731
    truth01 = truth.truth.astype(np.float32) / 255.0
    scores = lambda img01: score_images(img01, truth01, truth.mask, classify(img01))  # noqa: E731
    results, images = {}, {}
    for name in names:
        t1 = time.perf_counter()
        if progress is not None:
            progress.set_postfix(track=track, method=name)
        images[name] = to01(run_method(name, models, baseline_inputs if name in BASELINES else inputs, c, progress))
        results[name] = summarize(scores(images[name]))
        results[name]["seconds"] = round(time.perf_counter() - t1, 1)
        logging.info("%s / %s: %s", track, name, results[name])
    seg = (np.asarray(baseline_inputs.y_s)[..., 0] > 0.5, np.asarray(baseline_inputs.y_t)[..., 0] > 0.5)
    return {"default": c.default_method, "methods": results, "truth": summarize(scores(truth01)),
            "segmenter_iou": {"source": _iou(seg[0], truth.source_mask), "target": _iou(seg[1], truth.target_mask)},
            }, images


def _iou(pred, true) -> float:
    return round(float(np.logical_and(pred, true).sum() / max(np.logical_or(pred, true).sum(), 1)), 4)


def markdown_table(report: dict) -> str:
    """One table per track (methods as rows, :data:`METRICS` as columns, the truth last)."""
    c = report["config"]
    head = ("| method | MSE ↓ | MSE in part ↓ | MSE out of part ↓ | SSIM ↑ | SSIM in part ↑ | "
            "SSIM out of part ↑ | P(source) in part ↑ | P(target) out of part ↑ | seam ↓ |")
    lines = [f"# Dual-domain benchmark: {c['n']} rendered faces, part {c['part']}, "
             f"{c['source_style']} ({c['source_ckpt']}) into {c['target_style']} ({c['target_ckpt']})", ""]
    for track, t in report.get("tracks", {"paired": report}).items():
        lines += [f"## {track}", "", head, "|" + "---|" * (len(METRICS) + 1)]
        for name, m in list(t["methods"].items()) + [("(truth)", t["truth"])]:
            tag = f"**{name}** (default)" if name == t["default"] else name
            lines.append(f"| {tag} | " + " | ".join(f"{m.get(k, float('nan')):.4f}" for k in METRICS) + " |")
        iou = t["segmenter_iou"]
        lines += ["", f"Part masks: IoU with the true input masks: source {iou['source']:.3f}, target "
                  f"{iou['target']:.3f}.", ""]
    inv = report["inversion"]
    lines += [f"Images in [0, 1]; in/out of part = the TRUE part mask of the result (renderer). seam = "
              f"|∇x̂ - ∇truth| along the true part boundary. Inversion MSE: source {inv['mse_source']:.4f}, "
              f"target {inv['mse_target']:.4f}. DDS: {c['iterations']} iterations. Tracks: paired = the same "
              "face in both domains; unpaired = face A gets face B's part (truth: A drawn with B's part "
              "parameters); _oracle = the renderer's true masks instead of the segmenter's. Contact sheet "
              "columns: source input, target input, truth, then the methods in table order.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------
