"""The demo config (configs/demo.py) shortened for tests, with the overrides a user would pass."""
import importlib.util
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo.py"
# the image size of the shipped demo pair (dds_jax/assets/demo), read from its photo generator's model.json
DEMO_SIZE = json.loads((ROOT / "dds_jax" / "assets" / "demo" / "photo" / "model.json").read_text())["config"]["size"]


def demo_config(output_dir, **overrides):
    spec = importlib.util.spec_from_file_location("demo_config", DEMO)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    c = mod.get_config()
    base = dict(seeds="0-2", iterations=4, chunk=2, snapshot_every=2, checkpoint_every=2, batch_size=2,
                output_dir=str(output_dir))
    for k, v in dict(base, **overrides).items():
        c[k] = v
    return c
