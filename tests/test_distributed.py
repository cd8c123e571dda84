"""Issue 15 Deliver 5: two processes (jax.distributed on localhost, CPU) split the seeds of one run,
write into one run directory, and the merged run equals a one-process run; evaluate reads it."""
import json
import os
import socket
import subprocess
import sys

import numpy as np

from dds_jax import files

from demo_utils import DEMO, ROOT

ARGS = ["--config.seeds=0-3", "--config.iterations=4", "--config.chunk=2", "--config.snapshot_every=2"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
    return env


def test_two_processes_split_seeds_into_one_run(tmp_path, program):
    port = _free_port()
    out = tmp_path / "dist"
    procs = [subprocess.Popen([sys.executable, "-m", "dds_jax.main", f"--config={DEMO}", *ARGS,
                               "--config.batch_size=1", f"--config.output_dir={out}", "--distributed",
                               f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                               f"--process_id={i}"], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    errs = []
    for p in procs:
        _, err = p.communicate(timeout=900)
        errs.append(err)
    assert [p.returncode for p in procs] == [0, 0], "\n".join(e[-2000:] for e in errs)
    assert "1 of 4 seeds" not in errs[0] and "2 of 4 seeds to do (s2t) in process 0 of 2" in errs[0]
    # the one-process run in this process: the 4 seeds in one batch over its 4 devices (the demo_run
    # fixture's compiled step)
    single = tmp_path / "single"
    r = program("dds_jax.main", f"--config={DEMO}", *ARGS, "--config.batch_size=4", f"--config.output_dir={single}")
    assert r.returncode == 0, r.stderr[-2000:]
    run, ref = (json.loads((d / "run.json").read_text()) for d in (out, single))
    assert run["seeds"] == ref["seeds"] == [0, 1, 2, 3]
    assert sorted(run["final_losses"]["s2t"]) == ["0", "1", "2", "3"]
    assert not list(out.glob("run.process_*.json")) and not list(out.glob("state*"))
    for s in range(4):
        a = files.read_image(out / "s2t" / f"seed_{s}" / "dds.png").astype(int)
        b = files.read_image(single / "s2t" / f"seed_{s}" / "dds.png").astype(int)
        assert np.abs(a - b).max() <= 1, s          # the same problem, computed in another process
        for k, v in ref["final_losses"]["s2t"][str(s)].items():
            assert abs(run["final_losses"]["s2t"][str(s)][k] - v) <= 1e-4 * max(1.0, abs(v)), (s, k)
    assert (out / "contact_sheet_s2t.png").is_file()
    r = program("dds_jax.cli.evaluate", f"--run={out}")          # the evaluation in this process
    assert r.returncode == 0, r.stderr[-2000:]
    table = json.loads((out / "table1.json").read_text())["rows"]
    assert {row["n_seeds"] for row in table} == {4}
