"""A job's life cycle over HTTP with the job store in a real PostgreSQL server (STEEL_DATABASE_URL=postgresql://):
the server, its job runner and the worker process all use it."""

from __future__ import annotations

from tests.api.conftest import Server, make_root, server_env, submit, wait_state


def test_job_life_cycle_on_postgres(pg_url, sample_dir, tmp_path):
    from api.store import JobStore

    root = make_root(tmp_path / "root", sample_dir)
    # the worker pauses after each shard, so the second job is still running when it is cancelled
    srv = Server(root, server_env(root, STEEL_DATABASE_URL=pg_url, STEEL_WORKER_SHARD_DELAY_S="0.2")).start()
    try:
        with srv.client() as c:
            health = c.get("/healthz").json()
            assert health["database"] == "postgresql" and health["runner"], health
            jid = submit(c, output="out/pg", workers=1, name="on postgres")
            job = wait_state(c, jid)
            assert job["state"] == "succeeded", job
            assert job["progress"]["phase"] == "done" and job["result"]["output_docs"] > 0
            assert [j["id"] for j in c.get("/v1/jobs", params={"state": "succeeded"}).json()["jobs"]] == [jid]
            cancel = submit(c, inputs=["big"], output="out/pg-cancel", shard_size=200, workers=1)
            running = wait_state(c, cancel, until=lambda j: (j.get("progress") or {}).get("shards_done", 0) >= 1)
            assert running["state"] == "running", running
            assert c.post(f"/v1/jobs/{cancel}/cancel").status_code == 202
            assert wait_state(c, cancel)["state"] == "cancelled"
        stored = JobStore(pg_url).get(jid)  # the rows are in PostgreSQL, not in a SQLite file beside the server
        assert stored.state == "succeeded" and stored.name == "on postgres" and stored.attempts == 1
        assert not (root / ".steel-api" / "jobs.db").exists()
    finally:
        srv.stop()
