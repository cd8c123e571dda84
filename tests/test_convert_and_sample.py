"""The stylegan2 converter (real ``.pt`` files, CLI, strict errors) and the sampling CLI end to end."""
import argparse
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dds_jax import checkpoint
from dds_jax.conversion import ConversionError, convert
from dds_jax.models import stylegan2 as sg
from fixture_utils import (fixture_dirs, fixture_params, load_data, load_state_dict, max_abs_err,
                           nchw_to_nhwc)

pytestmark = pytest.mark.optimized     # runs faster compiled with the full XLA pipeline (conftest.py)

REPO = pathlib.Path(__file__).resolve().parents[1]
IMAGE_TOL = 1e-3
PT_FIXTURES = [p for p in fixture_params("stylegan2_")
               if p.values[0] is None or (p.values[0] / "generator.pt").is_file()]
if not any(p.values[0] is not None for p in PT_FIXTURES):
    PT_FIXTURES = [pytest.param(None, marks=pytest.mark.skip(reason="no stylegan2_* fixture with generator.pt"))]


def _run(args, **kw):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable] + args, cwd=REPO, env=env, capture_output=True, text=True, **kw)


def _image_key(data):
    return "image" if "image" in data else "image_a"


@pytest.mark.parametrize("folder", PT_FIXTURES)
def test_real_pt_equals_manifest_weights(folder):
    torch_io = pytest.importorskip("dds_jax.conversion.torch_io")
    pytest.importorskip("torch")
    obj = torch_io.load_pt(folder / "generator.pt")
    cfg_pt, var_pt = convert("stylegan2", obj, source="generator.pt")
    cfg_m, var_m = convert("stylegan2", load_state_dict(folder / "manifest.json"), source="manifest")
    assert cfg_pt == cfg_m
    flat_pt = dict(_flatten(var_pt))
    flat_m = dict(_flatten(var_m))
    assert set(flat_pt) - {"latent_avg"} == set(flat_m)
    for k, v in flat_m.items():
        np.testing.assert_array_equal(flat_pt[k], v, err_msg=k)
    data = load_data(folder)
    if "latent_avg" in data:
        np.testing.assert_allclose(var_pt["latent_avg"], data["latent_avg"], rtol=0, atol=0)


@pytest.mark.parametrize("folder", PT_FIXTURES)
def test_converter_cli_then_sample_cli(folder, tmp_path, program):
    pytest.importorskip("torch")
    data = load_data(folder)
    out = tmp_path / "gen"
    r = _run(["convert/torch_to_flax.py", "--kind=stylegan2", f"--src={folder / 'generator.pt'}", f"--out={out}"])
    assert r.returncode == 0, r.stderr
    assert (out / "model.json").is_file()
    gen = sg.load_generator(out)
    img, _ = jax.jit(gen.module.apply)(gen.variables, jnp.asarray(data["z"]))     # one program, not op by op
    assert max_abs_err(img, nchw_to_nhwc(data[_image_key(data)])) <= IMAGE_TOL
    # converting again into the same directory needs --overwrite
    r = _run(["convert/torch_to_flax.py", "--kind=stylegan2", f"--src={folder / 'generator.pt'}", f"--out={out}"])
    assert r.returncode != 0 and "overwrite" in r.stderr

    # sample CLI with the fixture's own z's: images.npy must equal the PyTorch images
    np.save(tmp_path / "z.npy", data["z"])
    samples = tmp_path / "samples"
    r = program("dds_jax.cli.sample", f"--ckpt={out}", f"--latents={tmp_path / 'z.npy'}", "--save_npy",
              f"--out={samples}")
    assert r.returncode == 0, r.stderr
    images = np.load(samples / "images.npy")
    assert images.dtype == np.float32
    assert max_abs_err(images, nchw_to_nhwc(data[_image_key(data)])) <= IMAGE_TOL
    assert sorted(p.name for p in samples.glob("latent_*.png")) == [f"latent_{i}.png" for i in range(len(data["z"]))]

    # truncated sampling from seeds uses the checkpoint's latent_avg
    r = program("dds_jax.cli.sample", f"--ckpt={out}", "--seeds=3-5,9", "--truncation=0.7", "--save_npy",
              f"--out={samples / 'seeds'}")
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (samples / "seeds").glob("seed_*.png"))
    assert names == ["seed_3.png", "seed_4.png", "seed_5.png", "seed_9.png"]
    assert (samples / "seeds" / "grid.png").is_file()
    from PIL import Image
    size = gen.config.size
    assert Image.open(samples / "seeds" / "seed_3.png").size == (size, size)
    if "image_trunc" in data and "latent_avg" in data:
        np.save(tmp_path / "z.npy", data["z"])
        r = program("dds_jax.cli.sample", f"--ckpt={out}", f"--latents={tmp_path / 'z.npy'}",
                  "--truncation=0.7", "--save_npy", f"--out={samples / 'trunc'}")
        assert r.returncode == 0, r.stderr
        assert max_abs_err(np.load(samples / "trunc" / "images.npy"), nchw_to_nhwc(data["image_trunc"])) <= IMAGE_TOL


def test_sample_cli_help_and_errors(tmp_path, program):
    r = program("dds_jax.cli.sample", "--help")  # absl prints the flags (and exits with 1)
    assert "--seeds" in r.stdout and "--truncation" in r.stdout and "--latents" in r.stdout
    r = program("dds_jax.cli.sample", f"--ckpt={tmp_path}", f"--out={tmp_path / 'o'}")
    assert r.returncode != 0 and "model.json" in r.stderr


# ------------------------------------------------------------------------------------------------
# Layouts and strict errors (tiny state_dicts built from a fixture manifest)
# ------------------------------------------------------------------------------------------------
def _tiny_state_dict():
    dirs = fixture_dirs("stylegan2_")
    if not dirs:
        pytest.skip("no stylegan2_* fixture")
    smallest = min(dirs, key=lambda d: (d / "manifest.json").stat().st_size)
    return load_state_dict(smallest / "manifest.json")


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _flatten(v, f"{prefix}{k}/")
    else:
        yield prefix.rstrip("/"), np.asarray(tree)


def test_layouts_are_equivalent():
    sd = _tiny_state_dict()
    _, bare = convert("stylegan2", sd)
    _, ema = convert("stylegan2", {"g_ema": sd, "latent_avg": np.zeros(sd["style.1.weight"].shape[1])})
    _, dp = convert("stylegan2", {"g_ema": {f"module.{k}": v for k, v in sd.items()}})
    other = {k: v if k.endswith("kernel") else v * 2 for k, v in sd.items()}
    _, g = convert("stylegan2", {"g": other, "g_ema": sd, "d": {}}, generator_key="g")
    for name, tree in [("g_ema", ema), ("module.", dp)]:
        for (k1, a), (k2, b) in zip(_flatten(bare["params"]), _flatten(tree["params"])):
            assert k1 == k2
            np.testing.assert_array_equal(a, b, err_msg=f"{name}: {k1}")
    a = dict(_flatten(g["params"]))["mapping/fc0/weight"]
    b = dict(_flatten(bare["params"]))["mapping/fc0/weight"]
    np.testing.assert_array_equal(a, 2 * b)


def test_missing_key_is_named():
    sd = _tiny_state_dict()
    del sd["convs.1.noise.weight"]
    with pytest.raises(ConversionError, match=r"convs\.1\.noise\.weight"):
        convert("stylegan2", sd)


def test_wrong_shape_names_key_and_both_shapes():
    sd = _tiny_state_dict()
    shape = sd["to_rgb1.bias"].shape
    sd["to_rgb1.bias"] = np.zeros((1, 4, 1, 1), np.float32)
    with pytest.raises(ConversionError, match=r"to_rgb1\.bias.*\(1, 4, 1, 1\).*" + re_shape(shape)):
        convert("stylegan2", sd)


def re_shape(shape):
    return r"\(" + r", ".join(str(s) for s in shape) + r"\)"


def test_unexpected_key_is_rejected():
    sd = _tiny_state_dict()
    sd["convs.0.extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ConversionError, match=r"unexpected keys.*convs\.0\.extra\.weight"):
        convert("stylegan2", sd)


def test_not_a_generator():
    with pytest.raises(ConversionError, match="not a StyleGAN2 generator"):
        convert("stylegan2", {"features.0.weight": np.zeros((4, 3, 3, 3), np.float32)})
    sd = _tiny_state_dict()
    for key in ("conv1.conv.weight", "style.1.weight"):  # one of the two marker keys: named, no contradiction
        with pytest.raises(ConversionError, match=f"missing key '{key}'"):
            convert("stylegan2", {k: v for k, v in sd.items() if k != key})
    with pytest.raises(ConversionError, match="no 'g_ema'"):
        convert("stylegan2", {"g": {}, "d": {}})


def test_training_checkpoint_with_args_loads_weights_only(tmp_path):
    torch = pytest.importorskip("torch")
    from dds_jax.conversion import torch_io
    sd = _tiny_state_dict()
    ckpt = {"g_ema": {k: torch.from_numpy(v) for k, v in sd.items()},
            "args": argparse.Namespace(size=16, lr=0.002)}
    torch.save(ckpt, tmp_path / "train.pt")
    obj = torch_io.load_pt(tmp_path / "train.pt")
    cfg, _ = convert("stylegan2", obj)
    assert cfg["style_dim"] == sd["style.1.weight"].shape[1]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickled_code_is_not_executed(tmp_path):
    torch = pytest.importorskip("torch")
    from dds_jax.conversion import torch_io
    torch.save({"g_ema": {}, "payload": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="never runs pickled code") as e:
        torch_io.load_pt(tmp_path / "evil.pt")
    assert "weights_only" not in str(e.value) and str(tmp_path / "evil.pt") in str(e.value)


# ------------------------------------------------------------------------------------------------
# Bad input through the real CLIs: one line naming the file and the remedy, exit 2 (Ctrl-C: 130)
# ------------------------------------------------------------------------------------------------
def _run_all(commands):
    """Run CLI commands concurrently (each start-up imports jax); [(returncode, stdout, stderr)]."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    procs = [subprocess.Popen([sys.executable] + c, cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for c in commands]
    return [(p.returncode, *p.communicate(timeout=300)) if p.wait(timeout=300) is not None else None
            for p in procs]


def _one_error_line(stderr):
    lines = [l for l in stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


class _Marker:
    """A pickled object whose loading would create a file (it must never be loaded)."""
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_converter_cli_bad_files_give_one_line(tmp_path):
    """Item 10/11: a generator missing conv1.conv.weight, a text file, a truncated torch.save archive
    and a file pickling an object: exit 2, exactly one ``error:`` line naming the file, never torch's
    advice to set weights_only=False, and no pickled code run."""
    torch = pytest.importorskip("torch")
    sd = _tiny_state_dict()
    np.savez(tmp_path / "no_conv1.npz", **{k: v for k, v in sd.items() if k != "conv1.conv.weight"})
    (tmp_path / "notes.pt").write_text("hello, not a checkpoint\n")
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[:len(data) // 2])
    torch.save({"g_ema": {}, "payload": _Marker(tmp_path / "pwned")}, tmp_path / "pickled.pt")
    cases = {"no_conv1.npz": "missing key 'conv1.conv.weight'", "notes.pt": "not a PyTorch checkpoint",
             "truncated.pt": "truncated", "pickled.pt": "never runs pickled code"}
    runs = _run_all([["convert/torch_to_flax.py", "--kind=stylegan2", f"--src={tmp_path / name}",
                      f"--out={tmp_path / ('out_' + name)}"] for name in cases])
    for (name, want), (rc, _, err) in zip(cases.items(), runs):
        line = _one_error_line(err)
        assert rc == 2, (name, err)
        assert str(tmp_path / name) in line and want in line, line
        assert "weights_only" not in line and "not a StyleGAN2" not in line, line
        assert not (tmp_path / f"out_{name}" / "model.json").exists()
    assert not (tmp_path / "pwned").exists()


def test_converter_cli_ctrl_c_is_one_line(tmp_path):
    """Item 11: Ctrl-C while the converter reads --src (a FIFO it blocks on): one line, exit 130."""
    import signal
    fifo = tmp_path / "slow.npz"
    os.mkfifo(fifo)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.Popen([sys.executable, "convert/torch_to_flax.py", "--kind=stylegan2", f"--src={fifo}",
                             f"--out={tmp_path / 'out'}"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            # a shell's background job ignores SIGINT; the child must get Python's handler
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    fd = None
    for _ in range(1200):  # until the converter has opened the FIFO for reading (<= 120 s)
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:
            if proc.poll() is not None:
                break
            import time
            time.sleep(0.1)
    try:
        assert fd is not None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if fd is not None:
            os.close(fd)
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert proc.returncode == 130 and len(lines) == 1 and "interrupted" in lines[0], err
    assert not (tmp_path / "out" / "model.json").exists()


def _saved_tiny_model(path):
    cfg, variables = convert("stylegan2", _tiny_state_dict())
    return checkpoint.save_model(path, "stylegan2", cfg, variables)


def test_corrupt_model_files_are_named_by_the_cli(tmp_path, program):
    """Item 9: a broken model.json and a truncated orbax _METADATA, through ``python -m dds_jax.cli.sample``:
    exit 2 and one line naming the file and the remedy (re-create / --overwrite)."""
    good = _saved_tiny_model(tmp_path / "good")
    import shutil
    bad_json = pathlib.Path(shutil.copytree(good, tmp_path / "bad_json"))
    (bad_json / "model.json").write_text('{"kind": "stylegan2",\n')
    bad_meta = pathlib.Path(shutil.copytree(good, tmp_path / "bad_meta"))
    meta = bad_meta / "params" / "_METADATA"
    meta.write_bytes(meta.read_bytes()[:40])
    runs = [program("dds_jax.cli.sample", f"--ckpt={d}", f"--out={tmp_path / ('samples_' + d.name)}", "--seeds=0")
            for d in (bad_json, bad_meta)]
    for broken, (rc, _, err) in zip((bad_json / "model.json", meta), ((r.returncode, r.stdout, r.stderr) for r in runs)):
        line = err.strip().splitlines()[-1]
        assert rc == 2 and line.startswith("error: "), err
        assert str(broken) in line and "--overwrite" in line, line
        assert sum(l.startswith("error") for l in err.splitlines()) == 1, err


def test_interrupted_save_does_not_block_the_next(tmp_path):
    """A directory holding params/ but no model.json (a write that was interrupted) is not a model:
    load names model.json; saving again needs no --overwrite."""
    out = tmp_path / "m"
    (out / "params").mkdir(parents=True)
    (out / "params" / "partial").write_text("x")
    with pytest.raises(FileNotFoundError, match="model.json"):
        checkpoint.load_model(out)
    _saved_tiny_model(out)
    assert checkpoint.load_model(out).kind == "stylegan2"
    assert not (out / "params.tmp").exists()


def test_checkpoint_round_trip(tmp_path):
    sd = _tiny_state_dict()
    cfg, variables = convert("stylegan2", sd)
    checkpoint.save_model(tmp_path / "m", "stylegan2", cfg, variables)
    with pytest.raises(FileExistsError):
        checkpoint.save_model(tmp_path / "m", "stylegan2", cfg, variables)
    model = checkpoint.load_model(tmp_path / "m")
    assert model.kind == "stylegan2" and model.config == cfg
    saved, restored = dict(_flatten(variables)), dict(_flatten(model.params))
    assert set(saved) == set(restored)
    for k, v in saved.items():
        np.testing.assert_array_equal(restored[k], v, err_msg=k)
    with pytest.raises(ValueError, match="expected 'segmenter'"):
        checkpoint.load_model(tmp_path / "m", expect_kind="segmenter")
