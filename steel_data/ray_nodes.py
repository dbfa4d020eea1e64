"""Ray nodes on this machine, started with `ray start` on ports of their own: a head and extra nodes.

What the tests and `bench/ray.py` use to run a real multi-node Ray cluster on one machine (every node
its own raylet and object store), and a way to try the Ray executor across nodes without a cluster:

    with RayNodes() as nodes:              # a head: 1 CPU, 256 MiB object store
        nodes.add_node(num_cpus=1)        # a second node joins it
        # steel run ... --executor ray --ray-address  <nodes.address>
        nodes.kill_node(1)                # the second node dies: raylet, object store and workers

Each node is one `ray start --block` process group started here; it is stopped by killing that group
(its worker processes exit when their raylet does). Nothing else on the machine is touched: no
`ray stop`. Every process gets RAY_AUTH_MODE=disabled and fast node-failure detection. No `ray` import.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

NODE_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    # a dead node is noticed in about two seconds (defaults: tens of seconds)
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_cli() -> list[str]:
    exe = Path(sys.executable).with_name("ray")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]


@dataclass
class Node:
    proc: subprocess.Popen
    log: Path
    num_cpus: int

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


class RayNodes:
    """A Ray head on this machine, and any nodes added to it; `address` is what drivers connect to."""

    def __init__(self, num_cpus: int = 1, object_store_memory: int = 256 * 2**20, start_timeout: float = 120):
        self.object_store_memory = object_store_memory
        self.start_timeout = start_timeout
        self.tmp = Path(tempfile.mkdtemp(prefix="steel-ray-", dir="/tmp"))  # short: Ray's socket paths
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[Node] = []
        self.env = dict(os.environ, **NODE_ENV)
        self._start(["--head", "--port", str(self.port), "--include-dashboard", "false",
                     "--dashboard-port", str(free_port()), "--temp-dir", str(self.tmp)], num_cpus, "head")
        self._wait(lambda: self._port_open(self.port), "the head's GCS port")

    def _start(self, args: list[str], num_cpus: int, name: str) -> Node:
        log = self.tmp / f"{name}.log"
        cmd = [*ray_cli(), "start", *args, "--node-ip-address", "127.0.0.1",
               "--num-cpus", str(num_cpus), "--object-store-memory", str(self.object_store_memory),
               "--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
               "--runtime-env-agent-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
               "--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port()),
               "--min-worker-port", "0", "--max-worker-port", "0", "--disable-usage-stats", "--block"]
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, env=self.env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        node = Node(proc, log, num_cpus)
        self.nodes.append(node)
        return node

    def add_node(self, num_cpus: int = 1) -> int:
        """Start another node joined to the head; returns its index (for `kill_node`)."""
        self._start(["--address", self.address], num_cpus, f"node{len(self.nodes)}")
        return len(self.nodes) - 1

    def wait_for_nodes(self, count: int, alive_nodes) -> None:
        """Wait until `alive_nodes()` (e.g. a driver's count of live Ray nodes) reaches `count`."""
        self._wait(lambda: alive_nodes() >= count, f"{count} live Ray nodes")

    def kill_node(self, index: int) -> None:
        """SIGKILL a node's whole process group: its raylet and object store die at once, as in a crash."""
        node = self.nodes[index]
        try:
            os.killpg(node.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        node.proc.wait()

    def stop(self) -> None:
        for i in reversed(range(len(self.nodes))):
            self.kill_node(i)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(f"--- {n.log.name}\n{n.log.read_text(errors='replace')[-3000:]}" for n in self.nodes
                         if n.log.exists())

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not ready():
            if any(not n.alive for n in self.nodes):
                raise RuntimeError(f"a Ray node exited while waiting for {what}:\n{self.logs()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}:\n{self.logs()}")
            time.sleep(0.2)

    @staticmethod
    def _port_open(port: int) -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    def __enter__(self) -> "RayNodes":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
