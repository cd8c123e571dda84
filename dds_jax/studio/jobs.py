"""Long work (sampling, training, masks, DDS) off the request thread: one worker runs jobs in order."""
import itertools
import logging
import queue
import threading
import time
import traceback
from typing import Any, Callable, Dict, Optional

from dds_jax.cli import common


class Job:
    """State of one background job, read by the page through ``GET /api/jobs/<id>``."""

    def __init__(self, job_id: str, kind: str, fn: Callable[["Job"], Any]):
        self.id, self.kind, self.fn = job_id, kind, fn
        self.state = "queued"                 # queued -> running -> done | error
        self.done, self.total, self.message = 0, 0, ""
        self.result: Any = None
        self.error: Optional[str] = None
        self.created, self.started, self.finished = time.time(), None, None
        self._lock = threading.Lock()

    def report(self, done: float, total: float, message: str = "") -> None:
        with self._lock:
            self.done, self.total = done, total
            if message:
                self.message = message

    def to_dict(self) -> Dict[str, Any]:
        with self._lock:
            elapsed = None if self.started is None else (self.finished or time.time()) - self.started
            return {"id": self.id, "kind": self.kind, "state": self.state, "done": self.done,
                    "total": self.total, "fraction": (self.done / self.total) if self.total else 0.0,
                    "message": self.message, "result": self.result, "error": self.error,
                    "elapsed_s": None if elapsed is None else round(elapsed, 2)}


class JobRunner:
    """A single daemon worker thread (the model work shares the CPU/accelerator: one job at a time)."""

    def __init__(self):
        self._queue: "queue.Queue[Job]" = queue.Queue()
        self._jobs: Dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="studio-jobs", daemon=True)
        self._thread.start()

    def submit(self, kind: str, fn: Callable[[Job], Any]) -> Job:
        with self._lock:
            job = Job(f"{kind}-{next(self._ids)}", kind, fn)
            self._jobs[job.id] = job
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Optional[Job]:
        with self._lock:
            return self._jobs.get(job_id)

    def _work(self):
        while True:
            job = self._queue.get()
            job.state, job.started = "running", time.time()
            try:
                job.result = job.fn(job)
                job.state = "done"
            except common.USER_ERRORS as e:                                 # bad input: one line
                job.error, job.state = common.error_message(e), "error"
            except Exception as e:                                          # a bug: keep the traceback
                logging.error("studio job %s failed:\n%s", job.id, traceback.format_exc())
                job.error, job.state = f"{type(e).__name__}: {e}", "error"
            finally:
                job.finished = time.time()
