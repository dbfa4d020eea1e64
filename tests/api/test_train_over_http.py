"""steel-train streaming from a real `steel serve` over HTTP: killed (SIGKILL) after a checkpoint on one process,
resumed on two gloo processes, it trains on exactly the samples of an uninterrupted run, step for step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="steel_train needs torch: pip install -e '.[train]'")

from tests.api.conftest import Server, server_env  # noqa: E402
from tests.steel_train.shardset import make_shards  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
STEPS = 8
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def overrides(url: str, run_dir: Path) -> list[str]:
    return [f"--set={o}" for o in (
        "model.flavor=debug", f"data.source={url}", f"train.run_dir={run_dir}", f"train.steps={STEPS}",
        "train.log_every=1", "train.checkpoint_every=2", "data.global_batch=8", "data.micro_batch=2",
        "optim.warmup_steps=2", "optim.lr=3e-3", "train.device=cpu", "data.trace=true")]


def one_process(url: str, run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "steel_train.cli", *overrides(url, run_dir)], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def traced_steps(run_dir: Path) -> dict[int, list[str]]:
    """step -> sorted sample digests of the global batch. A step traced again after the kill (the trace file is
    appended to) counts once per rank file: the last record wins."""
    steps: dict[int, list[str]] = {}
    for path in sorted(run_dir.glob("samples-rank*.jsonl")):
        per_file: dict[int, list[str]] = {}
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            per_file[rec["step"]] = rec["digests"]
        for step, digests in per_file.items():
            steps.setdefault(step, []).extend(digests)
    return {k: sorted(v) for k, v in steps.items()}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_train_over_http_killed_then_resumed_on_two_ranks(tmp_path):
    root = tmp_path / "root"  # its own server: the session one's dataset list stays as its tests expect
    make_shards(root / "datasets" / "synthetic", vocab_size=512, seq_len=32, docs=60)
    server = Server(root, server_env(root)).start()
    try:
        _killed_then_resumed(f"{server.url}/v1/datasets/synthetic", tmp_path)
    finally:
        server.stop()


def _killed_then_resumed(url: str, tmp_path: Path) -> None:
    from steel_train.checkpoint import list_checkpoints

    ref = tmp_path / "ref"
    out, _ = one_process(url, ref).communicate(timeout=120)
    assert (ref / "metrics.jsonl").is_file(), out[-3000:]

    run = tmp_path / "run"
    proc = one_process(url, run)
    deadline = time.monotonic() + 90
    while not list_checkpoints(run / "checkpoints") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.communicate()[0][-3000:]
    assert list_checkpoints(run / "checkpoints"), "no checkpoint within 90 s"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    killed_at = list_checkpoints(run / "checkpoints")[-1][0]
    assert killed_at < STEPS

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "-m", "steel_train.cli", *overrides(url, run)]
    resumed = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=150)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"at step {killed_at}" in resumed.stdout and "on 2 rank(s)" in resumed.stdout

    expect, got = traced_steps(ref), traced_steps(run)
    assert sorted(expect) == list(range(1, STEPS + 1))
    assert got == expect
    assert (run / "samples-rank1.jsonl").is_file()  # the resumed steps really ran on two ranks
    final = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert final["step"] == STEPS and final["world_size"] == 2
