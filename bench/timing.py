"""Timing shared by the benchmark scripts (run as ``python bench/<script>.py``)."""
import time

import jax


def time_compiled(fn, args, repeats):
    """(compile s, s per call) of ``jax.jit(fn)`` on ``args``."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    return compile_s, time_calls(compiled, args, repeats)


def time_calls(compiled, args, repeats):
    """Seconds per call of an already compiled function (one warm-up call first)."""
    jax.block_until_ready(compiled(*args))
    t0 = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(compiled(*args))
    return (time.perf_counter() - t0) / repeats
