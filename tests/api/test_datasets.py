"""Datasets over HTTP: manifest, samples (bytes, checksum header, stride), raw files with Range, the stream client
(retries, checksum, 8 concurrent clients), and refusals."""

from __future__ import annotations

import http.server
import threading

import httpx
import numpy as np
import pytest
import xxhash

from steel_data.order import samples
from steel_data.shards import TokenShards
from steel_data.stream import HttpSource, StreamError, TokenStream, open_source

from tests.api.conftest import TOKEN


@pytest.fixture(scope="module")
def ds_path(server):
    return server.root / "datasets" / "tiny"


def test_list_and_manifest(client, ds_path):
    listed = client.get("/v1/datasets").json()["datasets"]
    assert [d["name"] for d in listed] == ["tiny"]
    m = client.get("/v1/datasets/tiny/manifest").json()
    local = TokenShards(ds_path).manifest
    assert m["epoch_windows"] == local.epoch_windows and m["seq_len"] == 31 and len(m["shards"]) == 4
    assert client.get("/v1/datasets/nope/manifest").status_code == 404


def test_samples_bytes_checksum_and_stride(client, ds_path):
    r = client.get("/v1/datasets/tiny/samples", params={"seed": 7, "epoch": 2, "start": 100, "count": 16})
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    assert r.headers["x-steel-shape"] == "16,32" and r.headers["x-steel-dtype"] == "int32"
    got = np.frombuffer(r.content, "<i4").reshape(16, 32)
    # the checksum, from the contract's words: xxh3-64 of the windows' xxh3-64 digests, little-endian uint64
    digests = b"".join(xxhash.xxh3_64_intdigest(r.content[i:i + 128]).to_bytes(8, "little")
                       for i in range(0, len(r.content), 128))
    assert int(r.headers["x-steel-windows-xxh3"], 16) == xxhash.xxh3_64_intdigest(digests)
    np.testing.assert_array_equal(got, samples(ds_path, 7, 2, 100, 16))
    r = client.get("/v1/datasets/tiny/samples", params={"seed": 7, "start": 3, "count": 10, "stride": 5})
    np.testing.assert_array_equal(np.frombuffer(r.content, "<i4").reshape(10, 32),
                                  samples(ds_path, 7, 0, 3, 50)[::5])
    n = TokenShards(ds_path).manifest.epoch_windows
    assert client.get("/v1/datasets/tiny/samples", params={"start": n - 1, "count": 2}).status_code == 416
    assert client.get("/v1/datasets/tiny/samples", params={"count": 0}).status_code == 422
    assert client.get("/v1/datasets/tiny/samples", params={"count": 10, "seed": -1}).status_code == 422


def test_raw_files_with_range(client, ds_path):
    whole = (ds_path / "shard-00001.bin").read_bytes()
    r = client.get("/v1/datasets/tiny/files/shard-00001.bin")
    assert r.status_code == 200 and r.content == whole
    assert r.headers.get("accept-ranges") == "bytes"
    r = client.get("/v1/datasets/tiny/files/shard-00001.bin", headers={"Range": "bytes=100-1123"})
    assert r.status_code == 206 and r.content == whole[100:1124]
    assert r.headers["content-range"] == f"bytes 100-1123/{len(whole)}"
    r = client.get("/v1/datasets/tiny/files/shard-00001.bin", headers={"Range": f"bytes=-{10}"})
    assert r.status_code == 206 and r.content == whole[-10:]
    r = client.get("/v1/datasets/tiny/files/shard-00001.bin", headers={"Range": f"bytes={len(whole) + 5}-"})
    assert r.status_code == 416
    assert client.get("/v1/datasets/tiny/files/manifest.json").json()["format"] == "steel-token-shards"
    # only the manifest's files: not the tokenize job's work folder, not anything else
    for name in ("_work", "plan.json", "..%2Fmanifest.json", "shard-00009.bin", ".hidden"):
        assert client.get(f"/v1/datasets/tiny/files/{name}").status_code in (404, 422), name


def test_dataset_names_cannot_escape(client, server):
    (server.root / "datasets" / "evil").symlink_to("/etc")
    try:
        for name in ("..", "%2e%2e", "evil", "..%2Fdatasets%2Ftiny", "tiny%00", ".steel-api"):
            r = client.get(f"/v1/datasets/{name}/manifest")
            assert r.status_code in (404, 422), (name, r.status_code)
    finally:
        (server.root / "datasets" / "evil").unlink()


def test_stream_client_over_http_equals_local(server, ds_path):
    src = open_source(f"{server.url}/v1/datasets/tiny", token=TOKEN)
    assert isinstance(src, HttpSource) and src.describe()["kind"] == "http"
    remote = np.stack(list(TokenStream(src, seed=3, rank=1, world_size=3, chunk=16, stop=400)))
    local = np.stack(list(TokenStream(ds_path, seed=3, rank=1, world_size=3, chunk=16, stop=400)))
    np.testing.assert_array_equal(remote, local)
    np.testing.assert_array_equal(src.samples(3, 0, 0, 10), samples(ds_path, 3, 0, 0, 10))
    whole = np.stack(list(TokenStream(src, seed=3, stop=5000)))  # 512-sample requests, across epochs
    np.testing.assert_array_equal(whole, np.stack(list(TokenStream(ds_path, seed=3, stop=5000))))
    small = HttpSource(server.url, "tiny", max_request_bytes=32 * 4 * 7)  # split into requests of 7 samples
    np.testing.assert_array_equal(small.fetch(3, 0, 5, 30, stride=2), samples(ds_path, 3, 0, 5, 60)[::2])
    with pytest.raises(StreamError, match="404"):
        HttpSource(server.url, "nope", retries=0)


def test_eight_concurrent_clients_read_the_global_order(server, ds_path):
    world, per = 8, 120
    results: list = [None] * world
    errors: list = []

    def rank(r):
        try:
            s = TokenStream(f"{server.url}/v1/datasets/tiny", seed=11, rank=r, world_size=world, chunk=24,
                            prefetch=3, token=TOKEN)
            it = iter(s)
            results[r] = np.stack([next(it) for _ in range(per)])
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    merged = np.empty((world * per, 32), np.int32)
    for r in range(world):
        merged[r::world] = results[r]
    np.testing.assert_array_equal(merged, samples(ds_path, 11, 0, 0, world * per))


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Proxies to the real server; the first samples requests get the faults listed: "503", "corrupt" (one bit of
    the body flipped), "strip" (no checksum header)."""

    upstream = ""
    faults: list = []

    def do_GET(self):
        r = httpx.get(self.upstream + self.path)
        body, status = r.content, r.status_code
        fault = self.faults.pop(0) if "/samples" in self.path and self.faults else None
        if fault == "503":
            body, status = b'{"detail": "try later"}', 503
        elif fault == "corrupt":
            body = bytes([body[0] ^ 1]) + body[1:]
        self.send_response(status)
        for key in ("content-type", "x-steel-windows-xxh3", "x-steel-shape", "x-steel-dtype"):
            if key in r.headers and status == 200 and not (fault == "strip" and key == "x-steel-windows-xxh3"):
                self.send_header(key, r.headers[key])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_retries_with_backoff_and_checksum(server, ds_path):
    _Flaky.upstream, _Flaky.faults = server.url, ["503", "corrupt", "503"]
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        src = HttpSource(f"http://127.0.0.1:{proxy.server_address[1]}", "tiny", backoff=0.01)
        got = src.fetch(1, 0, 0, 8)
        np.testing.assert_array_equal(got, samples(ds_path, 1, 0, 0, 8))
        assert src.retried == 3
        _Flaky.faults = ["strip"]  # cannot be verified: refused at once, not retried
        src = HttpSource(f"http://127.0.0.1:{proxy.server_address[1]}", "tiny", backoff=0.01)
        with pytest.raises(StreamError, match="no X-Steel-Windows-XXH3 header"):
            src.fetch(1, 0, 0, 8)
        assert src.retried == 0 and _Flaky.faults == []
        _Flaky.faults = ["503"] * 10
        with pytest.raises(StreamError, match="after 3 attempts"):
            HttpSource(f"http://127.0.0.1:{proxy.server_address[1]}", "tiny", backoff=0.01,
                       retries=2).fetch(1, 0, 0, 8)
    finally:
        proxy.shutdown()


class _KeepAliveFaults(http.server.BaseHTTPRequestHandler):
    """An HTTP/1.1 keep-alive proxy to the real server whose first samples answers break off inside the body:
    "cut" closes the connection halfway, "stall" stops sending halfway for `stall_s` seconds."""

    protocol_version = "HTTP/1.1"
    upstream = ""
    faults: list = []
    stall_s = 1.5

    def do_GET(self):
        r = httpx.get(self.upstream + self.path)
        fault = self.faults.pop(0) if "/samples" in self.path and self.faults else None
        self.send_response(r.status_code)
        for key in ("content-type", "x-steel-windows-xxh3", "x-steel-shape", "x-steel-dtype"):
            if key in r.headers:
                self.send_header(key, r.headers[key])
        self.send_header("Content-Length", str(len(r.content)))
        self.end_headers()
        if fault is None:
            self.wfile.write(r.content)
            return
        self.wfile.write(r.content[: len(r.content) // 2])
        self.wfile.flush()
        if fault == "stall":
            import time

            time.sleep(self.stall_s)
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_a_body_broken_off_on_a_kept_alive_connection_is_fetched_again(server, ds_path):
    """The client reads a 200 body straight from its socket (one blocking recv with the kernel's timeout): a
    connection closed halfway and one that stalls past the timeout both end in a retry, not a hang or short
    data."""
    import socket

    _KeepAliveFaults.upstream, _KeepAliveFaults.faults = server.url, ["cut", "stall"]
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveFaults)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        src = HttpSource(f"http://127.0.0.1:{proxy.server_address[1]}", "tiny", timeout=0.5, backoff=0.01)
        np.testing.assert_array_equal(src.fetch(2, 0, 10, 200), samples(ds_path, 2, 0, 10, 200))
        assert src.retried == 2  # the cut answer, the stalled one
        sock = src._local.conn.sock  # the kept-alive connection blocks; the kernel keeps its timeout
        assert sock.gettimeout() is None and sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16) != bytes(16)
        np.testing.assert_array_equal(src.fetch(2, 1, 0, 50), samples(ds_path, 2, 1, 0, 50))
        assert src.retried == 2
    finally:
        proxy.shutdown()
