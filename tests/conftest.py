import os
import sys

# Tests run on CPU; 4 host devices let the sharding tests run on one machine.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()

sys.path.insert(0, os.path.dirname(__file__))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """A short DDS run of configs/demo.py (3 seeds, 4 iterations), shared by the CLI and evaluation tests."""
    from dds_jax.dds import pipeline
    from demo_utils import demo_config
    return pipeline.run_dds(demo_config(tmp_path_factory.mktemp("demo_run")))
