"""The job runner: a thread in the server process that starts, watches and stops worker processes.

Request handlers only write to the job store and wake the runner; the runner claims queued jobs (up to
`max_running_jobs` at once), starts `python -m api.worker` for each in its own process group, kills the group
when a cancel arrives, and settles jobs whose worker exited without doing so itself.

At start it settles what a previous server left behind: running jobs are queued again (their workers died
with that server; the executor resumes from its shard markers) or failed when resuming is disabled or a job has
been interrupted too often; cancelling jobs become cancelled. Nothing is forgotten.

Several server processes may share one state folder (`steel serve --workers N`): an exclusive lock on
STATE_DIR/runner.lock elects the one that runs jobs; the others stand by and take over if it goes away.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from api.settings import Settings
from api.store import CANCELLING, RUNNING, JobStore
from api.worker import SETTINGS_ENV

log = logging.getLogger("steel.api.runner")
KILL_GRACE_S = 5.0
STANDBY_POLL_S = 2.0


class JobRunner:
    def __init__(self, settings: Settings, store: JobStore):
        self.settings = settings
        self.store = store
        self.procs: dict[str, subprocess.Popen] = {}
        self._killed: dict[str, float] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_file = None
        self.leader = False
        self.logs = settings.state_dir / "logs"

    # -- life cycle ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.settings.state_dir / "runner.lock", "w")
        self._thread = threading.Thread(target=self._loop, name="steel-job-runner", daemon=True)
        self._thread.start()

    def _lead(self) -> bool:
        """Become the process that runs jobs, if none is."""
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.leader = True
        self.recover()
        return True

    def stop(self) -> None:
        """Graceful shutdown: stop the workers and queue their jobs again (no interruption is counted)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for job_id, proc in list(self.procs.items()):
            _killpg(proc.pid)
            proc.wait(timeout=10)
            job = self.store.get(job_id)
            if job is not None and job.state == CANCELLING:
                self.store.mark_cancelled(job_id)
            elif job is not None and job.state == RUNNING:
                self.store.requeue(job_id, "server shut down; resumes at the next start", interrupted=False)
        self.procs.clear()
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock: a standby server takes over

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        self._wake.set()

    def recover(self) -> None:
        s = self.settings
        for job in self.store.active():
            if job.worker_pid:
                _kill_stale_worker(job.worker_pid, job.id)
            if job.state == CANCELLING:
                self.store.mark_cancelled(job.id)
            elif job.state == RUNNING:
                if not s.resume_on_restart:
                    self.store.fail(job.id, "interrupted: the server stopped while the job ran "
                                            "(STEEL_RESUME_ON_RESTART=0, so it is not resumed)")
                elif job.interruptions >= s.max_interruptions:
                    self.store.fail(job.id, f"interrupted by {job.interruptions + 1} server restarts; "
                                            f"giving up (STEEL_MAX_INTERRUPTIONS={s.max_interruptions})")
                else:
                    self.store.requeue(job.id, "server restarted while the job ran; resuming from its finished "
                                               "shards", interrupted=True)
                    log.info("job %s queued again after a server restart", job.id)

    # -- the loop -----------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set() and not self._lead():
            self._stop.wait(STANDBY_POLL_S)
        while not self._stop.is_set():
            try:
                self._reap()
                self._cancel()
                self._launch()
            except Exception:  # keep the runner alive through a transient database error
                log.exception("job runner step failed")
            self._wake.wait(self.settings.runner_poll_s)
            self._wake.clear()

    def _reap(self) -> None:
        for job_id, proc in list(self.procs.items()):
            rc = proc.poll()
            if rc is None:
                continue
            del self.procs[job_id]
            self._killed.pop(job_id, None)
            job = self.store.get(job_id)
            if job is None or job.terminal:
                continue
            if job.cancel_requested:
                self.store.mark_cancelled(job_id)
            else:
                self.store.fail(job_id, f"the worker process exited with code {rc} without finishing the job"
                                        f"{_tail(self.logs / f'{job_id}.log')}")

    def _cancel(self) -> None:
        now = time.monotonic()
        for job_id, proc in self.procs.items():
            if job_id in self._killed and now - self._killed[job_id] < KILL_GRACE_S:
                continue
            job = self.store.get(job_id)
            if job is not None and job.cancel_requested:
                _killpg(proc.pid)
                self._killed[job_id] = now

    def _launch(self) -> None:
        while len(self.procs) < self.settings.max_running_jobs and not self._stop.is_set():
            job = self.store.claim_next()
            if job is None:
                return
            self.procs[job.id] = self._spawn(job.id)
            self.store.set_worker(job.id, self.procs[job.id].pid)

    def _spawn(self, job_id: str) -> subprocess.Popen:
        env = dict(os.environ)
        env[SETTINGS_ENV] = self.settings.model_dump_json()
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")  # jobs never download models from a hub
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with open(self.logs / f"{job_id}.log", "ab") as logfile:
            return subprocess.Popen(
                [sys.executable, "-m", "api.worker", job_id, str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT, env=env, cwd=root,
                start_new_session=True, close_fds=True,
            )


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_stale_worker(pid: int, job_id: str) -> None:
    """A worker of the previous server that is somehow still alive: kill its group before resuming."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return
    if b"api.worker" in cmdline and job_id.encode() in cmdline:
        _killpg(pid)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return ("; log tail:\n" + "\n".join(text)) if text else ""
