"""What the studio does, without the web layer: samples to label, labels, one-shot training, masks,
DDS runs and the run directories to browse. Every step calls the package's own functions
(:mod:`dds_jax.cli.segment`, :mod:`dds_jax.dds.pipeline`, :mod:`dds_jax.dds.run_io`), so a studio result is the
same as the command-line one.

  WORKDIR/samples/seed_<N>.png + latents.npz   source samples to label (``segment sample``)
  WORKDIR/labels/seed_<N>.png                   painted or uploaded labels (one colour per part)
  WORKDIR/segmenter/                            the segmenter trained here (``segment train``)
  WORKDIR/masks/{source,target}/                its masks on both domains (``segment predict``)
  WORKDIR/runs/<time>/                          DDS run directories (``dds_jax.main``)
"""
import io
import pathlib
import shutil
import threading
import time
import zipfile
from typing import Dict, List, Optional, Sequence

import ml_collections
import numpy as np

from dds_jax import checkpoint, files
from dds_jax.dds import run_io
from dds_jax.segmentation import labels as label_io
from dds_jax.segmentation import workflow as segment
from dds_jax.dds import config as config_lib
from dds_jax.studio.uploads import UploadError

LABEL_TRUNCATION = 0.7          # the samples to label and the mask previews (segment sample/predict)
REPORTS = ("table1.md", "benchmark.md")
RUN_MARKERS = ("run.json", "table1.md", "table1.json", "benchmark.md", "benchmark.json")
MAX_SEEDS = 256


def parse_seed_list(text, what: str = "seeds") -> List[int]:
    try:
        seeds = files.parse_seeds(text)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None
    if len(seeds) > MAX_SEEDS:
        raise ValueError(f"{what}: {len(seeds)} seeds; the studio takes at most {MAX_SEEDS} at once")
    return seeds


def part_colors(parts: str) -> Dict[str, str]:
    """{painted name: colour} for a parts spec (``"hair"``, ``"eyes,nose+mouth"``): the i-th name gets
    ``label_io.PALETTE[i]`` (the page paints with the same colours)."""
    names = [n for c in label_io.parse_class_spec(parts) for n in c]
    if len(names) > len(label_io.PALETTE):
        raise ValueError(f"{len(names)} parts; the studio paints at most {len(label_io.PALETTE)}")
    return {n: label_io.PALETTE[i] for i, n in enumerate(names)}


def _colors_arg(colors: Dict[str, str]) -> str:
    return ",".join(f"{n}={c}" for n, c in colors.items())


def choose_schedule(iterations: int, chunk: int) -> Dict[str, int]:
    """chunk (≤ iterations) and a snapshot interval that divides it (about 20 GIF frames)."""
    chunk = max(1, min(int(chunk), int(iterations)))
    target = max(1, int(iterations) // 20)
    snap = max(d for d in range(1, chunk + 1) if chunk % d == 0 and d <= target)
    return {"chunk": chunk, "snapshot_every": snap}


class Studio:
    """The studio's state for one config and one work directory."""

    def __init__(self, config: ml_collections.ConfigDict, workdir, browse: Sequence = ()):
        config_lib.validate(config)
        from dds_jax.models import stylegan2 as sg
        self.config = config
        self.workdir = pathlib.Path(workdir).resolve()
        self.samples_dir = self.workdir / "samples"
        self.labels_dir = self.workdir / "labels"
        self.segmenter_dir = self.workdir / "segmenter"
        self.masks_dir = self.workdir / "masks"
        self.runs_dir = self.workdir / "runs"
        for name in ("source_ckpt", "target_ckpt", "segmenter_ckpt"):
            checkpoint.resolve_model_path(config[name])       # a bad path fails at start, not mid-job
        for d in (self.samples_dir, self.labels_dir, self.runs_dir):
            d.mkdir(parents=True, exist_ok=True)
        gen = sg.load_generator(checkpoint.resolve_model_path(config.source_ckpt))
        self.image_size = int(gen.config.size)
        roots = [self.runs_dir, pathlib.Path(config.output_dir).resolve().parent] + [pathlib.Path(b) for b in browse]
        self.roots: List[pathlib.Path] = []
        for r in roots:
            r = r.expanduser().resolve()
            if r not in self.roots:
                self.roots.append(r)
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------------------------
    # Files the page may see
    # ----------------------------------------------------------------------------------------------
    def file_url(self, path) -> str:
        path = pathlib.Path(path).resolve()
        v = int(path.stat().st_mtime_ns // 1000) if path.exists() else 0
        for i, root in enumerate([self.workdir] + self.roots):
            if path.is_relative_to(root):
                return f"/files/{i}/{path.relative_to(root).as_posix()}?v={v}"
        raise ValueError(f"{path} is outside the studio's folders")

    def resolve_file(self, root_index: int, rel: str) -> pathlib.Path:
        """A served file: inside the work directory or a browse root, never above it."""
        roots = [self.workdir] + self.roots
        if not 0 <= root_index < len(roots):
            raise FileNotFoundError(rel)
        root = roots[root_index]
        path = (root / rel).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise FileNotFoundError(rel)
        return path

    # ----------------------------------------------------------------------------------------------
    # Info
    # ----------------------------------------------------------------------------------------------
    def segmenter_path(self) -> str:
        """The segmenter in use: the one trained here, else the config's."""
        if (self.segmenter_dir / "model.json").is_file():
            return str(self.segmenter_dir)
        return str(self.config.segmenter_ckpt)

    def segmenter_parts(self) -> List[str]:
        from dds_jax.segmentation import oneshot as segmentation
        seg = segmentation.load_segmenter(checkpoint.resolve_model_path(self.segmenter_path()))
        return seg.parts

    def info(self) -> dict:
        dcfg = config_lib.dds_config(self.config).resolved()
        trained = (self.segmenter_dir / "model.json").is_file()
        parts = self.config.parts or ""
        if trained:
            parts = ",".join(self.segmenter_parts())
        return {"image_size": self.image_size, "palette": list(label_io.PALETTE),
                "source_ckpt": str(self.config.source_ckpt), "target_ckpt": str(self.config.target_ckpt),
                "segmenter": self.segmenter_path(), "segmenter_trained": trained,
                "parts": parts, "label_parts": self._label_parts_default(),
                "seeds": str(self.config.seeds), "iterations": int(dcfg.iterations),
                "batch_size": int(self.config.batch_size), "mode": dcfg.mode, "workdir": str(self.workdir),
                "roots": [str(r) for r in self.roots]}

    def _label_parts_default(self) -> str:
        parts = [p for p in str(self.config.parts or "").split(",") if p.strip() and not p.strip().isdigit()]
        return ",".join(parts) or "part"

    # ----------------------------------------------------------------------------------------------
    # 1. Samples to label
    # ----------------------------------------------------------------------------------------------
    def sample(self, seeds_text: str, job=None) -> dict:
        seeds = parse_seed_list(seeds_text)
        if job:
            job.report(0, 1, f"sampling {len(seeds)} source images")
        try:
            segment.run_sample(self.config.source_ckpt, self.samples_dir, ",".join(map(str, seeds)),
                               truncation=LABEL_TRUNCATION)
        except ValueError as e:
            if "holds samples of another generator" in str(e):
                shutil.rmtree(self.samples_dir)      # the studio's own cache of another config: redo it
                segment.run_sample(self.config.source_ckpt, self.samples_dir, ",".join(map(str, seeds)),
                                   truncation=LABEL_TRUNCATION)
            else:
                raise
        if job:
            job.report(1, 1)
        return {"samples": [{"seed": s, "url": self.file_url(self.samples_dir / f"seed_{s}.png")} for s in seeds]}

    def _sampled(self) -> List[int]:
        if not (self.samples_dir / segment.LATENTS_FILE).is_file():
            return []
        return segment.load_latents(self.samples_dir)["seeds"]

    # ----------------------------------------------------------------------------------------------
    # 2. Labels
    # ----------------------------------------------------------------------------------------------
    def save_label(self, seed, parts: str, rgba: np.ndarray, name: str = "label") -> dict:
        """Check a label (colours of ``parts``, at least one part pixel) and store it for ``seed``.
        Returns the class map for the painter."""
        try:
            seed = int(seed)
        except (TypeError, ValueError):
            raise UploadError(f"seed {seed!r} is not a number") from None
        if seed not in self._sampled():
            raise UploadError(f"seed {seed} has no sample to label: sample it first (step 1)")
        try:
            colors = part_colors(parts)
            table = label_io.color_table(label_io.parse_class_spec(parts), label_io.parse_colors(colors))
        except ValueError as e:
            raise UploadError(f"parts {parts!r}: {e}") from None
        with self._lock:
            tmp = self.labels_dir / f".upload_{seed}.png"
            files.save_png(tmp, np.asarray(rgba, np.uint8))
            try:
                classes = label_io.read_label(tmp, table, (self.image_size, self.image_size))
            except ValueError as e:
                tmp.unlink(missing_ok=True)
                raise UploadError(str(e).replace(str(tmp), name)) from None
            path = self.labels_dir / f"seed_{seed}.png"
            tmp.replace(path)
        return {"seed": seed, "url": self.file_url(path), "classes": classes.tolist(),
                "pixels": {"+".join(c): int((classes == i + 1).sum())
                           for i, c in enumerate(label_io.parse_class_spec(parts))}}

    def labelled_seeds(self) -> List[int]:
        sampled = set(self._sampled())
        return sorted(s for s in label_io.find_labels(self.labels_dir) if s in sampled) \
            if any(self.labels_dir.glob("seed_*.png")) else []

    # ----------------------------------------------------------------------------------------------
    # 3. One-shot training and masks on both domains
    # ----------------------------------------------------------------------------------------------
    def train(self, seeds: Sequence[int], parts: str, epochs: int, job=None) -> dict:
        epochs = int(epochs)
        if not 1 <= epochs <= 10000:
            raise ValueError(f"epochs: {epochs} is not in 1..10000")
        seeds = [int(s) for s in seeds] or self.labelled_seeds()
        if not seeds:
            raise ValueError("no label yet: paint or upload a label for a sample first (step 2)")
        colors = part_colors(parts)

        def callback(epoch, loss):
            if job:
                job.report(epoch, epochs, f"epoch {epoch}/{epochs}, loss {loss:.4f}")
        if job:
            job.report(0, epochs, "computing generator features")
        tmp = self.workdir / ".segmenter.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        config = segment.run_train(self.config.source_ckpt, self.samples_dir, self.labels_dir, parts, tmp,
                                   colors=_colors_arg(colors), seeds=seeds, epochs=epochs, overwrite=True,
                                   progress=False, callback=callback)
        with self._lock:                        # replace the previous segmenter only once training worked
            shutil.rmtree(self.segmenter_dir, ignore_errors=True)
            tmp.replace(self.segmenter_dir)
        return {"segmenter": str(self.segmenter_dir), "parts": config["parts"],
                "final_loss": config["training"]["final_loss"], "seeds": seeds}

    def masks(self, seeds_text: str, job=None) -> dict:
        seeds = parse_seed_list(seeds_text)
        seg = self.segmenter_path()
        out = {}
        for i, (domain, ckpt) in enumerate((("source", self.config.source_ckpt),
                                            ("target", self.config.target_ckpt))):
            if job:
                job.report(i, 2, f"masks of the {domain} domain")
            d = self.masks_dir / domain
            shutil.rmtree(d, ignore_errors=True)
            segment.run_predict(ckpt, seg, d, ",".join(map(str, seeds)), truncation=LABEL_TRUNCATION)
            out[domain] = [{"seed": s, "overlay": self.file_url(d / f"seed_{s}_overlay.png"),
                            "mask": self.file_url(d / f"seed_{s}_mask.png")} for s in seeds]
        if job:
            job.report(2, 2)
        return out

    # ----------------------------------------------------------------------------------------------
    # 4. DDS
    # ----------------------------------------------------------------------------------------------
    def dds_config(self, seeds_text: str, iterations: int, batch_size: int, parts: Optional[str],
                   output_dir) -> ml_collections.ConfigDict:
        seeds = parse_seed_list(seeds_text)
        iterations, batch_size = int(iterations), int(batch_size)
        if not 1 <= iterations <= 100000:
            raise ValueError(f"iterations: {iterations} is not in 1..100000")
        if not 1 <= batch_size <= 1024:
            raise ValueError(f"batch size: {batch_size} is not in 1..1024")
        c = ml_collections.ConfigDict(self.config.to_dict())
        c.seeds, c.num_seeds = ",".join(map(str, seeds)), 0
        c.iterations, c.batch_size = iterations, batch_size
        c.update(choose_schedule(iterations, self.config.chunk))
        c.segmenter_ckpt = self.segmenter_path()
        c.parts = self.config.parts if parts is None else parts
        c.output_dir, c.resume, c.gif = str(output_dir), False, True
        config_lib.validate(c)
        return c

    def new_run_dir(self) -> pathlib.Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path, k = self.runs_dir / stamp, 1
        while path.exists():
            k += 1
            path = self.runs_dir / f"{stamp}-{k}"
        return path

    def run_dds(self, c: ml_collections.ConfigDict, job=None) -> dict:
        from dds_jax.dds import pipeline

        class Progress:                          # the tqdm interface run_dds uses
            def __init__(self, total=0, **_):
                self.n, self.total = 0, total

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def update(self, n=1):
                self.n += n
                if job:
                    job.report(self.n, self.total, f"{self.n}/{self.total} seed-iterations")

            def set_postfix(self, **kw):
                if job and "loss" in kw:
                    job.report(self.n, self.total, f"{self.n}/{self.total} seed-iterations, loss {kw['loss']}")

        out = pipeline.run_dds(c, progress_bar=Progress)
        return {"run": self.run_id(out)}

    # ----------------------------------------------------------------------------------------------
    # 5. Browse
    # ----------------------------------------------------------------------------------------------
    def run_id(self, path) -> str:
        path = pathlib.Path(path).resolve()
        for i, root in enumerate(self.roots):
            if path == root or path.is_relative_to(root):
                rel = path.relative_to(root).as_posix()
                return f"{i}/{rel}" if rel != "." else f"{i}"
        raise ValueError(f"{path} is not under a browsed folder")

    def run_path(self, run_id: str) -> pathlib.Path:
        head, _, rel = str(run_id).partition("/")
        if not head.isdigit() or int(head) >= len(self.roots):
            raise FileNotFoundError(f"no run {run_id!r}")
        root = self.roots[int(head)]
        path = (root / rel).resolve()
        if not path.is_relative_to(root) or not path.is_dir():
            raise FileNotFoundError(f"no run {run_id!r}")
        return path

    def list_runs(self) -> List[dict]:
        """Folders (root and two levels below) holding a DDS run, a Table 1 or a benchmark report."""
        found = {}
        for root in self.roots:
            if not root.is_dir():
                continue
            candidates = [root] + [p for p in root.glob("*") if p.is_dir()] + [p for p in root.glob("*/*") if p.is_dir()]
            for d in candidates:
                marks = [m for m in RUN_MARKERS if (d / m).is_file()]
                if marks and d not in found:
                    found[d] = {"id": self.run_id(d), "name": str(d), "kinds": marks,
                                "mtime": max((d / m).stat().st_mtime for m in marks)}
        return sorted(found.values(), key=lambda r: -r["mtime"])

    def run_details(self, run_id: str) -> dict:
        d = self.run_path(run_id)
        out = {"id": run_id, "name": str(d), "reports": {}, "images": [], "directions": {}, "run": None}
        for name in REPORTS:
            if (d / name).is_file():
                out["reports"][name] = (d / name).read_text(errors="replace")[:200000]
        for p in sorted(d.glob("*.png")):
            out["images"].append({"name": p.name, "url": self.file_url(p)})
        if (d / "run.json").is_file():
            run = run_io.load_run(d)
            out["run"] = {k: run.get(k) for k in ("seeds", "failures", "timings", "final_losses")}
            out["run"]["iterations"] = run.get("config", {}).get("iterations")
            for direction in run_io.run_directions(run):
                rows = []
                for s in run_io.finished_seeds(d, direction):
                    sd = run_io.seed_dir(d, direction, s)
                    row = {"seed": s, "images": {n: self.file_url(sd / f"{n}.png") for n in run_io.IMAGE_NAMES}}
                    if (sd / "optimisation.gif").is_file():
                        row["gif"] = self.file_url(sd / "optimisation.gif")
                    rows.append(row)
                out["directions"][direction] = rows
        return out

    # ----------------------------------------------------------------------------------------------
    # 6. Downloads
    # ----------------------------------------------------------------------------------------------
    def zip_segmenter(self) -> bytes:
        path = checkpoint.resolve_model_path(self.segmenter_path())
        return zip_dir(path, "segmenter")

    def zip_run(self, run_id: str) -> bytes:
        d = self.run_path(run_id)
        return zip_dir(d, d.name, skip=("state",))


def zip_dir(path: pathlib.Path, top: str, skip: Sequence[str] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(path.rglob("*")):
            rel = p.relative_to(path)
            if p.is_file() and rel.parts[0] not in skip and not p.name.startswith("."):
                z.write(p, f"{top}/{rel.as_posix()}")
    return buf.getvalue()
