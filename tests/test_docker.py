"""docker/: the compose file validates (Debian's `docker-compose config`, which needs no engine) and
describes the cluster the README promises; the images build from files that exist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess:
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is missing: .ci/run installs Debian's docker-compose package")
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STEEL_", "RAY_", "COMPOSE_"))}
    return subprocess.run([exe, "-f", str(COMPOSE), "config"], cwd=REPO, env=base | env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def config() -> dict:
    res = compose_config({"STEEL_API_TOKEN": "test-token"})
    assert res.returncode == 0, res.stderr
    return yaml.safe_load(res.stdout)


def test_compose_describes_head_workers_api_and_trainer(config):
    services = config["services"]
    assert set(services) == {"ray-head", "ray-worker", "api", "trainer"}
    head, worker, api, trainer = (services[n] for n in ("ray-head", "ray-worker", "api", "trainer"))
    assert "ray start --head" in head["command"] and "--port=6379" in head["command"]
    assert "ray start --address=ray-head:6379" in worker["command"]
    for node in (head, worker):
        assert "--object-store-memory=" in node["command"] and "--block" in node["command"]
        assert node["environment"]["RAY_AUTH_MODE"] == "disabled"
    assert int(worker["deploy"]["replicas"]) >= 1  # and --scale ray-worker=N
    assert api["environment"]["STEEL_RAY_ADDRESS"] == "ray-head:6379"
    assert api["environment"]["STEEL_API_TOKEN"] == "test-token"
    assert "steel serve" in api["command"]
    gpu = trainer["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert trainer["command"].startswith("steel-train")
    # shared storage: every service mounts the same volume at the same path
    for svc in services.values():
        assert any(str(v).startswith("data:/data") or (isinstance(v, dict) and v.get("target") == "/data")
                   for v in svc["volumes"])


def test_images_build_from_existing_files(config):
    for name, svc in config["services"].items():
        dockerfile = Path(svc["build"]["context"]) / svc["build"]["dockerfile"]
        assert dockerfile.is_file(), name
        for line in dockerfile.read_text().splitlines():
            m = re.match(r"COPY\s+(?!--from)(.+)\s+\S+$", line)
            if m:
                for src in m.group(1).split():
                    assert (REPO / src).exists(), f"{dockerfile.name}: COPY {src}: no such path"
    cpu = (DOCKER / "Dockerfile").read_text()
    assert ".[ray,api]" in cpu and "python:3.11" in cpu
    assert "nvidia/cuda" in (DOCKER / "Dockerfile.cuda").read_text()


def test_the_api_refuses_to_start_without_a_token():
    res = compose_config({})
    assert res.returncode != 0 and "STEEL_API_TOKEN" in res.stderr
