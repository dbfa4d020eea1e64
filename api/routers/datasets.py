"""/v1/datasets: token shard sets for training: manifest, samples in the global order, raw files (Range)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from fastapi.responses import FileResponse

from steel_data.shards import Manifest
from steel_data.stream import CHECKSUM_HEADER, DTYPE_HEADER, SHAPE_HEADER, checksum, read_samples

from api.datasets import NAME_PATTERN, DatasetNotFound, OpenDataset
from api.deps import Ctx, require_read
from api.schemas import DatasetList, DatasetSummary, ErrorDetail, json_errors

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], dependencies=[Depends(require_read)])
ERRORS = {401: {"model": ErrorDetail}, 404: {"model": ErrorDetail}, 422: {"model": ErrorDetail}}
Name = Annotated[str, Path(pattern=NAME_PATTERN, description="dataset (folder) name")]
MAX_POSITION = 2**62


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
        "headers": {CHECKSUM_HEADER: {"description": "xxh3-64 of the body, 16 hex digits",
                                      "schema": {"type": "string"}},
                    DTYPE_HEADER: {"description": "token dtype", "schema": {"type": "string"}},
                    SHAPE_HEADER: {"description": "count,window", "schema": {"type": "string"}}}}},
    summary="Samples of an epoch in the global order")
def samples(name: Name, ctx: Ctx,
            count: Annotated[int, Query(ge=1, le=65536, description="samples to return")],
            seed: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
            epoch: Annotated[int, Query(ge=0, le=2**31)] = 0,
            start: Annotated[int, Query(ge=0, le=MAX_POSITION, description="first sample of the epoch")] = 0,
            stride: Annotated[int, Query(ge=1, le=2**20, description="distance between samples (a rank's "
                                                                     "interleaved share: the world size)")] = 1,
            ) -> Response:
    """Samples `start, start + stride, ..., start + (count - 1) * stride` of epoch `epoch` under `seed`: the
    same bytes for the same query on any machine and any world size (`steel_data.order`)."""
    ds = _open(ctx, name)
    m = ds.shards.manifest
    last = start + (count - 1) * stride
    if last >= m.epoch_windows:
        raise HTTPException(416, f"sample {last} is past the epoch's {m.epoch_windows} samples")
    if count * m.window * ds.shards.dtype.itemsize > ctx.settings.max_samples_bytes:
        raise HTTPException(413, f"{count} samples exceed the server's response limit of "
                                 f"{ctx.settings.max_samples_bytes} bytes; ask for fewer")
    tokens = read_samples(ds.shards, seed, epoch, start, count, stride, lock=ds.lock, cache=ds.cache)
    body = memoryview(tokens).cast("B")
    return Response(body, media_type="application/octet-stream", headers={
        CHECKSUM_HEADER: f"{checksum(body):016x}", DTYPE_HEADER: m.dtype, SHAPE_HEADER: f"{count},{m.window}",
        "Cache-Control": "no-store"})


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
