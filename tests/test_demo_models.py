"""The trained demo pair shipped in dds_jax/assets/demo (made by ``python -m dds_jax.demo_models``)."""
import json
import subprocess
import sys

import jax
import numpy as np

from dds_jax import checkpoint, demo_models, render, segmentation
from dds_jax.models import stylegan2 as sg
from dds_jax.pipeline import DEMO_DIR
from demo_utils import ROOT


def test_shipped_pair_and_segmenter_fit_together():
    photo = sg.load_generator(DEMO_DIR / "photo")
    sketch = sg.load_generator(DEMO_DIR / "sketch")
    assert photo.config == sketch.config == demo_models.DEMO_G
    seg = segmentation.load_segmenter(DEMO_DIR / "segmenter")
    segmentation.check_compatible(photo.config, seg)
    assert seg.parts == list(render.PARTS[1:])
    # Few-shot adaptation changed the weights but kept the architecture (and the zero noise inputs).
    assert not np.array_equal(photo.variables["params"]["synthesis"]["const"],
                              sketch.variables["params"]["synthesis"]["const"])
    for gen in (photo, sketch):
        assert all(not np.any(b) for b in jax.tree_util.tree_leaves(gen.variables["buffers"]))


def test_report_records_iou_and_training_times():
    report = json.loads((DEMO_DIR / "report.json").read_text())
    for domain in ("photo", "sketch"):
        iou = report["segmenter_iou"][domain]["iou"]
        assert sorted(iou) == sorted(render.PARTS)
        assert all(0.0 <= v <= 1.0 for v in iou.values())
    for stage in ("photo", "sketch"):
        assert report["training"][stage]["seconds"] > 0 and report["training"][stage]["steps"] > 0


def test_noise_free_copy(tmp_path):
    cfg = sg.GeneratorConfig(size=8, style_dim=4, n_mlp=1, channels=((4, 4), (8, 4)))
    variables = jax.device_get(sg.init_variables(cfg, jax.random.PRNGKey(0)))
    checkpoint.save_model(tmp_path / "g", "stylegan2", cfg.to_dict(), variables)
    out = demo_models.noise_free_copy(tmp_path / "g", tmp_path / "g0")
    copy = sg.load_generator(out)
    assert all(not np.any(b) for b in jax.tree_util.tree_leaves(copy.variables["buffers"]))
    np.testing.assert_array_equal(copy.variables["params"]["synthesis"]["const"],
                                  variables["params"]["synthesis"]["const"])


def test_cli_help():
    res = subprocess.run([sys.executable, "-m", "dds_jax.demo_models", "--help"], capture_output=True,
                         text=True, cwd=ROOT, timeout=300)
    assert "--base_steps" in res.stdout and "--adapt_steps" in res.stdout
