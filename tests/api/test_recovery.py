"""Jobs that survive: cancel stops work promptly and keeps finished shards; a server killed mid-job (SIGKILL)
and started again finishes the job with nothing lost or duplicated. (The restart policy's other branches are
tested in-process in test_store.py.)"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from steel_data.executor import LocalExecutor, RunConfig
from steel_data.recipe import load_recipe

from tests.api.conftest import TEST_RECIPE, Server, make_root, rows, server_env, submit, wait_state

SHARD = 200  # records per shard: the big input makes 13 shards
DELAY = "0.15"  # seconds the worker pauses after each shard, so there is time to act mid-job


@pytest.fixture(scope="module")
def slow_root(tmp_path_factory, sample_dir) -> Path:
    return make_root(tmp_path_factory.mktemp("recovery") / "root", sample_dir)


@pytest.fixture(scope="module")
def reference(slow_root, tmp_path_factory) -> list:
    out = tmp_path_factory.mktemp("reference") / "out"
    cfg = RunConfig(recipe=load_recipe(TEST_RECIPE), inputs=[str(slow_root / "big")], outdir=out, workers=1,
                    shard_size=SHARD)
    LocalExecutor(cfg).run()
    result = rows(out)
    assert len(result) == len({i for i, _ in result}) > 100
    return result


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _shards_done(n):
    return lambda j: (j.get("progress") or {}).get("shards_done", 0) >= n


def test_cancel_is_prompt_and_keeps_finished_shards(slow_root, reference):
    srv = Server(slow_root, server_env(slow_root, STEEL_WORKER_SHARD_DELAY_S=DELAY)).start()
    try:
        with srv.client() as c:
            jid = submit(c, inputs=["big"], output="out/cancel", shard_size=SHARD, workers=1)
            job = wait_state(c, jid, until=_shards_done(3))
            assert job["state"] == "running"
            from api.store import JobStore

            pid = JobStore(f"sqlite:///{slow_root / '.steel-api' / 'jobs.db'}").get(jid).worker_pid
            assert pid and _alive(pid)
            t0 = time.monotonic()
            r = c.post(f"/v1/jobs/{jid}/cancel")
            assert r.status_code == 202 and r.json()["state"] in ("cancelling", "cancelled")
            job = wait_state(c, jid, timeout=10)
            assert job["state"] == "cancelled" and time.monotonic() - t0 < 3.0
            assert not _alive(pid)
            assert c.post(f"/v1/jobs/{jid}/cancel").status_code == 409
            assert c.get(f"/v1/jobs/{jid}/stats").status_code == 409
            # the same job again reuses the shards the cancelled one finished
            again = submit(c, inputs=["big"], output="out/cancel", shard_size=SHARD, workers=1)
            final = wait_state(c, again, timeout=120)
            assert final["state"] == "succeeded", final
            assert final["result"]["shards_done_before"] >= 3
            assert rows(slow_root / "out" / "cancel") == reference
            # a queued job is cancelled at once
            blocker = submit(c, inputs=["big"], output="out/block-1", shard_size=SHARD, workers=1)
            blocker2 = submit(c, inputs=["big"], output="out/block-2", shard_size=SHARD, workers=1)
            queued = submit(c, inputs=["input"], output="out/never", workers=1)
            r = c.post(f"/v1/jobs/{queued}/cancel")
            assert r.json()["state"] == "cancelled"
            for j in (blocker, blocker2):
                c.post(f"/v1/jobs/{j}/cancel")
    finally:
        srv.stop()


def test_killed_server_resumes_the_job_without_loss_or_duplicates(slow_root, reference):
    env = server_env(slow_root, STEEL_WORKER_SHARD_DELAY_S=DELAY, STEEL_STATE_DIR=slow_root.parent / "state-kill")
    first = Server(slow_root, env).start()
    try:
        with first.client() as c:
            jid = submit(c, inputs=["big"], output="out/killed", shard_size=SHARD, workers=1)
            job = wait_state(c, jid, until=_shards_done(4))
            assert job["state"] == "running" and job["progress"]["shards_done"] < job["progress"]["shards_total"]
        from api.store import JobStore

        pid = JobStore(f"sqlite:///{slow_root.parent / 'state-kill' / 'jobs.db'}").get(jid).worker_pid
        first.kill()  # SIGKILL: no shutdown code runs; the worker dies with its parent
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)
    finally:
        first.kill()
    second = Server(slow_root, env).start()
    try:
        with second.client() as c:
            job = wait_state(c, jid, timeout=120)
            assert job["state"] == "succeeded", job
            assert job["interruptions"] == 1 and job["attempts"] == 2
            assert job["result"]["shards_done_before"] >= 4
            assert any("restarted" in n["note"] for n in job["notes"])
            out = rows(slow_root / "out" / "killed")
            assert out == reference  # nothing lost, nothing twice, same order
            stats = c.get(f"/v1/jobs/{jid}/stats").json()
            assert stats["accounting"]["balanced"] and stats["output_docs"] == len(reference)
    finally:
        second.stop()

