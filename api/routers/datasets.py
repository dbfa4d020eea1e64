"""/v1/datasets: token shard sets for training: manifest, samples in the global order, raw files (Range).

The samples route is the hot path of training over HTTP. `SamplesFastPath` (an ASGI middleware in front of the
FastAPI app, `api.app.serving_app`) answers the plain, valid, authorised samples requests without FastAPI's
per-request machinery (on this project's 2-core machine a request costs the server about 0.9 ms of CPU besides
its bytes through the route, 0.5 ms through the fast path), and under uvicorn hands the body to the connection as
views of the shard files' pages instead of gathering it (`samples_spans_payload`; a 4 MB gather costs about
1 ms); everything else (any error, any unusual spelling of the query) goes to the FastAPI route, which stays the
documented reference and builds its body with `samples_payload`. tests/api/test_samples_fast_path.py compares
their answers.
"""

from __future__ import annotations

import re
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from fastapi.responses import FileResponse

from steel_data.shards import Manifest
from steel_data.stream import (
    CHECKSUM_HEADER, DTYPE_HEADER, SHAPE_HEADER, checksum, read_samples, sample_windows, window_spans,
)

from api.datasets import NAME_PATTERN, DatasetNotFound, OpenDataset
from api.deps import AppContext, Ctx, bearer_matches, require_read
from api.schemas import DatasetList, DatasetSummary, ErrorDetail, json_errors

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], dependencies=[Depends(require_read)])
ERRORS = {401: {"model": ErrorDetail}, 404: {"model": ErrorDetail}, 422: {"model": ErrorDetail}}
Name = Annotated[str, Path(pattern=NAME_PATTERN, description="dataset (folder) name")]
MAX_POSITION = 2**62
# the samples query's integer parameters: (lowest, highest, default; None: required)
SAMPLES_QUERY = {"count": (1, 65536, None), "seed": (0, 2**63 - 1, 0), "epoch": (0, 2**31, 0),
                 "start": (0, MAX_POSITION, 0), "stride": (1, 2**20, 1)}
SAMPLES_MEDIA_TYPE = "application/octet-stream"


def _open(ctx, name: str) -> OpenDataset:
    try:
        return ctx.datasets.get(name)
    except DatasetNotFound as exc:
        raise HTTPException(404, str(exc)) from None


def _summary(ds: OpenDataset) -> DatasetSummary:
    m = ds.shards.manifest
    return DatasetSummary(name=ds.name, docs=m.docs, tokens=m.tokens, seq_len=m.seq_len, window=m.window,
                          dtype=m.dtype, epoch_windows=m.epoch_windows, shards=len(m.shards), files=ds.files)


@router.get("", response_model=DatasetList, responses={401: {"model": ErrorDetail}}, summary="Datasets served")
def list_datasets(ctx: Ctx) -> DatasetList:
    out = []
    for name in ctx.datasets.names():
        try:
            out.append(_summary(ctx.datasets.get(name)))
        except DatasetNotFound:
            continue
    return DatasetList(datasets=out)


@router.get("/{name}/manifest", response_model=Manifest, responses=ERRORS, summary="The shard set's manifest")
def manifest(name: Name, ctx: Ctx) -> Manifest:
    return _open(ctx, name).shards.manifest


@router.get(
    "/{name}/samples", response_class=Response, responses={**json_errors(401, 404, 413, 416, 422), 200: {
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "description": "count x window tokens, little-endian, of the manifest's dtype",
        "headers": {CHECKSUM_HEADER: {"description": "16 hex digits: xxh3-64 of the body's windows' xxh3-64 "
                                                     "digests, each a little-endian uint64, in order",
                                      "schema": {"type": "string"}},
                    DTYPE_HEADER: {"description": "token dtype", "schema": {"type": "string"}},
                    SHAPE_HEADER: {"description": "count,window", "schema": {"type": "string"}}}}},
    summary="Samples of an epoch in the global order")
def samples(name: Name, ctx: Ctx,
            count: Annotated[int, Query(ge=SAMPLES_QUERY["count"][0], le=SAMPLES_QUERY["count"][1],
                                        description="samples to return")],
            seed: Annotated[int, Query(ge=SAMPLES_QUERY["seed"][0], le=SAMPLES_QUERY["seed"][1])] = 0,
            epoch: Annotated[int, Query(ge=SAMPLES_QUERY["epoch"][0], le=SAMPLES_QUERY["epoch"][1])] = 0,
            start: Annotated[int, Query(ge=SAMPLES_QUERY["start"][0], le=SAMPLES_QUERY["start"][1],
                                        description="first sample of the epoch")] = 0,
            stride: Annotated[int, Query(ge=SAMPLES_QUERY["stride"][0], le=SAMPLES_QUERY["stride"][1],
                                         description="distance between samples (a rank's interleaved share: "
                                                     "the world size)")] = 1,
            ) -> Response:
    """Samples `start, start + stride, ..., start + (count - 1) * stride` of epoch `epoch` under `seed`: the
    same bytes for the same query on any machine and any world size (`steel_data.order`)."""
    ds = _open(ctx, name)
    problem = samples_refusal(ctx, ds, count, start, stride)
    if problem is not None:
        raise HTTPException(*problem)
    body, headers = samples_payload(ds, seed, epoch, start, count, stride)
    return Response(body, media_type=SAMPLES_MEDIA_TYPE, headers=headers)


def samples_refusal(ctx: AppContext, ds: OpenDataset, count: int, start: int, stride: int) -> tuple[int, str] | None:
    """(status, detail) when a samples request within the query's bounds cannot be served, else None."""
    m = ds.shards.manifest
    last = start + (count - 1) * stride
    if last >= m.epoch_windows:
        return 416, f"sample {last} is past the epoch's {m.epoch_windows} samples"
    if count * m.window * ds.shards.dtype.itemsize > ctx.settings.max_samples_bytes:
        return 413, (f"{count} samples exceed the server's response limit of {ctx.settings.max_samples_bytes} "
                     f"bytes; ask for fewer")
    return None


def samples_payload(ds: OpenDataset, seed: int, epoch: int, start: int, count: int,
                    stride: int) -> tuple[memoryview, dict[str, str]]:
    """The body (the gathered tokens, not copied again) and the headers of a samples response, the checksum
    computed from the gathered windows themselves (the reference for `samples_spans_payload`). Blocking."""
    tokens = read_samples(ds.shards, seed, epoch, start, count, stride, lock=ds.lock, cache=ds.cache)
    return memoryview(tokens).cast("B"), _samples_headers(ds, count, checksum(tokens))


def samples_spans_payload(ds: OpenDataset, seed: int, epoch: int, start: int, count: int,
                          stride: int, compute: bool = True) -> tuple[list[memoryview], int, dict[str, str]] | None:
    """`samples_payload` without touching the tokens: the body as views into the shard maps (`window_spans`), its
    length, and the same headers, the checksum answered from the dataset's window digests (`WindowDigests`).
    The first request into a shard digests the shard (blocking); with `compute=False` it returns None instead."""
    idx = sample_windows(ds.shards, seed, epoch, start, count, stride, cache=ds.cache)
    digest = ds.digests.checksum(ds.shards, idx, lock=ds.lock, compute=compute)
    if digest is None:
        return None
    spans = window_spans(ds.shards, idx, lock=ds.lock)
    return spans, count * ds.shards.window * ds.shards.dtype.itemsize, _samples_headers(ds, count, digest)


def _samples_headers(ds: OpenDataset, count: int, digest: int) -> dict[str, str]:
    m = ds.shards.manifest
    return {CHECKSUM_HEADER: f"{digest:016x}", DTYPE_HEADER: m.dtype, SHAPE_HEADER: f"{count},{m.window}",
            "Cache-Control": "no-store"}


_DEFER = object()  # `_answer` on the event loop: this needs a thread
_SAMPLES_PATH = re.compile(r"/v1/datasets/(" + NAME_PATTERN.strip("^$") + r")/samples")
_PLAIN_INT = re.compile(r"0|[1-9][0-9]{0,18}")


def parse_samples_query(query: bytes) -> dict[str, int] | None:
    """The samples query when it is spelled plainly (each known key at most once, `count` given, every value a
    decimal integer without sign, leading zero or escape, within its bounds); None for anything else."""
    values: dict[str, int] = {}
    for part in query.split(b"&"):
        key, eq, value = part.partition(b"=")
        try:
            key_s, value_s = key.decode("ascii"), value.decode("ascii")
        except UnicodeDecodeError:
            return None
        bounds = SAMPLES_QUERY.get(key_s)
        if not eq or bounds is None or key_s in values or not _PLAIN_INT.fullmatch(value_s):
            return None
        number = int(value_s)
        if not bounds[0] <= number <= bounds[1]:
            return None
        values[key_s] = number
    if "count" not in values:
        return None
    return {key: values.get(key, bounds[2]) for key, bounds in SAMPLES_QUERY.items()}


class SamplesFastPath:
    """ASGI middleware: serves `GET /v1/datasets/{name}/samples` itself when the request is plain, valid and
    authorised and the dataset can answer it; passes every other request on, unchanged, to `app`.

    It only ever answers what the FastAPI route would answer, with the same status, body and headers: under
    uvicorn the body goes out as views of the shard maps and the checksum comes from the dataset's window digests
    (`samples_spans_payload`), elsewhere the tokens are gathered and hashed as the route does."""

    def __init__(self, app, ctx: AppContext):
        self.app = app
        self.ctx = ctx
        self.vectored_responses = 0  # bodies written from the shard maps without a gather (`_uvicorn_cycle`)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            found = _SAMPLES_PATH.fullmatch(scope["path"])
            if found is not None:
                query = parse_samples_query(scope["query_string"])
                if query is not None and self._plain_and_authorised(scope["headers"]):
                    cycle = _uvicorn_cycle(send) if self.ctx.settings.vectored_samples else None
                    # Views and a checksum from kept digests take a quarter of a millisecond of Python and numpy
                    # (which would hold the GIL in a thread too): on the event loop, saving the thread hand-off
                    # (0.15 ms of a request's 0.5); what may block (digesting a shard the first time, or the
                    # gather of the fallback) goes to a thread.
                    answer = self._answer(found.group(1), query, True, inline=True) if cycle is not None else _DEFER
                    if answer is _DEFER:
                        answer = await anyio.to_thread.run_sync(self._answer, found.group(1), query, cycle is not None)
                    if answer is not None:
                        return await self._send(send, cycle, *answer)
        return await self.app(scope, receive, send)

    def _plain_and_authorised(self, headers) -> bool:
        """No request body, and one Authorization header presenting the token where reads need it (decided by
        `bearer_matches`, as the route's dependency decides)."""
        if any(key in (b"content-length", b"transfer-encoding") and value != b"0" for key, value in headers):
            return False
        settings = self.ctx.settings
        if settings.token is None or not settings.auth_reads:
            return True
        auth = [value for key, value in headers if key == b"authorization"]
        if len(auth) != 1:  # none: the route answers 401; several: the route decides which one counts
            return False
        scheme, _, credentials = auth[0].decode("latin-1").partition(" ")
        return bearer_matches(settings.token, scheme, credentials.strip())

    def _answer(self, name: str, query: dict[str, int], spans: bool, inline: bool = False):
        """(body, headers), or (views, size, headers) where `spans`; None where the route would refuse (no such
        dataset, too many, past the end). `inline`: views only, and `_DEFER` instead of digesting a shard."""
        try:
            ds = self.ctx.datasets.get(name)
        except DatasetNotFound:
            return None
        if samples_refusal(self.ctx, ds, query["count"], query["start"], query["stride"]) is not None:
            return None
        args = (ds, query["seed"], query["epoch"], query["start"], query["count"], query["stride"])
        if inline:
            got = samples_spans_payload(*args, compute=False)
            return _DEFER if got is None else got
        return samples_spans_payload(*args) if spans else samples_payload(*args)

    async def _send(self, send, cycle, *answer) -> None:
        if cycle is None:
            body, headers = answer
            size = len(body)
        else:
            spans, size, headers = answer
        raw = [(b"content-length", str(size).encode()), (b"content-type", SAMPLES_MEDIA_TYPE.encode())]
        raw += [(key.lower().encode(), value.encode()) for key, value in headers.items()]
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        if cycle is None:
            await send({"type": "http.response.body", "body": body})
        elif cycle.chunked_encoding is False and cycle.expected_content_length == size and not cycle.disconnected:
            # The views go to the connection's transport as one vectored write (uvloop writes from the memory it
            # is given, keeping references until the kernel took it; asyncio's own transport joins them first);
            # uvicorn is then told the body went out, and its last send completes the response, waiting for the
            # transport to drain as any send does when the client reads slower than we write.
            cycle.transport.writelines(spans)
            cycle.expected_content_length = 0
            self.vectored_responses += 1
            await send({"type": "http.response.body", "body": b""})
        else:
            await send({"type": "http.response.body", "body": b"".join(spans)})


def _uvicorn_cycle(send):
    """uvicorn's request/response cycle (its httptools protocol) when `send` is that cycle's own method, that is
    when uvicorn calls this app directly, with nothing in between that watches the response; else None.

    Through it a body can go to the connection's transport as a list of buffers without being joined first
    (with the checksum from kept digests, the server no longer reads a response's tokens at all: a quarter less
    server CPU per token, bench/RESULTS.md, Stream). It relies on four
    attributes of uvicorn's `RequestResponseCycle`; tests/api/test_samples_fast_path.py checks that the
    installed uvicorn has them and that the path is taken, so a uvicorn that changed them fails a test rather
    than silently costing a copy."""
    cycle = getattr(send, "__self__", None)
    kind = type(cycle)
    if kind.__name__ != "RequestResponseCycle" or kind.__module__ != "uvicorn.protocols.http.httptools_impl" \
            or getattr(send, "__func__", None) is not kind.send:
        return None
    if not all(hasattr(cycle, a) for a in ("transport", "chunked_encoding", "expected_content_length",
                                           "disconnected")):
        return None
    return cycle


@router.get("/{name}/files/{filename}", response_class=FileResponse,
            responses={**json_errors(401, 404, 422), 206: {"description": "the byte range asked for"},
                       416: {"description": "the range lies outside the file"},
                       200: {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                 "format": "binary"}}}}},
            summary="A raw shard file (.bin, .idx) or the manifest, with HTTP Range support")
def shard_file(name: Name, ctx: Ctx,
               filename: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")]) -> FileResponse:
    try:
        path = ctx.datasets.file(name, filename)
    except DatasetNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    media = "application/json" if filename.endswith(".json") else "application/octet-stream"
    return FileResponse(path, media_type=media)
