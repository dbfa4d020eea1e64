"""The job worker: one process per job attempt, started by the job runner; runs steel_data's executor.

    python -m api.worker JOB_ID PARENT_PID     (settings arrive as JSON in $STEEL_WORKER_SETTINGS)

The worker leads its own process group (the executor's pool processes join it), so cancelling is one
`killpg(SIGKILL)`: the executor writes every output atomically and each shard's marker last, so a kill at any
moment leaves only finished shards, which a rerun of the same job reuses. The worker also dies with the server
(PR_SET_PDEATHSIG), so a crashed server leaves no orphan writing into an output folder; the restarted server
requeues the job and the new worker resumes from the markers. An exclusive lock per output folder makes sure
two workers never run in one folder at the same time.

Progress goes to the job store (throttled): shards and records done, and per-op counts accumulated over the
shards reported so far, across attempts (a shard is counted once, by its index).
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from api.settings import Settings
from api.store import JobStore

SETTINGS_ENV = "STEEL_WORKER_SETTINGS"
SHARD_DELAY_ENV = "STEEL_WORKER_SHARD_DELAY_S"  # tests and demos: pause after each shard
PROGRESS_INTERVAL_S = 0.3
LOCK_WAIT_S = 60.0


class ProgressBook:
    """Live per-op counts for one job from the executor's progress events."""

    def __init__(self, labels: list[tuple[str, str, str]], previous: dict | None):
        prev = previous or {}
        prev_ops = {op["label"]: op for op in prev.get("ops", [])}
        self.ops = []
        for label, name, kind in labels:
            old = prev_ops.get(label, {})
            self.ops.append({"label": label, "name": name, "kind": kind,
                             **{k: int(old.get(k, 0)) for k in ("docs_in", "docs_out", "dropped", "modified",
                                                                 "errors")}})
        self.counted: set[int] = set(prev.get("counted_shards", []))
        self.state = {"phase": "planning", "shards_total": prev.get("shards_total", 0),
                      "shards_done": prev.get("shards_done", 0), "records_total": prev.get("records_total", 0),
                      "records_done": prev.get("records_done", 0)}

    def on(self, event: str, data: dict) -> None:
        s = self.state
        if event == "start":
            s.update(phase="processing", shards_total=data["shards"], shards_done=data["shards"] - data["todo"],
                     records_total=data["records"], records_done=data["done_records"])
        elif event == "shard":
            index = data.get("index")
            if index is not None and index in self.counted:
                return
            if index is not None:
                self.counted.add(index)
                s["shards_done"] = min(s["shards_total"], s["shards_done"] + 1)
            s["records_done"] = min(s["records_total"], s["records_done"] + data.get("records", 0))
            by_label = {op["label"]: op for op in data.get("ops", [])}
            for op in self.ops:
                got = by_label.get(op["label"])
                if got:
                    for k in ("docs_in", "docs_out", "dropped", "modified", "errors"):
                        op[k] += int(got.get(k, 0))
            if s["shards_total"] and s["shards_done"] >= s["shards_total"]:
                s["phase"] = "global stages"
        elif event == "done":
            by_label = {op["label"]: op for op in data.get("ops", [])}
            for op in self.ops:
                got = by_label.get(op["label"], {})
                for k in ("docs_in", "docs_out", "dropped", "modified", "errors"):
                    op[k] = int(got.get(k, op[k]))
            s.update(phase="done", shards_done=s["shards_total"], records_done=s["records_total"])

    def to_json(self) -> dict:
        return {**self.state, "ops": self.ops, "counted_shards": sorted(self.counted)}


def _die_with_parent(parent: int) -> None:
    """SIGTERM when the server (our parent) dies; on SIGTERM, kill the whole process group at once."""
    signal.signal(signal.SIGTERM, lambda *_: os.killpg(os.getpgrp(), signal.SIGKILL))
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.killpg(os.getpgrp(), signal.SIGKILL)


def _lock_output(settings: Settings, output: Path):
    locks = settings.state_dir / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(os.path.realpath(output).encode()).hexdigest()[:32]
    fh = open(locks / f"{key}.lock", "w")
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fh
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"another worker still holds {output} after {LOCK_WAIT_S:.0f} s") from None
            time.sleep(0.2)


def run_job(settings: Settings, store: JobStore, job_id: str) -> None:
    from api.paths import PathPolicy
    from steel_data.executor import LocalExecutor, RunConfig, reset_outdir
    from steel_data.readers import TextMapping
    from steel_data.recipe import load_recipe

    job = store.get(job_id)
    if job is None or job.terminal:
        return
    spec = job.spec
    output = Path(spec["output"])
    lock = _lock_output(settings, output)
    try:
        policy = PathPolicy(settings.data_roots, settings.state_dir)
        policy.output(str(output))
        policy.inputs(spec["inputs"])  # again: the files may have changed since the request was checked
        recipe = load_recipe(spec["recipe"], spec.get("overrides") or {}, set(spec.get("skip_ops") or []))
        mapping = TextMapping(text_key=recipe.text_key, source_key=spec.get("text_key"),
                              template=spec.get("text_template"))
        if spec.get("overwrite") and not job.prepared:
            reset_outdir(output)
        store.set_prepared(job_id)
        workers = spec.get("workers") or settings.job_workers
        config = RunConfig(recipe=recipe, inputs=spec["inputs"], outdir=output, mapping=mapping,
                           workers=min(workers, settings.max_job_workers) if workers else 0,
                           shard_size=spec["shard_size"], output_format=spec["format"])
        labels = [(label, op.name, op.kind) for label, op in zip(recipe.op_labels(), recipe.ops)]
        book = ProgressBook(labels, job.progress)
        delay = float(os.environ.get(SHARD_DELAY_ENV, "0") or 0)
        last = [0.0]

        def progress(event: str, data: dict) -> None:
            book.on(event, data)
            now = time.monotonic()
            if event == "start" or now - last[0] >= PROGRESS_INTERVAL_S:
                store.set_progress(job_id, book.to_json())
                last[0] = now
            if event == "shard" and delay:
                time.sleep(delay)

        if settings.ray_address:
            from steel_data.ray_executor import RayExecutor

            executor = RayExecutor(config, progress, address=settings.ray_address)
        else:
            executor = LocalExecutor(config, progress)
        result = executor.run()
        stats = result.stats
        acc = stats["accounting"]
        summary = {
            "input_records": acc["input_records"], "output_docs": stats["output_docs"],
            "quarantined": acc["quarantined"], "dropped_by_op": acc["dropped_by_op"], "balanced": acc["balanced"],
            "wall_seconds": stats.get("wall_seconds"), "shards_done_before": result.shards_done_before,
            "executor": "ray" if settings.ray_address else "local",
        }
        store.succeed(job_id, book.to_json(), summary)
    finally:
        lock.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job_id, parent = argv[0], int(argv[1])
    _die_with_parent(parent)
    settings = Settings.model_validate_json(os.environ[SETTINGS_ENV])
    store = JobStore(settings.database_url)
    try:
        run_job(settings, store, job_id)
    except Exception as exc:  # the job fails with the reason; the process itself exits cleanly
        from operators.registry import RecipeError
        from steel_data.executor import JobMismatch
        from steel_data.readers import InputError

        from api.paths import PathRefused

        if isinstance(exc, (RecipeError, InputError, JobMismatch, PathRefused)):
            message = f"{type(exc).__name__}: {exc}"
        else:
            message = f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exc(limit=20))
        print(message, file=sys.stderr)
        store.fail(job_id, message, states=("running", "cancelling"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
