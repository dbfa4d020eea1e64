"""A real server for the API tests: uvicorn on a free loopback port, a real SQLite file, real HTTP clients.

`server` (one per session) serves a data root holding the built-in sample, a larger generated input, a token
shard set under datasets/, and a symlink that escapes the root. Tests that kill or slow the server start their
their own `Server`. `postgres` is a throwaway PostgreSQL server (one per session, started on first use;
skipped where its binaries are not installed) and `pg_url` a fresh, empty database on it for one test.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

for _module in ("fastapi", "uvicorn", "httpx"):  # the `api` extra (`make test` installs it)
    pytest.importorskip(_module, reason="the API tests need the api extra: pip install -e '.[api,dev]'")

import httpx  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus"
TOKEN = "test-token-0123456789"
TEXT_RECIPE = REPO / "recipes" / "steel-text.yaml"
# cheap ops of every kind (mapper, filter, dedup) so a job takes seconds
TEST_RECIPE = {
    "project_name": "api-test",
    "text_keys": "text",
    "process": [
        {"whitespace_normalization_mapper": {}},
        {"clean_links_mapper": {}},
        {"text_length_filter": {"min_len": 20, "max_len": 100000}},
        {"special_characters_filter": {"min_ratio": 0.0, "max_ratio": 0.3}},
        {"document_simhash_deduplicator": {"tokenization": "character", "window_size": 4, "num_blocks": 6,
                                           "hamming_distance": 4}},
    ],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    root: Path
    env: dict
    port: int = 0
    proc: subprocess.Popen | None = None
    log: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "Server":
        self.port = free_port()
        self.log = self.root.parent / f"server-{self.port}.log"
        env = {**os.environ, **self.env}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", "api.app:app_from_env", "--host", "127.0.0.1",
                 "--port", str(self.port), "--log-level", "warning", "--timeout-graceful-shutdown", "3"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not come up: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs (a crash)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def make_root(root: Path, sample_dir: Path) -> Path:
    """The data root: sample input and models, a bigger input, a dataset, an escaping symlink."""
    from steel_data.sample import write_sample

    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(sample_dir / "input", root / "input")
    shutil.copytree(sample_dir / "models", root / "models")
    write_sample(root / "big", n_docs=2400, seed=11)
    (root / "escape").symlink_to("/etc")
    (root / "input-link").symlink_to(root / "input")
    return root


def make_dataset(root: Path, name: str = "tiny", seq_len: int = 31) -> Path:
    """A real token shard set (Qwen tokenizer) from the sample's documents."""
    import orjson

    from steel_data.sample import read_texts
    from steel_data.tokenize import TokenizeConfig, tokenize

    src = root / "_tok_src"
    src.mkdir(parents=True, exist_ok=True)
    docs = read_texts(root / "input")
    for k in range(4):  # four files: several shards
        part = docs[k::4]
        (src / f"docs-{k}.jsonl").write_bytes(b"".join(orjson.dumps({"text": t}) + b"\n" for t in part))
    out = root / "datasets" / name
    tokenize(TokenizeConfig(inputs=[str(src)], output=out, seq_len=seq_len, workers=1, shard_bytes=20_000))
    return out


def server_env(root: Path, **extra) -> dict:
    """The root first (relative paths land there), then the shared corpus, read-only, where it exists."""
    roots = [str(root)] + ([str(CORPUS)] if CORPUS.is_dir() else [])
    env = {"STEEL_DATA_ROOTS": os.pathsep.join(roots), "STEEL_API_TOKEN": TOKEN, "STEEL_RUNNER_POLL_S": "0.1",
           "STEEL_JOB_WORKERS": "1", "STEEL_MAX_RUNNING_JOBS": "2"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture(scope="session")
def postgres():
    from tests.api.postgres import PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("the postgresql:// job store tests need PostgreSQL's server binaries (initdb, pg_ctl: Debian's "
                    "postgresql package; .ci/run installs it)")
    pytest.importorskip("psycopg", reason="the postgresql:// job store needs psycopg (the api extra)")
    srv = PostgresServer(bin_dir).start()
    yield srv
    srv.stop()


@pytest.fixture()
def pg_url(postgres):
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture(scope="session")
def api_root(tmp_path_factory, sample_dir) -> Path:
    root = make_root(tmp_path_factory.mktemp("api") / "root", sample_dir)
    make_dataset(root)
    return root


@pytest.fixture(scope="session")
def server(api_root):
    srv = Server(api_root, server_env(api_root)).start()
    yield srv
    srv.stop()


@pytest.fixture()
def client(server):
    with server.client() as c:
        yield c


def rows(outdir: Path) -> list[tuple]:
    """(id, text) of a run's output, in order."""
    from steel_data.executor import read_output

    t = read_output(outdir, ["id", "text"])
    return list(zip(t.column("id").to_pylist(), t.column("text").to_pylist()))


@pytest.fixture(scope="session")
def text_job(server, tmp_path_factory):
    """The text recipe over the sample, submitted through the Python client, and the same run by `steel run`."""
    from steel_data.cli import main as steel_main
    from steel_data.client import SteelClient

    root = server.root
    api = SteelClient(server.url, TOKEN)
    job = api.submit(TEXT_RECIPE, ["input"], "out/text", set={"perplexity_filter": {"model_dir": "models"}},
                     shard_size=200)
    ref = tmp_path_factory.mktemp("ref") / "out"
    assert steel_main(["run", str(TEXT_RECIPE), "-i", str(root / "input"), "-o", str(ref), "--shard-size", "200",
                       "--workers", "1", "--no-progress", "--set",
                       f"perplexity_filter.model_dir={root / 'models'}"]) == 0
    final = api.wait(job["id"], timeout=120)
    return final, ref


def wait_state(client: httpx.Client, job_id: str, states=("succeeded", "failed", "cancelled"),
               timeout: float = 90.0, until=None) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in states or (until is not None and until(job)):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s: {job}")
        time.sleep(0.1)


def submit(client: httpx.Client, **body) -> str:
    payload = {"recipe": TEST_RECIPE, "inputs": ["input"], **body}
    r = client.post("/v1/jobs", json=payload)
    assert r.status_code == 202, r.text
    return r.json()["id"]
