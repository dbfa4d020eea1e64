"""The job store's transitions, the runner's restart policy and the worker's progress book, in-process; every
store test runs against SQLite and against a real PostgreSQL server (`postgres` in conftest)."""

from __future__ import annotations

import threading

import pytest

from api.runner import JobRunner
from api.settings import Settings
from api.store import JobStore
from api.worker import ProgressBook


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'jobs.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = JobStore(url)
    assert s.kind == request.param
    yield s
    s.close()


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


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request, tmp_path):
    """The URL of a database no store has opened yet."""
    return f"sqlite:///{tmp_path / 'fresh.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_many_processes_create_the_schema_at_once(fresh_url):
    """`steel serve --workers N` and the job workers all open the store at start: creating the schema must not
    race (PostgreSQL's CREATE TABLE IF NOT EXISTS alone does: two creators collide on the catalog)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # each opener is a separate process with its own connection, as in production
    with ctx.Pool(6) as pool:
        kinds = pool.map(_open_store, [fresh_url] * 12)
    assert set(kinds) == {JobStore(fresh_url).kind}
    assert JobStore(fresh_url).list() == ([], 0)


def _open_store(url: str) -> str:
    return JobStore(url).kind


def test_text_with_nul_characters_round_trips_alike(store):
    """A name or an error message holding NUL (a label typed by anyone, a crashed worker's log tail): PostgreSQL
    text cannot hold U+0000, so the store writes U+FFFD there on every backend."""
    job = store.create({"r": "a\x00b"}, {"output": "o"}, "out/nul", name="job\x00name")
    assert job.name == "job\ufffdname" and job.request == {"r": "a\x00b"}  # JSON columns escape it themselves
    store.claim_next()
    assert store.fail(job.id, "worker said \x00\x00 and died")
    assert store.get(job.id).error == "worker said \ufffd\ufffd and died"


def test_postgres_connection_lost_is_reopened(pg_url, postgres):
    """A database restart or a dropped connection: the next statement of each thread reconnects instead of
    failing for the rest of the server's life."""
    import psycopg

    store = JobStore(pg_url)
    job_id = new_job(store)
    with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
        killed = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                               (pg_url.rsplit("/", 1)[1],)).fetchall()
    assert killed and all(row[0] for row in killed)
    assert store.get(job_id).state == "queued"
    assert store.claim_next().id == job_id
