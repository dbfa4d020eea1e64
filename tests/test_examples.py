"""examples/: the end-to-end script (sample -> steel run -> steel tokenize -> steel serve -> steel-train) runs."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

for _module in ("torch", "fastapi", "uvicorn"):
    pytest.importorskip(_module, reason="the end-to-end example needs the api and train extras")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_end_to_end_example(tmp_path):
    work = tmp_path / "e2e"
    env = {**os.environ, "PYTHON": sys.executable, "STEPS": "4", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", "examples/end_to_end.sh", str(work)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    metrics = [json.loads(line) for line in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    assert all(math.isfinite(m["loss"]) for m in metrics)
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    assert (work / "root" / "datasets" / "sample" / "manifest.json").is_file()
    assert list((work / "clean" / "data").glob("part-*"))
    assert list((work / "run" / "checkpoints").iterdir())
    assert "training run:" in proc.stdout
    # the server was stopped on exit: nothing listens on its port any more
    url = next(line.split()[-1] for line in proc.stdout.splitlines() if line.startswith("dataset: "))
    host, port = url.split("//")[1].split("/")[0].split(":")
    with socket.socket() as s, pytest.raises(OSError):
        s.settimeout(2)
        s.connect((host, int(port)))
