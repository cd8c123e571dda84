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


@pytest.fixture(scope="module", autouse=True)
def _release_compiled_functions():
    """Drop JAX's compiled executables after every test module: one pytest process compiles thousands of
    functions over the suite, and without this their memory only grows (it also keeps modules independent)."""
    yield
    import gc
    import jax
    jax.clear_caches()
    gc.collect()
