"""The job store's transitions, the runner's restart policy and the worker's progress book, in-process."""

from __future__ import annotations

import threading

import pytest

from api.runner import JobRunner
from api.settings import Settings
from api.store import JobStore
from api.worker import ProgressBook


@pytest.fixture()
def store(tmp_path):
    return JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")


def settings(tmp_path, **kw) -> Settings:
    env = {"STEEL_DATA_ROOTS": str(tmp_path), **{f"STEEL_{k.upper()}": str(v) for k, v in kw.items()}}
    return Settings.from_env(env)


def new_job(store: JobStore, output="out/x") -> str:
    return store.create({"r": 1}, {"output": output}, output).id


def test_claim_is_atomic_under_contention(store):
    ids = {new_job(store, f"out/{i}") for i in range(20)}
    claimed: list = []
    def worker():
        s = JobStore(store.url)  # its own connection, like another process
        while (job := s.claim_next()) is not None:
            claimed.append(job.id)
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)  # each exactly once
    assert all(store.get(i).state == "running" and store.get(i).attempts == 1 for i in ids)


def test_cancel_transitions(store):
    queued = new_job(store)
    assert store.request_cancel(queued).state == "cancelled"
    running = new_job(store)
    store.claim_next()
    assert store.request_cancel(running).state == "cancelling"
    assert store.request_cancel(running).state == "cancelling"  # idempotent
    assert store.succeed(running, {}, {"ok": 1})  # finished before the kill landed: it stays succeeded
    assert store.get(running).state == "succeeded"
    assert not store.mark_cancelled(running)


def test_restart_policy(tmp_path, store):
    resumed, cancelling, worn = new_job(store, "a"), new_job(store, "b"), new_job(store, "c")
    for _ in range(3):
        store.claim_next()
    store.request_cancel(cancelling)
    store._update(worn, ("running",), interruptions=3)
    JobRunner(settings(tmp_path, max_interruptions=3), store).recover()
    assert store.get(resumed).state == "queued" and store.get(resumed).interruptions == 1
    assert "restarted" in store.get(resumed).notes[-1]["note"]
    assert store.get(cancelling).state == "cancelled"
    assert store.get(worn).state == "failed" and "giving up" in store.get(worn).error
    store.claim_next()
    JobRunner(settings(tmp_path, resume_on_restart=0), store).recover()
    job = store.get(resumed)
    assert job.state == "failed" and "interrupted" in job.error and "RESUME_ON_RESTART=0" in job.error


def test_progress_book_counts_each_shard_once_across_attempts():
    labels = [("m", "m", "mapper"), ("f", "f", "filter")]
    shard = lambda i: {"index": i, "records": 10, "ops": [  # noqa: E731
        {"label": "m", "docs_in": 10, "docs_out": 10, "modified": 2},
        {"label": "f", "docs_in": 10, "docs_out": 7, "dropped": 3}]}
    book = ProgressBook(labels, None)
    book.on("start", {"shards": 3, "todo": 3, "records": 30, "done_records": 0})
    book.on("shard", shard(0))
    book.on("shard", shard(1))
    saved = book.to_json()
    again = ProgressBook(labels, saved)  # the next attempt, after a crash
    again.on("start", {"shards": 3, "todo": 1, "records": 30, "done_records": 20})
    again.on("shard", shard(1))  # already counted
    again.on("shard", shard(2))
    p = again.to_json()
    assert p["shards_done"] == 3 and p["records_done"] == 30 and p["phase"] == "global stages"
    assert p["ops"][1]["dropped"] == 9 and p["ops"][0]["modified"] == 6


def test_unsupported_database_url(tmp_path):
    from api.store import UnsupportedDatabase

    with pytest.raises(UnsupportedDatabase):
        JobStore("mysql://x")
    with pytest.raises(UnsupportedDatabase):
        JobStore("sqlite:///:memory:")


def test_one_runner_leads_the_others_stand_by(tmp_path, store, monkeypatch):
    import time

    import api.runner as runner_mod

    monkeypatch.setattr(runner_mod, "STANDBY_POLL_S", 0.05)
    s = settings(tmp_path, runner_poll_s=0.05)
    a, b = JobRunner(s, JobStore(store.url)), JobRunner(s, JobStore(store.url))
    a.start()
    time.sleep(0.2)
    b.start()
    time.sleep(0.2)
    assert a.leader and not b.leader and a.alive and b.alive
    a.stop()  # the leader goes away: the standby takes over
    deadline = time.monotonic() + 5
    while not b.leader and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b.leader
    b.stop()
