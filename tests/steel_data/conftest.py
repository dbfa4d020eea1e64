from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    """One Ray head for the whole session, started with `ray start` on ports of its own (2 CPUs, a
    256 MiB object store). Tests that need more nodes add them to it."""
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    from steel_data.ray_nodes import RayNodes

    nodes = RayNodes(num_cpus=2, object_store_memory=256 * 2**20)
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture(scope="module")
def ray_driver(ray_cluster):
    """This process connected to the session's cluster as a Ray driver, for one test module (so no later
    test forks worker processes from a process holding Ray's threads)."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address=ray_cluster.address, log_to_driver=False, logging_level="WARNING")
    try:
        yield ray_cluster
    finally:
        ray.shutdown()
