import os
import pathlib
import sys

# Tests run on CPU; 4 host devices let the sharding tests run on one machine.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()

# A persistent compilation cache for the whole run: the same program compiled by two tests, by a test
# and a program it starts (the variables are inherited), or by a later run is read from disk instead.
# JAX keys every entry by the program, the jax/XLA versions and the flags, so a stale entry is never used.
ROOT = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".pytest_cache" / "jax_compilation_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

# One Eigen thread per worker: two xdist workers on two cores, each with a thread per core, spin and
# preempt each other.
if "--xla_cpu_multi_thread_eigen" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_cpu_multi_thread_eigen=false"

# Most XLA optimisations off (jax_disable_most_optimizations: LLVM -O0, no expensive LLVM passes), except
# for tests marked `optimized` (a module's `pytestmark` or one test). Half of the suite's CPU time is
# compiling, and these programs compile 2-3x faster that way (test_gan.py's training step: 63 s -> 22 s;
# the file 226 -> 113 s of CPU) but run about 1.5x slower, so tests whose time goes into running long
# loops or 256x256 programs are marked (measured per file and test, BENCHMARKS.md). Same programs, float
# results within every test's tolerance. Programs a test starts inherit the setting through the environment.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
RUN_UNOPTIMIZED = os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"].strip().lower() not in ("0", "false", "no", "off")

sys.path.insert(0, os.path.dirname(__file__))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """A short DDS run of configs/demo.py (3 seeds, 4 iterations), shared by the CLI and evaluation tests
    (read-only). Made once per test run: pytest-xdist workers share it through their common temporary
    folder, the first one to need it runs it while the others wait on the lock."""
    import fcntl
    from dds_jax.dds import pipeline
    from demo_utils import demo_config
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent                   # .../pytest-N/, above each worker's popen-gwK
    out, done = root / "demo_run", root / "demo_run.done"
    with open(root / "demo_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.is_file():
            pipeline.run_dds(demo_config(out))
            done.touch()
    return out


@pytest.fixture
def program(capfd, monkeypatch):
    """Runs a program in this process as its command line in the repository would (see
    :func:`cli_utils.run_program`)."""
    from cli_utils import run_program
    monkeypatch.chdir(ROOT)
    return lambda target, *args, **kw: run_program(capfd, target, *args, **kw)


# Above this resident size a worker drops JAX's in-memory executables after a test module.
KEEP_COMPILED_BELOW_BYTES = 4 << 30


def _resident_bytes() -> int:
    """This process's resident memory now (Linux /proc; 0 elsewhere, where the caches are then kept)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


# Whether this worker has compiled unoptimised since JAX's in-memory executables were last dropped.
_unoptimized_since_clear = {"value": False}


def _compile_optimized(optimized: bool) -> None:
    """Compile with the full XLA pipeline or not from now on. Turning it on drops the in-memory
    executables if unoptimised ones may be among them: an executable is reused whatever the setting it
    was compiled with (an inversion compiled by test_invert.py would run unoptimised in
    test_own_images.py)."""
    import jax
    jax.config.update("jax_disable_most_optimizations", not optimized)
    if not optimized:
        _unoptimized_since_clear["value"] = True
    elif _unoptimized_since_clear["value"]:
        jax.clear_caches()
        _unoptimized_since_clear["value"] = False


def _marked_optimized(marks) -> bool:
    marks = marks if isinstance(marks, list) else [marks]
    return any(m.name == "optimized" for m in marks)


@pytest.fixture(scope="module", autouse=True)
def _xla_optimization_of_module(request):
    """The module's setting, here and in the programs its tests start: optimised when its `pytestmark`
    has `optimized` (and the run turned optimisations off). Module-scoped, so that module fixtures
    compile with it too."""
    if not RUN_UNOPTIMIZED:
        yield
        return
    optimized = _marked_optimized(getattr(request.module, "pytestmark", []))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "0" if optimized else "1")
        _compile_optimized(optimized)
        yield
    import jax
    jax.config.update("jax_disable_most_optimizations", True)     # the run's setting between modules


@pytest.fixture(autouse=True)
def _xla_optimization_of_test(request, _xla_optimization_of_module):
    """A test marked `optimized` in an unoptimised module runs optimised."""
    import jax
    if (not RUN_UNOPTIMIZED or not jax.config.read("jax_disable_most_optimizations")
            or not _marked_optimized(request.node.own_markers)):
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "0")
        _compile_optimized(True)
        yield
    _compile_optimized(False)


@pytest.fixture(scope="module", autouse=True)
def _release_compiled_functions():
    """Drop JAX's in-memory executables after a test module once the worker holds more than
    KEEP_COMPILED_BELOW_BYTES: kept for the whole suite they take many GB. Below that they are kept,
    because every dropped function is traced and lowered again by the next module that calls it (even a
    persistent-cache hit is keyed by the lowered program), and every eager op compiled again."""
    yield
    if _resident_bytes() > KEEP_COMPILED_BELOW_BYTES:
        import gc
        import jax
        jax.clear_caches()
        _unoptimized_since_clear["value"] = False
        gc.collect()


# The test files that take longest (minutes on a 2-core CPU, cold compilation cache; measured with
# --durations, BENCHMARKS.md), longest first. pytest-xdist's --dist loadfile (the README's command) sends
# whole files to the workers in this order (pytest_configure turns off its own reordering, by number of
# tests), so the long ones start first and the short ones fill the end of both workers' queues instead
# of a long file starting last on one worker while the other is idle. Without xdist only the order changes.
SLOW_FIRST = ("test_dds_step.py", "test_benchmark.py", "test_gan.py", "test_dds_batched.py", "test_demo_models.py",
              "test_main_cli.py", "test_stylegan2.py", "test_evaluate.py", "test_distributed.py", "test_studio.py",
              "test_own_images.py", "test_bad_inputs.py", "test_blend.py", "test_discriminator.py",
              "test_segmenter.py", "test_convert_and_sample.py", "test_metrics.py", "test_backbones.py")


def pytest_configure(config):
    config.addinivalue_line("markers", "optimized: compile with the full XLA pipeline (tests that run long "
                                       "loops or 256x256 programs; the rest compile with most optimisations off)")
    if hasattr(config.option, "loadscopereorder"):     # pytest-xdist: keep SLOW_FIRST's order of files
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))     # stable: file order otherwise
