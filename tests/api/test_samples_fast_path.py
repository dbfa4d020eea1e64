"""The samples fast path (`api.routers.datasets.SamplesFastPath`) against the FastAPI route it stands in for: two
real servers on one data root, one with the fast path and one without (STEEL_FAST_SAMPLES=0), must answer every
request alike (status, body, headers), whether the fast path serves it or hands it on."""

from __future__ import annotations

import gc
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from api.routers.datasets import SAMPLES_QUERY, parse_samples_query

from tests.api.conftest import TOKEN, Server, free_port, server_env

MAX_BYTES = 32 * 32 * 4  # STEEL_MAX_SAMPLES_BYTES of both servers: 32 samples of the tiny set's 32 tokens


@pytest.fixture(scope="module")
def pair(api_root):
    """(fast, reference) servers, reads needing the token, small response limit."""
    env = dict(STEEL_AUTH_READS="1", STEEL_MAX_SAMPLES_BYTES=str(MAX_BYTES))
    fast = Server(api_root, server_env(api_root, **env)).start()
    ref = Server(api_root, server_env(api_root, STEEL_FAST_SAMPLES="0", **env)).start()
    yield fast, ref
    fast.stop()
    ref.stop()


AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUERIES = [
    # plain and valid: the fast path serves these
    "count=16&seed=7&epoch=2&start=100", "seed=7&start=3&count=10&stride=5", "count=1", "count=32&start=0",
    "start=0&count=1&seed=9223372036854775807&epoch=2147483648",
    # refused by bounds, size or the epoch's end
    "count=0", "count=65537", "count=33", "seed=-1&count=2", "count=2&stride=0", "count=2&stride=1048577",
    "count=2&epoch=2147483649", "count=2&seed=9223372036854775808", "start=99999999&count=1", "", "seed=1",
    # unusual spellings: handed on to the route, which decides
    "count=016", "count=%31%36", "count=+16", "count=16&count=8", "count=16&extra=1", "count=%2016",
    "count=16&seed", "count=16&", "&count=16", "count=1e1", "count=16.0", "COUNT=16", "count=abc",
    "count=99999999999999999999999", "count=16&seed=%00",
]


def _answer(client: httpx.Client, method: str, url: str, headers: dict) -> tuple:
    r = client.request(method, url, headers=headers)
    base = str(client.base_url).rstrip("/")  # a redirect names its own server
    kept = {k: v.replace(base, "BASE") for k, v in r.headers.items() if k not in ("date", "server")}
    return r.status_code, kept, r.content


def _both(pair, method: str, url: str, headers: dict) -> tuple:
    fast, ref = pair
    with httpx.Client(base_url=fast.url, timeout=30) as a, httpx.Client(base_url=ref.url, timeout=30) as b:
        one, other = _answer(a, method, url, headers), _answer(b, method, url, headers)
    assert one == other, (method, url, headers, one[:2], other[:2])
    return one


def test_every_query_is_answered_as_the_route_answers(pair):
    statuses = {q: _both(pair, "GET", f"/v1/datasets/tiny/samples?{q}", AUTH)[0] for q in QUERIES}
    assert statuses["count=16&seed=7&epoch=2&start=100"] == 200 and statuses["count=33"] == 413
    assert statuses["start=99999999&count=1"] == 416 and statuses["count=0"] == 422
    assert sum(s == 200 for s in statuses.values()) >= 8  # the plain ones, and spellings the route accepts


@pytest.mark.parametrize("headers,status", [
    ({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": f"Basic {TOKEN}"}, 401),
    ({"Authorization": f"bearer {TOKEN}"}, 200), ({"Authorization": f"Bearer  {TOKEN}"}, 200), (AUTH, 200),
    ({"Authorization": f"BEARER {TOKEN}"}, 200), ({"Authorization": "Bearer"}, 401), ({"Authorization": TOKEN}, 401),
    ({"Authorization": f"Bearer {TOKEN}x"}, 401),
])
def test_auth_is_decided_alike(pair, headers, status):
    assert _both(pair, "GET", "/v1/datasets/tiny/samples?count=4&start=7", headers)[0] == status


@pytest.mark.parametrize("method,path", [
    ("GET", "/v1/datasets/nope/samples?count=1"), ("GET", "/v1/datasets/tiny/samples/?count=1"),
    ("GET", "/v1/datasets/ti%6Ey/samples?count=3"), ("GET", "/v1/datasets/..%2Ftiny/samples?count=1"),
    ("HEAD", "/v1/datasets/tiny/samples?count=1"), ("POST", "/v1/datasets/tiny/samples?count=1"),
])
def test_other_paths_and_methods_alike(pair, method, path):
    _both(pair, method, path, AUTH)


def test_a_request_with_a_body_is_handed_on(pair):
    fast, ref = pair
    answers = []
    for srv in pair:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            r = c.request("GET", "/v1/datasets/tiny/samples?count=2", headers=AUTH, content=b"x" * 10)
            answers.append((r.status_code, r.content))
    assert answers[0] == answers[1]


def test_plain_queries_are_taken_and_others_handed_on():
    """What the fast path serves itself (the rest goes to the route): the parse is exact, never lenient."""
    assert parse_samples_query(b"count=16&seed=7&epoch=2&start=100") == \
        {"count": 16, "seed": 7, "epoch": 2, "start": 100, "stride": 1}
    assert parse_samples_query(b"stride=8&count=1") == {"count": 1, "seed": 0, "epoch": 0, "start": 0, "stride": 8}
    top = {k: hi for k, (lo, hi, _) in SAMPLES_QUERY.items()}
    assert parse_samples_query("&".join(f"{k}={v}" for k, v in top.items()).encode()) == top
    for q in ["count=0", "count=65537", "seed=-1&count=2", "count=2&stride=0", "count=2&epoch=2147483649",
              "count=2&seed=9223372036854775808", "", "seed=1", "count=016", "count=%31%36", "count=+16",
              "count=16&count=8", "count=16&extra=1", "count=%2016", "count=16&seed", "count=16&", "&count=16",
              "count=1e1", "count=16.0", "COUNT=16", "count=abc", "count=\u0661"]:
        assert parse_samples_query(q.encode()) is None, q


# -- the vectored body: views of the shard maps handed to uvicorn's transport ----------------------------------
def _wide_dataset(root: Path, sample_dir: Path) -> Path:
    """A shard set with 2,048-token windows (8 KB) and enough of them for 4 MB responses: the sample's text
    twelve times over."""
    import orjson

    from steel_data.sample import read_texts
    from steel_data.tokenize import TokenizeConfig, tokenize

    texts = read_texts(sample_dir / "input")
    src = root / "wide-src"
    src.mkdir(parents=True)
    (src / "docs.jsonl").write_bytes(b"".join(orjson.dumps({"text": t}) + b"\n" for t in texts * 12))
    out = root / "datasets" / "wide"
    tokenize(TokenizeConfig(inputs=[str(src)], output=out, seq_len=2047, workers=1, shard_bytes=2_000_000))
    return out


class InProcessServer:
    """`serving_app` under a real uvicorn (uvloop, httptools: what `steel serve` picks) in a thread of this
    process, so a test can look at the app object while it serves."""

    def __init__(self, root: Path, **env):
        import uvicorn

        from api.app import serving_app
        from api.settings import Settings

        self.app = serving_app(Settings.from_env(server_env(root, **env)), start_runner=False)
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, loop="uvloop",
                                                   http="httptools", log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "InProcessServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def wide_root(tmp_path_factory, sample_dir):
    root = tmp_path_factory.mktemp("wide")
    _wide_dataset(root, sample_dir)
    return root


def _get_all(url: str, queries: list[str]) -> list[tuple[int, dict, bytes]]:
    with httpx.Client(base_url=url, timeout=60) as c:
        return [(r.status_code, dict(r.headers), r.content)
                for r in (c.get(f"/v1/datasets/wide/samples?{q}") for q in queries)]


def test_vectored_bodies_are_the_gathered_samples(wide_root):
    """Under uvicorn the fast path writes views of the shard maps (the installed uvicorn still has what
    `_uvicorn_cycle` relies on: else this fails, not silently gathers); the bytes and the checksum header are
    those of `read_samples` (the fast path's checksum from its window digests, the route's from the gathered
    windows); with STEEL_VECTORED_SAMPLES=0 the same answers come from a gathered body."""
    from steel_data.shards import TokenShards
    from steel_data.stream import CHECKSUM_HEADER, checksum, read_samples

    shards = TokenShards(wide_root / "datasets" / "wide")
    n = shards.manifest.epoch_windows
    assert n > 600
    plan = [(3, 0, 0, 512, 1), (3, 1, 100, 200, 2), (9, 0, n - 1, 1, 1), (0, 7, 5, 60, 9)]
    queries = [f"seed={s}&epoch={e}&start={a}&count={c}&stride={k}" for s, e, a, c, k in plan]
    with InProcessServer(wide_root) as srv:
        vectored = _get_all(srv.url, queries)
        assert srv.app.vectored_responses == len(queries)
        # the app's start-up put what it built out of the collector's sight (gc.freeze); given back for the tests
        assert gc.get_freeze_count() > 0
    gc.unfreeze()
    with InProcessServer(wide_root, STEEL_VECTORED_SAMPLES="0") as srv:
        gathered = _get_all(srv.url, queries)
        assert srv.app.vectored_responses == 0
    for (seed, epoch, start, count, stride), one, other in zip(plan, vectored, gathered):
        rows = read_samples(shards, seed, epoch, start, count, stride)
        want = rows.tobytes()
        assert one[0] == other[0] == 200
        assert one[2] == other[2] == want
        assert one[1][CHECKSUM_HEADER.lower()] == other[1][CHECKSUM_HEADER.lower()] == f"{checksum(rows):016x}"
        assert int(one[1]["content-length"]) == len(want)


def test_vectored_bodies_survive_a_slow_reader_and_keep_alive(wide_root):
    """Several 4 MB responses on one kept-alive connection to a client that reads in small pieces with pauses
    (the transport's buffer fills, uvicorn waits for it to drain): every body arrives whole and in order, and
    a request sent after them on the same connection is answered."""
    from steel_data.shards import TokenShards
    from steel_data.stream import read_samples

    shards = TokenShards(wide_root / "datasets" / "wide")
    with InProcessServer(wide_root) as srv, socket.create_connection(("127.0.0.1", srv.port), timeout=60) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        reader = sock.makefile("rb")
        for i in range(3):
            sock.sendall(f"GET /v1/datasets/wide/samples?seed=5&start={i * 50}&count=500 HTTP/1.1\r\n"
                         f"Host: x\r\n\r\n".encode())
            status = reader.readline()
            headers = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                key, _, value = line.decode().partition(":")
                headers[key.strip().lower()] = value.strip()
            assert status.startswith(b"HTTP/1.1 200"), status
            size, body = int(headers["content-length"]), bytearray()
            while len(body) < size:
                piece = reader.read1(min(32 << 10, size - len(body)))
                assert piece, "connection closed mid-body"
                body += piece
                if len(body) % (1 << 20) < (32 << 10):
                    time.sleep(0.02)
            assert bytes(body) == read_samples(shards, 5, 0, i * 50, 500).tobytes()
        sock.sendall(b"GET /v1/datasets/wide/manifest HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reader.readline().startswith(b"HTTP/1.1 200")
        assert srv.app.vectored_responses == 3
