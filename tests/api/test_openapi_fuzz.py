"""Schemathesis against the live server's OpenAPI document: no server errors, responses that match the
document (status codes, content types, schemas, headers), and auth enforced where the document says."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import TOKEN

pytest.importorskip("schemathesis")


def test_schemathesis_finds_no_server_errors(server, tmp_path):
    exe = Path(sys.executable).with_name("schemathesis")
    exe = str(exe) if exe.exists() else shutil.which("schemathesis")
    cmd = [exe, "--no-color", "run", f"{server.url}/openapi.json", "-H", f"Authorization: Bearer {TOKEN}",
           "--checks", "all", "--exclude-checks", "positive_data_acceptance",
           "--max-time", "25", "--workers", "1", "--request-timeout", "20", "--seed", "1"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert "Server error" not in out and "ST100" not in out, out[-6000:]
    assert proc.returncode == 0, out[-6000:]
