"""Quality measures of a dual-domain generator pair (issue 13): is the adapted generator diverse, and do
its images correspond to the source's images of the same latent?

* ``diversity``: the per-pixel standard deviation across images (pixels in [0, 1]), averaged over pixels
  and channels. A collapsed generator draws nearly the same image for every seed and scores low; the
  reference is the same measure on rendered faces of the domain.
* ``retrieval``: edge/line correspondence. For a group of ``k`` photo/sketch pairs, each photo's edge
  map (gradient magnitude of its grey levels) is correlated (Pearson) with every sketch's line darkness
  (1 - grey); the photo "finds" its sketch when its own is the best match. Rendered pairs of the same
  face (``dds_jax.render``) score k of k; chance is 1 of k.
* ``truth_retrieval``: the same against the renderer's true sketches of inverted rendered photos.
"""
import numpy as np

from dds_jax import files


def to_unit(images) -> np.ndarray:
    """uint8 [0, 255] or float [-1, 1] NHWC -> float64 in [0, 1]."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float64) / 255.0
    return np.clip((images.astype(np.float64) + 1.0) / 2.0, 0.0, 1.0)


def diversity(images) -> float:
    """Mean over pixels and channels of the std-dev across the images."""
    return float(to_unit(images).std(axis=0).mean())


def _grey(images) -> np.ndarray:
    return to_unit(images)[..., :3].mean(axis=-1)


def grey_edges(grey, xp=np):
    """[N, H, W] grey levels -> gradient magnitude (central differences, edge padding). ``xp``: numpy
    here, ``jax.numpy`` in the adaptation's edge/line loss (``gan.losses.edge_line_loss``)."""
    g = xp.pad(grey, ((0, 0), (1, 1), (1, 1)), mode="edge")
    gx = g[:, 1:-1, 2:] - g[:, 1:-1, :-2]
    gy = g[:, 2:, 1:-1] - g[:, :-2, 1:-1]
    return xp.sqrt(gx ** 2 + gy ** 2)


def edge_map(images) -> np.ndarray:
    """[N, H, W] gradient magnitude (central differences) of the grey levels."""
    return grey_edges(_grey(images))


def line_map(images) -> np.ndarray:
    """[N, H, W] line darkness 1 - grey of a sketch."""
    return 1.0 - _grey(images)


def standardise(maps, xp=np):
    """[N, ...] -> [N, D] flattened, zero mean, unit norm (rows' dot products are Pearson correlations)."""
    f = maps.reshape(maps.shape[0], -1)
    f = f - f.mean(axis=1, keepdims=True)
    return f / xp.maximum(xp.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def correspondence_matrix(photos, sketches) -> np.ndarray:
    """[N, N] Pearson correlation of photo i's edges with sketch j's line darkness."""
    return standardise(edge_map(photos)) @ standardise(line_map(sketches)).T


def retrieval(photos, sketches, group: int = 8) -> dict:
    """In consecutive groups of ``group`` pairs: how often each photo's own sketch is its best match."""
    n = (len(photos) // group) * group
    if n == 0:
        raise ValueError(f"retrieval needs at least {group} pairs, got {len(photos)}")
    hits = 0
    for s in range(0, n, group):
        c = correspondence_matrix(photos[s:s + group], sketches[s:s + group])
        hits += int(np.sum(np.argmax(c, axis=1) == np.arange(group)))
    return {"hits": hits, "n": n, "accuracy": round(hits / n, 4), "group": group}


def truth_retrieval(drawn, true_sketches, group: int = 8) -> dict:
    """Correspondence against the renderer's truth: ``drawn[i]`` is the adapted generator's image of the
    latent of a rendered photo (its W+ inversion into the photo generator), ``true_sketches[i]`` the
    renderer's line drawing of the same face. Per group, how often a drawing's line darkness correlates
    best with its own true sketch. Independent of the photo generator's edges, which the adaptation's
    edge/line loss looks at."""
    n = (len(drawn) // group) * group
    if n == 0:
        raise ValueError(f"truth_retrieval needs at least {group} images, got {len(drawn)}")
    per_group = []
    for s in range(0, n, group):
        c = standardise(line_map(drawn[s:s + group])) @ standardise(line_map(true_sketches[s:s + group])).T
        per_group.append(int(np.sum(np.argmax(c, axis=1) == np.arange(group))))
    hits = sum(per_group)
    own = np.sum(standardise(line_map(drawn[:n])) * standardise(line_map(true_sketches[:n])), axis=1)
    return {"hits": hits, "n": n, "accuracy": round(hits / n, 4), "group": group, "hits_per_group": per_group,
            "own_correlation": round(float(own.mean()), 4)}


# Issue 13's "Done when" for a dual-domain pair (over 64 seeds).
DIVERSITY_GOAL = 0.8      # adapted-domain diversity >= this x the rendered images' of that domain
RETRIEVAL_GOAL = 0.9      # a photo finds its own sketch among 8 at least this often


def unmet_goals(report: dict) -> list:
    """The goals a ``pair_report`` misses, one line each; empty for a diverse, corresponding pair."""
    div, hits = report["diversity"], report["retrieval"]["pair"]
    unmet = []
    if div["sketch"] < DIVERSITY_GOAL * div["rendered_sketch"]:
        unmet.append(f"sketch diversity {div['sketch']} < {DIVERSITY_GOAL} x rendered {div['rendered_sketch']}")
    if hits["accuracy"] < RETRIEVAL_GOAL:
        unmet.append(f"retrieval {hits['hits']}/{hits['n']} < {RETRIEVAL_GOAL:.0%}")
    return unmet


def sample(gen, seeds) -> np.ndarray:
    """uint8 images of ``gen`` (a LoadedGenerator, its fixed noise) for the seeds' z's, 64 per compiled
    call."""
    from dds_jax import generation
    z = files.z_from_seeds(seeds, gen.config.style_dim)
    return files.to_uint8(generation.generate(gen, z, batch_size=64, features=False))


def pair_report(photo_gen, sketch_gen, seeds=range(64), reference_seed: int = 30, group: int = 8) -> dict:
    """Diversity of both generators and of rendered faces, and the retrieval of the pair and of rendered
    pairs, over ``seeds`` (rendered references: ``render_faces(reference_seed, len(seeds))``)."""
    from dds_jax import render
    seeds = list(seeds)
    photos, sketches = sample(photo_gen, seeds), sample(sketch_gen, seeds)
    size = photo_gen.config.size
    r_photo, _ = render.render_faces(reference_seed, len(seeds), size, "photo")
    r_sketch, _ = render.render_faces(reference_seed, len(seeds), size, "sketch")
    return {"n_seeds": len(seeds),
            "diversity": {"photo": round(diversity(photos), 4), "sketch": round(diversity(sketches), 4),
                          "rendered_photo": round(diversity(r_photo), 4),
                          "rendered_sketch": round(diversity(r_sketch), 4)},
            "retrieval": {"pair": retrieval(photos, sketches, group),
                          "rendered": retrieval(r_photo, r_sketch, group)},
            "metric": "per-pixel std across seeds (pixels in [0, 1]); retrieval: Pearson correlation of "
                      "photo edges (grey gradient magnitude) with sketch line darkness, own sketch best "
                      f"among {group}"}
