"""The one-shot part segmenter in use: loading, part selection, binary masks and one-shot training.

DDS (paper Sec. 3.2) segments the part to transfer with a RepurposingGAN ``FewShotCNN`` trained on the
source generator's features from a single labelled sample; the same segmenter is applied to both
generators, whose features share their architecture. Classes: 0 = background, ``i + 1`` = the
``i``-th name of ``config["parts"]``.
"""
import dataclasses
import functools
import math
import pathlib
from typing import Any, Callable, List, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dds_jax import checkpoint, generation, ops
from dds_jax.models import segmenter as seg_model
from dds_jax.models import stylegan2 as sg


@dataclasses.dataclass
class Segmenter:
    config: dict                     # {"size", "in_ch", "n_class", "parts"?: [names], ...}
    params: Any
    module: seg_model.FewShotCNN
    path: Optional[pathlib.Path] = None

    @property
    def n_class(self) -> int:
        return int(self.config["n_class"])

    @property
    def in_ch(self) -> int:
        return int(self.config["in_ch"])

    @property
    def parts(self) -> List[str]:
        return list(self.config.get("parts") or [])

    def logits(self, features, image_size=None):
        """[B, H, W, n_class] for a generator's feature list (memory-light first layer)."""
        return self.module.apply({"params": self.params}, list(features), image_size)


def from_params(config: dict, params, path=None) -> Segmenter:
    """A :class:`Segmenter` from a config and parameters, checking that the two agree."""
    info = seg_model.describe_params(params)
    for k, v in info.items():
        if k in config and config[k] != v:
            raise ValueError(f"{path or 'segmenter'}: config says {k}={config[k]!r}, the parameters "
                             f"have {k}={v!r}")
    config = {**info, **config}
    return Segmenter(config, params, seg_model.FewShotCNN(info["n_class"], info["size"]),
                     None if path is None else pathlib.Path(path))


def load_segmenter(path) -> Segmenter:
    """A segmenter model directory (``convert/torch_to_flax.py --kind=segmenter`` or
    ``python -m dds_jax.cli.segment train``)."""
    m = checkpoint.load_model(path, expect_kind="segmenter")
    return from_params(dict(m.config), m.params, m.path)


# --------------------------------------------------------------------------------------------------
# Compatibility and part selection
# --------------------------------------------------------------------------------------------------
def _generator_config(generator_config) -> sg.GeneratorConfig:
    if isinstance(generator_config, sg.GeneratorConfig):
        return generator_config
    if isinstance(generator_config, sg.LoadedGenerator):
        return generator_config.config
    return sg.GeneratorConfig.from_dict(dict(generator_config))


def generator_feature_channels(generator_config) -> int:
    """Channels of the concatenated StyledConv features of a generator (5376 for config-f 256)."""
    return int(sum(_generator_config(generator_config).feature_channels))


def check_compatible(generator_config, seg: Segmenter) -> None:
    """ValueError unless the generator's features have the channels the segmenter takes."""
    cfg = _generator_config(generator_config)
    have = generator_feature_channels(cfg)
    if have != seg.in_ch:
        where = f" ({seg.path})" if seg.path else ""
        raise ValueError(f"segmenter{where} takes {seg.in_ch} feature channels, but the {cfg.size}x{cfg.size} "
                         f"generator's {cfg.num_layers} feature maps have {have} channels in all: the "
                         "segmenter was trained on another generator architecture")


def parse_parts(parts: Union[None, str, Sequence[Union[str, int]]], seg: Segmenter) -> List[int]:
    """Class indices of the parts to merge into the mask.

    ``parts``: comma-separated text or a list of part names (``seg.config["parts"]``; part ``i`` is
    class ``i + 1``, ``"background"`` is 0) and/or class indices. ``None`` or blank text: every class
    but the background.
    """
    names = seg.parts
    known = ", ".join([f"{n} ({i + 1})" for i, n in enumerate(names)] or ["(unnamed)"])
    if parts is None or (isinstance(parts, str) and not parts.strip()):
        out = list(range(1, seg.n_class))
        if not out:
            raise ValueError(f"the segmenter has {seg.n_class} class(es) and no part besides the background")
        return out
    tokens = [t.strip() for t in parts.split(",")] if isinstance(parts, str) else list(parts)
    out = []
    for t in tokens:
        if isinstance(t, str) and t == "":
            continue
        if isinstance(t, (int, np.integer)) or (isinstance(t, str) and t.lstrip("-").isdigit()):
            c = int(t)
            if not 0 <= c < seg.n_class:
                raise ValueError(f"part class {c} out of range: the segmenter has classes 0-{seg.n_class - 1} "
                                 f"(0 = background; parts: {known})")
        elif t in names:
            c = names.index(t) + 1
        elif t == "background":
            c = 0
        else:
            raise ValueError(f"unknown part {t!r}; known parts: {known}")
        if c not in out:
            out.append(c)
    if not out:
        raise ValueError(f"no parts selected in {parts!r}; known parts: {known}")
    return out


def binary_mask_fn(seg: Segmenter, parts: Sequence[int]) -> Callable:
    """``fn(images, features) -> float32 [B, H, W, 1]``: 1 where the segmenter's arg-max class is one of
    ``parts`` (DDS: ``out.data.max(1)[1]``). ``images`` (NHWC) only gives the size; jitted."""
    classes = jnp.asarray(sorted(set(int(p) for p in parts)), jnp.int32)
    params = jax.device_put(seg.params)

    @functools.partial(jax.jit, static_argnums=1)
    def masks(params, image_hw, features):
        logits = seg.module.apply({"params": params}, list(features), image_hw)
        return class_mask(jnp.argmax(logits, axis=-1), classes)

    def fn(images, features):
        return masks(params, tuple(int(s) for s in images.shape[1:3]), list(features))
    return fn


def foreground_mask_fn(seg: Segmenter) -> Callable:
    """:func:`binary_mask_fn` of every class but the background (class 0): the segmented object as a
    whole (``dds.align`` carries one picture's object onto another's)."""
    return binary_mask_fn(seg, range(1, seg.n_class))


def class_mask(classes, parts) -> jnp.ndarray:
    """[B, H, W] class map -> float32 [B, H, W, 1]: 1 where the class is in ``parts``."""
    parts = jnp.asarray(parts, jnp.int32)
    return jnp.any(classes[..., None] == parts, axis=-1, keepdims=True).astype(jnp.float32)


# --------------------------------------------------------------------------------------------------
# Features and one-shot training (RepurposingGAN's recipe)
# --------------------------------------------------------------------------------------------------
def make_optimizer(lr: float = 1e-3, weight_decay: float = 1e-3, steps_per_epoch: int = 1,
                   decay_every: int = 50, decay_factor: float = 0.1) -> optax.GradientTransformation:
    """``torch.optim.Adam(lr, weight_decay)`` (L2 added to the gradient before Adam) with
    ``StepLR(step_size=decay_every epochs, gamma=decay_factor)``."""
    period = max(1, steps_per_epoch * decay_every)
    return optax.chain(
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8),
        optax.scale_by_schedule(lambda count: decay_factor ** (count // period)),
        optax.scale(-lr))


def pixel_cross_entropy(logits, labels, class_weights=None):
    """``F.cross_entropy(out, label, reduction='mean')`` over every pixel. logits NHWC, labels [B,H,W].
    ``class_weights`` [n_class]: ``F.cross_entropy(..., weight=w)``, the weighted mean."""
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    if class_weights is None:
        return ce.mean()
    w = jnp.asarray(class_weights, ce.dtype)[labels]
    return (w * ce).sum() / w.sum()


def balanced_class_weights(labels, n_class: int, power: float = 0.5) -> np.ndarray:
    """(pixel frequency)^-power per class, mean 1 over the pixels: small parts (eyes, nose, mouth: ~1 %
    of a face picture each) weigh more; power 0.5 keeps a handful of pixels from dominating, 1 makes
    every class weigh the same in total. Absent classes: 0."""
    counts = np.bincount(np.asarray(labels).ravel(), minlength=n_class).astype(np.float64)
    w = np.where(counts > 0, np.maximum(counts, 1.0) ** -float(power), 0.0)
    return (w / ((w * counts).sum() / counts.sum())).astype(np.float32)


def train_segmenter(gen: sg.LoadedGenerator, z, labels, n_class: int, size: str = "S", epochs: int = 100,
                    truncation: float = 0.7, key=None, lr: float = 1e-3, weight_decay: float = 1e-3, *,
                    truncation_latent=None, batch_size: int = 1, decay_every: int = 50,
                    decay_factor: float = 0.1, parts: Optional[Sequence[str]] = None,
                    callback: Optional[Callable[[int, float], None]] = None, progress: bool = False,
                    features: Optional[Sequence[np.ndarray]] = None, class_balance: float = 0.0,
                    flip: bool = False):
    """Train a FewShotCNN on the generator's features of a few labelled samples (paper Sec. 3.2).

    RepurposingGAN's recipe: features of ``G(z)`` (truncation ``truncation`` towards the checkpoint's
    ``latent_avg`` or ``truncation_latent``; fixed noise buffers, so the features are those of the
    images that were labelled), pixel-wise cross-entropy over every pixel, Adam(lr) with L2 weight
    decay, learning rate x ``decay_factor`` every ``decay_every`` epochs, ``epochs`` passes over the
    samples in random order, ``batch_size`` samples per step (1 in the original), PyTorch default init.

    z: [N, style_dim]; labels: int [N, H, W] in [0, n_class). ``features``: the generator features of
    the labelled samples when they do not come from z (e.g. an inverted W+; z is then ignored and may be
    None). ``callback(epoch, mean_loss)`` after every
    epoch (1-based). Two additions to the released recipe, off by default: ``class_balance`` > 0, the
    cross-entropy weighted by :func:`balanced_class_weights` of that power; ``flip``, every sample also seen mirrored
    left-right (features and labels), a second pose of each labelled face. Returns ``(config, params)`` with config ``{"size", "in_ch", "n_class", "parts"?,
    "training": {...}}`` and numpy params.
    """
    labels = np.asarray(labels)
    n = n_labelled = len(labels)
    H = W = gen.config.size
    if labels.shape != (n, H, W):
        raise ValueError(f"labels must be [N={n}, {H}, {W}] for {n} latents of a {H}x{W} generator, "
                         f"got shape {labels.shape}")
    if labels.min() < 0 or labels.max() >= n_class:
        raise ValueError(f"label values must lie in [0, {n_class}), found {labels.min()}..{labels.max()}")
    if parts is not None and len(parts) != n_class - 1:
        raise ValueError(f"{len(parts)} part names for {n_class} classes (expected n_class - 1)")
    key = jax.random.PRNGKey(0) if key is None else key
    k_avg, k_init, k_order = jax.random.split(key, 3)
    if features is not None:
        feats = [np.asarray(f, np.float32) for f in features]
        if any(len(f) != n for f in feats):
            raise ValueError(f"features must hold {n} samples per layer, got {[len(f) for f in feats]}")
    else:
        z = np.asarray(z, np.float32)
        if len(z) != n:
            raise ValueError(f"{len(z)} latents for {n} label maps")
        w_avg = None
        if truncation < 1:
            w_avg = truncation_latent if truncation_latent is not None else generation.truncation_mean(gen, k_avg)
        _, feats = generation.generate(gen, z, truncation, w_avg)
    in_ch = sum(f.shape[-1] for f in feats)
    if flip:
        feats = [np.concatenate([f, np.asarray(f)[:, :, ::-1]]) for f in feats]
        labels = np.concatenate([labels, labels[:, :, ::-1]])
        n = len(labels)
    weights = jnp.asarray(balanced_class_weights(labels, n_class, class_balance)) if class_balance > 0 else None
    params = seg_model.init_params(k_init, in_ch, n_class, size)
    module = seg_model.FewShotCNN(n_class, size)
    bs = max(1, min(int(batch_size), n))
    steps_per_epoch = math.ceil(n / bs)
    tx = make_optimizer(lr, weight_decay, steps_per_epoch, decay_every, decay_factor)
    opt_state = jax.jit(tx.init)(params)
    feats = [jnp.asarray(f) for f in feats]
    labels = jnp.asarray(labels, jnp.int32)

    @jax.jit
    def step(params, opt_state, feats, labels, idx):
        def loss_fn(p):
            return pixel_cross_entropy(module.apply({"params": p}, [f[idx] for f in feats], (H, W)),
                                       labels[idx], weights)
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    from tqdm import tqdm
    bar = tqdm(range(1, epochs + 1), desc="segmenter", unit="epoch", disable=not progress)
    loss_value = float("nan")
    rng = np.random.default_rng(np.asarray(jax.random.key_data(k_order)).tolist())
    for epoch in bar:
        order = rng.permutation(n)
        losses = []
        for start in range(0, n, bs):
            idx = np.asarray(order[start:start + bs], np.int32)
            params, opt_state, loss = step(params, opt_state, feats, labels, idx)
            losses.append(loss)
        loss_value = float(np.mean(jax.device_get(losses)))
        bar.set_postfix(loss=f"{loss_value:.4f}")
        if callback is not None:
            callback(epoch, loss_value)
    config = {"size": size, "in_ch": int(in_ch), "n_class": int(n_class),
              "training": {"epochs": int(epochs), "n_samples": int(n_labelled),
                           "class_balance": float(class_balance), "flip": bool(flip), "truncation": float(truncation),
                           "lr": float(lr), "weight_decay": float(weight_decay), "batch_size": bs,
                           "final_loss": loss_value, "generator_size": int(gen.config.size)}}
    if parts is not None:
        config["parts"] = list(parts)
    return config, jax.tree_util.tree_map(np.asarray, jax.device_get(params))


def iou_per_class(predicted, truth, n_class: int) -> np.ndarray:
    """Intersection over union of each class, pooled over all images: [n_class] (NaN for a class that
    appears in neither)."""
    predicted, truth = np.asarray(predicted).ravel(), np.asarray(truth).ravel()
    out = np.full(n_class, np.nan)
    for c in range(n_class):
        p, t = predicted == c, truth == c
        union = np.count_nonzero(p | t)
        if union:
            out[c] = np.count_nonzero(p & t) / union
    return out


def predict(seg: Segmenter, features, image_size: int, batch_size: int = 32) -> np.ndarray:
    """Class map [N, H, W] (argmax of the logits) from generator features (list of [N, h, w, C])."""
    fn = jax.jit(lambda f: jnp.argmax(seg.logits(f, (image_size, image_size)), axis=-1))
    features = [np.asarray(f) for f in features]
    return ops.map_batches(lambda idx: fn([jnp.asarray(f[idx]) for f in features]),
                           np.arange(len(features[0])), batch_size)
