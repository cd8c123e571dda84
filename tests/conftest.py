import os
import sys

# Tests run on CPU; 4 host devices let the sharding tests run on one machine.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()

sys.path.insert(0, os.path.dirname(__file__))
