"""The token stream: a reader's slice of the global sample order, from local shards or over HTTP. No torch.

The stream of a dataset is its epochs laid end to end: global position g is sample `g % N` of epoch `g // N`
(N = samples per epoch, `steel_data.order` decides which window each is). A group of `world_size` readers
(trainer ranks) that starts at position G reads it interleaved: rank r's j-th sample is position
`G + r + j * world_size`. After every rank has read k samples the group has read exactly positions
[G, G + k * world_size), so the state of the whole group is one number, and a group of another size resumes
from it with exactly the remaining samples.

A rank may split its share further over DataLoader workers: its samples are cut into chunks of `chunk`
consecutive samples and worker w of n reads chunks w, w + n, ...; a DataLoader with `batch_size == chunk`
yields the chunks back in order.

Sources: `LocalSource` (a shard folder, read in-process) and `HttpSource` (`GET /v1/datasets/{name}/samples`
with keep-alive, retries with exponential backoff and jitter, and a checksum check of every response; a body is
received straight into the sample array, in one blocking recv on plain HTTP). A pool of fetch threads keeps
`prefetch` requests ahead of the consumer.

HTTP contract of the samples endpoint (the server is `api/`): query `seed, epoch, start, count, stride`;
the body is `count x window` tokens, little-endian, of the manifest's dtype; headers `X-Steel-Dtype`,
`X-Steel-Shape` ("count,window") and `X-Steel-Windows-XXH3` (16 hex digits: the xxh3-64 hash of the body's
windows' xxh3-64 digests, each a little-endian uint64, in order; see `checksum`). xxh3 runs at ~18 GB/s where
CRC-32 runs at 2 and would cost more than moving the bytes; hashing per window lets the server answer from
digests it keeps (`WindowDigests`) instead of reading every response's tokens once more.
"""

from __future__ import annotations

import http.client
import os
import random
import socket
import struct
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, Protocol
from urllib.parse import quote, urlencode, urlsplit

import numpy as np
import orjson
import xxhash

from steel_data.order import sample_index_at
from steel_data.shards import Manifest, TokenShards

STATE_FORMAT = "steel-stream/1"
CHECKSUM_HEADER = "X-Steel-Windows-XXH3"
DTYPE_HEADER = "X-Steel-Dtype"
SHAPE_HEADER = "X-Steel-Shape"


def window_digests(rows: np.ndarray) -> np.ndarray:
    """xxh3-64 of each row of a [count, window] array (a window's tokens, little-endian), as uint64."""
    rows = np.ascontiguousarray(rows)
    if rows.ndim != 2:
        raise ValueError(f"windows must be a [count, window] array, not of shape {rows.shape}")
    if rows.shape[1] == 0:
        return np.full(len(rows), xxhash.xxh3_64_intdigest(b""), dtype=np.uint64)
    # iterating a C-contiguous 2-D array yields its rows as contiguous views: the loop runs in C
    return np.fromiter(map(xxhash.xxh3_64_intdigest, rows), dtype=np.uint64, count=len(rows))


def combine_digests(digests: np.ndarray) -> int:
    """xxh3-64 of window digests laid end to end as little-endian uint64."""
    return xxhash.xxh3_64_intdigest(np.ascontiguousarray(digests, dtype="<u8").tobytes())


def checksum(rows: np.ndarray) -> int:
    """The samples response's checksum: xxh3-64 of its windows' xxh3-64 digests (little-endian uint64, in
    order). Per window, so that a server can keep the digests of its shards and never read a response's tokens
    (`WindowDigests`); the client hashes the windows it received (each 8 KB at ~18 GB/s, plus a call each)."""
    return combine_digests(window_digests(rows))


class StreamError(RuntimeError):
    """A request that failed for good (after retries, or a 4xx that retrying cannot fix)."""


class ChecksumError(StreamError):
    """A response whose bytes do not match its checksum header (retried)."""


class _Connection(http.client.HTTPConnection):
    """A plain-HTTP keep-alive connection whose socket blocks, with the timeout kept by the kernel (SO_RCVTIMEO,
    SO_SNDTIMEO), so a response body can be received with one `recv(MSG_WAITALL)`: one system call and one
    wait for the GIL per response, where reading through a socket with a Python timeout takes a poll and a
    recv per ~64 KiB to a few hundred KiB delivered."""

    def connect(self) -> None:
        super().connect()
        if isinstance(self.timeout, (int, float)):
            seconds = max(float(self.timeout), 0.001)
            limit = struct.pack("@ll", int(seconds), int((seconds % 1) * 1e6))  # struct timeval
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
        self.sock.settimeout(None)


def _read_body_into(conn: http.client.HTTPConnection, resp: http.client.HTTPResponse, view: memoryview) -> None:
    """The body of `resp`, exactly `len(view)` bytes, into `view`. On a blocking plain socket (`_Connection`)
    of a kept-alive connection, what the response's reader has buffered is taken from it (with at most one
    more read), the rest comes in one recv(MSG_WAITALL), and the response is closed, leaving the connection
    ready for the next request; otherwise the response reads it."""
    size, got = len(view), 0
    sock = conn.sock
    direct = isinstance(conn, _Connection) and sock is not None and sock.gettimeout() is None and not resp.will_close
    if direct and size:
        got = resp.fp.readinto1(view)
    while got < size:
        n = sock.recv_into(view[got:], size - got, socket.MSG_WAITALL) if direct else resp.readinto(view[got:])
        if not n:
            raise http.client.IncompleteRead(bytes(), size - got)
        got += n
    if direct:
        resp.close()


# -- reading samples (server side and local source) -------------------------------------------------------------
class IndexCache:
    """`sample_index_at` for aligned blocks of an epoch, kept LRU per (seed, epoch, block).

    The order is computed with numpy over whole arrays; per call it has a fixed cost of about a millisecond, so
    one block of `block` samples computed once serves every request (and every rank) that falls in it.
    Thread-safe; a block computed twice by a race is harmless (the order is a pure function)."""

    def __init__(self, block: int = 16384, max_blocks: int = 64):
        self.block, self.max_blocks = block, max_blocks
        self._blocks: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, ds: TokenShards, seed: int, epoch: int, positions: np.ndarray) -> np.ndarray:
        total = ds.manifest.epoch_windows
        blocks = positions // self.block
        out = np.empty((len(positions), 2), dtype=np.int64)
        for b in np.unique(blocks):
            key = (seed, epoch, int(b))
            with self._lock:
                table = self._blocks.get(key)
                if table is not None:
                    self._blocks.move_to_end(key)
            if table is None:
                lo = int(b) * self.block
                table = sample_index_at(ds, seed, epoch, np.arange(lo, min(lo + self.block, total), dtype=np.uint64))
                with self._lock:
                    self._blocks[key] = table
                    while len(self._blocks) > self.max_blocks:
                        self._blocks.popitem(last=False)
            sel = blocks == b
            out[sel] = table[positions[sel] - int(b) * self.block]
        return out


def sample_windows(ds: TokenShards, seed: int, epoch: int, start: int, count: int, stride: int = 1,
                   cache: IndexCache | None = None) -> np.ndarray:
    """(shard, window) of samples `start, start + stride, ...` (`count` of them) of an epoch: array [count, 2]."""
    last = start + (count - 1) * stride
    if start < 0 or stride < 1 or last >= ds.manifest.epoch_windows:
        raise IndexError(f"samples {start}..{last} outside the epoch of {ds.manifest.epoch_windows} samples")
    positions = np.arange(start, last + 1, stride, dtype=np.int64)
    if cache is not None:
        return cache.lookup(ds, seed, epoch, positions)
    return sample_index_at(ds, seed, epoch, positions.astype(np.uint64))


def _maps(ds: TokenShards, shard_ids, lock: threading.Lock | None) -> dict[int, np.ndarray]:
    if lock is None:
        return {int(s): ds.tokens(int(s)) for s in shard_ids}
    with lock:
        return {int(s): ds.tokens(int(s)) for s in shard_ids}


def read_samples(ds: TokenShards, seed: int, epoch: int, start: int, count: int, stride: int = 1,
                 lock: threading.Lock | None = None, cache: IndexCache | None = None) -> np.ndarray:
    """Samples `start, start + stride, ...` (`count` of them) of an epoch: array [count, window], little-endian.

    `lock` guards `ds`'s table of open shards when threads share one `TokenShards`; `cache` keeps the order."""
    if count <= 0:
        return np.empty((0, ds.window), dtype=ds.dtype)
    idx = sample_windows(ds, seed, epoch, start, count, stride, cache)
    shard_ids = np.unique(idx[:, 0])
    maps = _maps(ds, shard_ids, lock)
    out = np.empty((count, ds.window), dtype=ds.dtype)
    w = ds.window
    for s in shard_ids:
        rows = np.nonzero(idx[:, 0] == s)[0]
        toks = maps[int(s)]
        windows = toks[: (len(toks) // w) * w].reshape(-1, w)
        out[rows] = windows[idx[rows, 1]]
    return out


def window_spans(ds: TokenShards, idx: np.ndarray, lock: threading.Lock | None = None) -> list[memoryview]:
    """The bytes of the windows `idx` ([count, 2] of shard, window) without gathering them: views into the
    shards' memory maps, in order, windows that follow each other in one shard joined into one view.

    A server hands them to its socket as they are (one vectored write: the kernel copies the shard pages straight
    into the socket), which saves gathering the 4 MB of a response into a new array first; `read_samples` stays
    the reference (parity tested)."""
    if len(idx) == 0:
        return []
    views = {s: memoryview(toks).cast("B") for s, toks in _maps(ds, np.unique(idx[:, 0]), lock).items()}
    shard, window = idx[:, 0], idx[:, 1]
    # a run ends where the next sample is not the next window of the same shard
    breaks = np.flatnonzero((shard[1:] != shard[:-1]) | (window[1:] != window[:-1] + 1)) + 1
    firsts = np.concatenate(([0], breaks))
    lasts = np.concatenate((breaks, [len(idx)])) - 1
    width = ds.window * ds.dtype.itemsize
    run_shards = shard[firsts].tolist()
    run_begins = (window[firsts] * width).tolist()
    run_ends = ((window[lasts] + 1) * width).tolist()
    return [views[s][b:e] for s, b, e in zip(run_shards, run_begins, run_ends)]


def sample_spans(ds: TokenShards, seed: int, epoch: int, start: int, count: int, stride: int = 1,
                 lock: threading.Lock | None = None, cache: IndexCache | None = None) -> list[memoryview]:
    """`read_samples`'s bytes as `window_spans` (views of the shard maps)."""
    if count <= 0:
        return []
    return window_spans(ds, sample_windows(ds, seed, epoch, start, count, stride, cache), lock)


class WindowDigests:
    """The xxh3-64 digest of every window of the shards a server has served from, so that a samples response's
    checksum (`checksum`: a hash of its windows' digests) is answered without reading its tokens.

    A shard's digests are computed the first time a request touches it (one read of the shard: about 0.1 s per
    GB at memory speed; 8 bytes per window, 1/1024 of the shard at seq_len 2048 and int32) and kept, LRU, for
    `max_shards` shards. Thread-safe; a shard digested twice by a race is harmless. The digests are of the bytes
    as the server read them then: a shard file changed afterwards under the same manifest (which the shard
    set's contract forbids) shows up as checksum errors at the client, not as silently changed samples."""

    def __init__(self, max_shards: int = 256):
        self.max_shards = max_shards
        self._tables: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def shard(self, ds: TokenShards, shard: int, lock: threading.Lock | None = None,
              compute: bool = True) -> np.ndarray | None:
        with self._lock:
            table = self._tables.get(shard)
            if table is not None:
                self._tables.move_to_end(shard)
                return table
        if not compute:
            return None
        toks = _maps(ds, [shard], lock)[shard]
        n = len(toks) // ds.window
        table = window_digests(toks[: n * ds.window].reshape(n, ds.window))
        with self._lock:
            self._tables[shard] = table
            while len(self._tables) > self.max_shards:
                self._tables.popitem(last=False)
        return table

    def checksum(self, ds: TokenShards, idx: np.ndarray, lock: threading.Lock | None = None,
                 compute: bool = True) -> int | None:
        """`checksum` of the windows `idx` ([count, 2] of shard, window), from the digests; None where a shard's
        digests are not kept yet and `compute` is False."""
        digests = np.empty(len(idx), dtype=np.uint64)
        for s in np.unique(idx[:, 0]):
            table = self.shard(ds, int(s), lock, compute)
            if table is None:
                return None
            rows = np.nonzero(idx[:, 0] == s)[0]
            digests[rows] = table[idx[rows, 1]]
        return combine_digests(digests)


class SampleSource(Protocol):
    """Global samples by position (also what steel_train's sources provide: `samples`, `describe`)."""

    manifest: Manifest
    window: int
    seq_len: int
    vocab_size: int
    dtype: np.dtype
    epoch_length: int

    def fetch(self, seed: int, epoch: int, start: int, count: int, stride: int = 1) -> np.ndarray: ...

    def samples(self, seed: int, epoch: int, start: int, count: int) -> np.ndarray: ...

    def describe(self) -> dict: ...


class _Described:
    manifest: Manifest

    def _init_shape(self) -> None:
        m = self.manifest
        self.window, self.seq_len, self.vocab_size, self.eod_id = m.window, m.seq_len, m.vocab_size, m.eod_id
        self.dtype = np.dtype(m.dtype).newbyteorder("<")
        self.epoch_length = m.epoch_windows

    def samples(self, seed: int, epoch: int, start: int, count: int) -> np.ndarray:
        """Samples [start, start + count) of an epoch: array [count, seq_len + 1]."""
        return self.fetch(seed, epoch, start, count)

    def describe(self) -> dict:
        m = self.manifest
        return {"kind": self.kind, "where": self.where, "job": m.job.get("id"), "seq_len": m.seq_len,
                "vocab_size": m.vocab_size, "epoch_samples": m.epoch_windows, "tokens": m.tokens}


class LocalSource(_Described):
    """A shard folder on this machine."""

    kind = "local"

    def __init__(self, root: str | Path):
        self.shards = TokenShards(root)
        self.manifest = self.shards.manifest
        self.where = str(root)
        self._init_shape()
        self._lock = threading.Lock()
        self._cache = IndexCache()

    def fetch(self, seed: int, epoch: int, start: int, count: int, stride: int = 1) -> np.ndarray:
        return read_samples(self.shards, seed, epoch, start, count, stride, lock=self._lock, cache=self._cache)


class HttpSource(_Described):
    """A dataset served by `steel serve`: `HttpSource("http://host:8000", "name", token=...)`.

    One keep-alive connection per thread; a request larger than `max_request_bytes` is split."""

    kind = "http"

    def __init__(self, base_url: str, dataset: str, token: str | None = None, timeout: float = 60.0,
                 retries: int = 6, backoff: float = 0.25, max_backoff: float = 10.0,
                 max_request_bytes: int = 16 << 20):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/")
        self.dataset = dataset
        self.where = f"{base_url.rstrip('/')}/v1/datasets/{dataset}"
        self.token = token if token is not None else os.environ.get("STEEL_API_TOKEN")
        self.max_request_bytes = max_request_bytes
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._local = threading.local()
        self.requests = 0
        self.retried = 0
        self.manifest = Manifest.model_validate(orjson.loads(self._get(self._path("manifest"))[0]))
        self._init_shape()

    def _path(self, tail: str, query: dict | None = None) -> str:
        path = f"{self.prefix}/v1/datasets/{quote(self.dataset, safe='')}/{tail}"
        return path + ("?" + urlencode(query) if query else "")

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else _Connection
            conn = cls(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _drop_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _get(self, path: str, into: np.ndarray | None = None,
             check: Callable[[bytes | np.ndarray, http.client.HTTPResponse], None] | None = None,
             ) -> tuple[bytes | np.ndarray, http.client.HTTPResponse]:
        """GET with retries; a 200 body is read into `into` (when given and of the right size) without copies,
        then handed to `check`, whose ChecksumError is retried like a failed request."""
        headers = {"Accept-Encoding": "identity"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        delay = self.backoff
        for attempt in range(self.retries + 1):
            problem: str
            try:
                conn = self._conn()
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                length = resp.getheader("Content-Length")
                if resp.status == 200 and into is not None and length is not None and int(length) == into.nbytes:
                    _read_body_into(conn, resp, memoryview(into).cast("B"))
                    body = into
                else:
                    body = resp.read()
                self.requests += 1
                if resp.status == 200:
                    if check is not None:
                        check(body, resp)
                    return body, resp
                body = bytes(body) if isinstance(body, np.ndarray) else body
                message = body[:500].decode(errors="replace")
                if resp.status in (408, 429) or resp.status >= 500:
                    problem = f"HTTP {resp.status}: {message}"
                else:
                    raise StreamError(f"GET {path}: HTTP {resp.status}: {message}")
            except (OSError, http.client.HTTPException, ChecksumError) as exc:
                self._drop_conn()
                problem = f"{type(exc).__name__}: {exc}"
            if attempt == self.retries:
                raise StreamError(f"GET {path} failed after {self.retries + 1} attempts; last: {problem}")
            self.retried += 1
            time.sleep(min(delay, self.max_backoff) * (0.5 + random.random()))
            delay *= 2
        raise AssertionError("unreachable")

    def fetch(self, seed: int, epoch: int, start: int, count: int, stride: int = 1) -> np.ndarray:
        per = max(1, self.max_request_bytes // (self.window * self.dtype.itemsize))
        if count > per:
            return np.concatenate([self._fetch(seed, epoch, start + k * stride, min(per, count - k), stride)
                                   for k in range(0, count, per)])
        return self._fetch(seed, epoch, start, count, stride)

    def _fetch(self, seed: int, epoch: int, start: int, count: int, stride: int) -> np.ndarray:
        query = {"seed": seed, "epoch": epoch, "start": start, "count": count}
        if stride != 1:
            query["stride"] = stride
        out = np.empty((count, self.window), dtype=self.dtype)
        path = self._path("samples", query)

        def check(body, resp) -> None:
            shape = resp.getheader(SHAPE_HEADER)
            if shape != f"{count},{self.window}" or body is not out:
                raise StreamError(f"samples response of shape {shape}, expected {count},{self.window}")
            expected = resp.getheader(CHECKSUM_HEADER)
            if expected is None:  # not worth retrying: this server (or a proxy before it) does not send it
                raise StreamError(f"GET {path}: the response has no {CHECKSUM_HEADER} header (an older server, or "
                                  "a proxy that drops headers): its samples cannot be verified")
            got = checksum(out)
            if int(expected, 16) != got:
                raise ChecksumError(f"GET {path}: checksum {got:016x} != header {expected}")

        self._get(path, into=out, check=check)
        return out

    def close(self) -> None:
        self._drop_conn()


def open_source(source: str | Path | SampleSource, dataset: str | None = None, token: str | None = None,
                **http_options) -> SampleSource:
    """A local shard folder; `http(s)://HOST/v1/datasets/NAME` (or a base URL plus `dataset`); or a source
    object. The token defaults to $STEEL_API_TOKEN."""
    if not isinstance(source, (str, Path)):
        return source
    text = str(source)
    if text.startswith(("http://", "https://")):
        if dataset is None:
            base, sep, rest = text.partition("/v1/datasets/")
            dataset = rest.strip("/").split("/")[0] if sep else ""
            if not dataset:
                raise ValueError(f"{text}: name the dataset, as http://HOST:PORT/v1/datasets/NAME")
            text = base
        return HttpSource(text, dataset, token=token, **http_options)
    return LocalSource(source)


# -- the reader -------------------------------------------------------------------------------------------------
class TokenStream:
    """Iterates one reader's samples (arrays of `window` tokens) from global position `position` on.

    `rank`/`world_size` pick the reader in its group, `worker`/`num_workers` split a rank over DataLoader workers
    (chunks of `chunk` samples). A lone reader (`num_workers == 1`) fetches at least `request_samples` per request
    (bigger requests cost the server less per token; the order is the same). `stop` (a global position) ends the
    stream; default: endless epochs.
    `state_dict()` assumes every rank of the group has read as many samples as this one (synchronous training).
    """

    def __init__(self, source: str | Path | SampleSource, dataset: str | None = None, *, seed: int = 0,
                 rank: int = 0, world_size: int = 1, worker: int = 0, num_workers: int = 1, chunk: int = 128,
                 prefetch: int = 4, fetch_threads: int = 2, position: int = 0, stop: int | None = None,
                 token: str | None = None, request_samples: int = 512, **http_options):
        if not 0 <= rank < world_size or not 0 <= worker < num_workers or chunk < 1 or prefetch < 1:
            raise ValueError("need 0 <= rank < world_size, 0 <= worker < num_workers, chunk >= 1, prefetch >= 1")
        self.source = open_source(source, dataset, token, **http_options)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        # with one worker the chunk size does not change the order, so requests can be larger
        self.worker, self.num_workers = worker, num_workers
        self.chunk = chunk if num_workers > 1 else max(chunk, request_samples)
        self.prefetch, self.fetch_threads = prefetch, max(1, fetch_threads)
        self.epoch_length = self.source.epoch_length
        if self.epoch_length < 1:
            raise ValueError("the dataset has no samples")
        self.position = position
        self.stop = stop
        self.consumed = 0  # samples this reader has yielded since `position`

    # - positions -
    def _chunk_requests(self, c: int) -> list[tuple[int, int, int, int]] | None:
        """(epoch, start, stride, count) requests for chunk c of this rank; None past `stop`."""
        j0 = c * self.chunk
        first = self.position + self.rank + j0 * self.world_size
        count = self.chunk
        if self.stop is not None:
            if first >= self.stop:
                return None
            count = min(count, (self.stop - 1 - first) // self.world_size + 1)
        n, w = self.epoch_length, self.world_size
        out = []
        g = first
        while count > 0:
            epoch, index = divmod(g, n)
            here = min(count, (n - 1 - index) // w + 1)  # samples of this epoch in the progression
            out.append((epoch, index, w, here))
            g += here * w
            count -= here
        return out

    def _fetch_chunk(self, c: int) -> np.ndarray | None:
        reqs = self._chunk_requests(c)
        if reqs is None:
            return None
        parts = [self.source.fetch(self.seed, e, s, k, stride) for e, s, stride, k in reqs]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def __iter__(self) -> Iterator[np.ndarray]:
        # iterating again continues after what this object already yielded
        done_chunks, skip = divmod(self.consumed, self.chunk)
        chunks = iter(range(self.worker + done_chunks * self.num_workers, 1 << 62, self.num_workers))
        pool = ThreadPoolExecutor(max_workers=self.fetch_threads, thread_name_prefix="steel-stream")
        pending: deque = deque()
        try:
            for _ in range(self.prefetch):
                pending.append(pool.submit(self._fetch_chunk, next(chunks)))
            while pending:
                block = pending.popleft().result()
                if block is None:
                    break
                pending.append(pool.submit(self._fetch_chunk, next(chunks)))
                for row in block:
                    if skip:
                        skip -= 1
                        continue
                    self.consumed += 1
                    yield row
        finally:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=False, cancel_futures=True)

    # - state -
    def global_position(self, consumed: int | None = None) -> int:
        k = self.consumed if consumed is None else consumed
        pos = self.position + k * self.world_size
        return pos if self.stop is None else min(pos, self.stop)

    def state_dict(self, consumed: int | None = None) -> dict:
        return make_state(self.global_position(consumed), self.epoch_length, self.seed)

    def load_state_dict(self, state: dict) -> None:
        self.position = position_of(state, self.epoch_length, self.seed)
        self.consumed = 0


def make_state(position: int, epoch_length: int, seed: int) -> dict:
    epoch, index = divmod(position, epoch_length)
    return {"format": STATE_FORMAT, "seed": seed, "epoch": epoch, "index": index, "samples_per_epoch": epoch_length}


def position_of(state: dict, epoch_length: int, seed: int) -> int:
    if state.get("format") != STATE_FORMAT:
        raise ValueError(f"not a {STATE_FORMAT} state: {state!r}")
    if state["samples_per_epoch"] != epoch_length:
        raise ValueError(f"the state is of a dataset with {state['samples_per_epoch']} samples per epoch, "
                         f"this one has {epoch_length}")
    if state["seed"] != seed:
        raise ValueError(f"the state was saved with seed {state['seed']}, this stream uses {seed}")
    return state["epoch"] * epoch_length + state["index"]
