"""/v1/jobs: submit, list, inspect, cancel; statistics, dropped examples, progress events, the report."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import anyio
import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse

from api import report
from api.deps import AppContext, Ctx, JobDep, require_read, require_write
from api.schemas import (
    DroppedExample, DroppedExamples, ErrorDetail, Job, JobCreated, JobList, JobRequest, JobResult, JobState,
    JobStats, JobSummary, Note, OpProgress, Progress, json_errors,
)
from api.store import SUCCEEDED, TERMINAL, JobRow
from api.submit import Refused, submit

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
ERRORS = {401: {"model": ErrorDetail}, 404: {"model": ErrorDetail}, 422: {"model": ErrorDetail}}
MAX_EXAMPLES = 100
REPORT_EXAMPLES = 5
EVENT_POLL_S = 0.5
KEEPALIVE_S = 15.0
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=timezone.utc)


def _links(job_id: str) -> dict[str, str]:
    base = f"/v1/jobs/{job_id}"
    return {"self": base, "events": f"{base}/events", "stats": f"{base}/stats", "report": f"{base}/report",
            "cancel": f"{base}/cancel"}


def _progress(raw: dict | None) -> Progress | None:
    if not raw:
        return None
    total, done = raw.get("records_total", 0), raw.get("records_done", 0)
    fraction = done / total if total else (1.0 if raw.get("phase") == "done" else 0.0)
    return Progress(phase=raw.get("phase", "planning"), shards_total=raw.get("shards_total", 0),
                    shards_done=raw.get("shards_done", 0), records_total=total, records_done=done,
                    fraction=round(fraction, 6), ops=[OpProgress(**op) for op in raw.get("ops", [])])


def job_view(ctx: AppContext, job: JobRow) -> Job:
    return Job(
        id=job.id, name=job.name, state=JobState(job.state), created_at=_ts(job.created_at),
        updated_at=_ts(job.updated_at), started_at=_ts(job.started_at), finished_at=_ts(job.finished_at),
        attempts=job.attempts, interruptions=job.interruptions, cancel_requested=job.cancel_requested,
        output=ctx.policy.show(Path(job.output)), progress=_progress(job.progress),
        result=JobResult(**job.result) if job.result else None, error=job.error,
        notes=[Note(at=_ts(n["at"]), note=n["note"]) for n in job.notes], request=JobRequest(**job.request),
        links=_links(job.id),
    )


def _summary(ctx: AppContext, job: JobRow) -> JobSummary:
    prog = _progress(job.progress)
    return JobSummary(id=job.id, name=job.name, state=JobState(job.state), created_at=_ts(job.created_at),
                      updated_at=_ts(job.updated_at), output=ctx.policy.show(Path(job.output)),
                      fraction=prog.fraction if prog else None, error=job.error)


@router.post("", status_code=202, response_model=JobCreated, dependencies=[Depends(require_write)],
             responses={**ERRORS, 400: {"model": ErrorDetail}, 409: {"model": ErrorDetail},
                        413: {"model": ErrorDetail}},
             summary="Submit a cleaning job")
def create_job(req: JobRequest, ctx: Ctx, response: Response) -> JobCreated:
    """Checks the recipe, parameters and paths completely, queues the job and returns its id at once (202).
    Problems are refused before any work starts: 422 naming the op and parameter or the path at fault, 409 when
    the output folder belongs to another job."""
    try:
        job = submit(ctx.policy, ctx.store, req)
    except Refused as exc:
        raise HTTPException(exc.status, exc.errors) from None
    ctx.runner.wake()
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobCreated(id=job.id, state=JobState(job.state), links=_links(job.id))


@router.get("", response_model=JobList, dependencies=[Depends(require_read)], responses=ERRORS,
            summary="List jobs, newest first")
def list_jobs(ctx: Ctx, state: JobState | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> JobList:
    jobs, total = ctx.store.list(state.value if state else None, limit, offset)
    return JobList(jobs=[_summary(ctx, j) for j in jobs], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=Job, dependencies=[Depends(require_read)], responses=ERRORS,
            summary="A job: state and live per-op progress")
def get_job(job: JobDep, ctx: Ctx) -> Job:
    return job_view(ctx, job)


@router.post("/{job_id}/cancel", status_code=202, response_model=Job, dependencies=[Depends(require_write)],
             responses={**ERRORS, 409: {"model": ErrorDetail}}, summary="Cancel a job")
def cancel_job(job: JobDep, ctx: Ctx) -> Job:
    """A queued job is cancelled at once; a running one is stopped promptly (its worker is killed). Shards it
    finished stay on disk: submitting the same job again reuses them."""
    if job.terminal:
        raise HTTPException(409, f"job {job.id} has already {job.state}")
    updated = ctx.store.request_cancel(job.id)
    ctx.runner.wake()
    return job_view(ctx, updated)


# -- statistics -------------------------------------------------------------------------------------------------
def _load_stats(job: JobRow) -> dict:
    if job.state != SUCCEEDED:
        raise HTTPException(409, f"job {job.id} is {job.state}: statistics are written when it succeeds "
                                 "(live per-op counts are in GET /v1/jobs/{id})")
    path = Path(job.spec["output"]) / "stats.json"
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        raise HTTPException(410, f"job {job.id}: its stats.json is gone or unreadable") from None


@router.get("/{job_id}/stats", response_model=JobStats, dependencies=[Depends(require_read)],
            responses={**ERRORS, 409: {"model": ErrorDetail}, 410: {"model": ErrorDetail}},
            summary="Per-op statistics of a finished job")
def job_stats(job: JobDep) -> JobStats:
    return JobStats.model_validate(_load_stats(job))


def _dropped(job: JobRow, stats: dict, label: str, offset: int, limit: int) -> tuple[dict, int, list[dict]]:
    ops = {op["label"]: op for op in stats.get("ops", [])}
    op = ops.get(label)
    if op is None:
        raise HTTPException(404, f"job {job.id} has no op {label!r}; ops: {', '.join(ops)}")
    examples: list[dict] = []
    if op.get("kind") == "deduplicator":
        for cluster in (stats.get("dedup") or {}).get("cluster_examples", []):
            members = cluster.get("members") or []
            for m in members[1:]:
                examples.append({**m, "reason": f"near-duplicate of {members[0].get('id')} "
                                                f"(cluster of {cluster.get('size')}; the first is kept)"})
    else:
        path = Path(job.spec["output"]) / "dropped" / f"{label}.jsonl"
        if path.is_file():
            for line in path.read_bytes().splitlines():
                if line.strip():
                    ex = orjson.loads(line)
                    ex["reason"] = report.drop_reason(ex.get("value"), op.get("bounds"), op.get("stat_key"))
                    examples.append(ex)
    return op, len(examples), examples[offset:offset + limit]


@router.get("/{job_id}/stats/{op}/dropped", response_model=DroppedExamples, dependencies=[Depends(require_read)],
            responses={**ERRORS, 409: {"model": ErrorDetail}, 410: {"model": ErrorDetail}},
            summary="Examples of documents an op dropped, with the value and the bound it broke")
def dropped_examples(job: JobDep, op: str, offset: Annotated[int, Query(ge=0, le=10**6)] = 0,
                     limit: Annotated[int, Query(ge=1, le=MAX_EXAMPLES)] = 20) -> DroppedExamples:
    stats = _load_stats(job)
    info, sampled, examples = _dropped(job, stats, op, offset, limit)
    return DroppedExamples(
        job=job.id, op=op, name=info["name"], stat_key=info.get("stat_key"), bounds=list(info.get("bounds") or []),
        dropped=info.get("dropped", 0), sampled=sampled, offset=offset, limit=limit,
        examples=[DroppedExample(**_example(e)) for e in examples])


def _example(e: dict) -> dict:
    value = e.get("value")
    if isinstance(value, float) and value != value:  # NaN is not JSON
        e = {**e, "value": "nan"}
    return e


# -- live progress ----------------------------------------------------------------------------------------------
@router.get("/{job_id}/events", dependencies=[Depends(require_read)], response_class=StreamingResponse,
            responses={**json_errors(401, 404, 422), 200: {
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "`progress` events (the job as JSON) while it changes, then one `end` event"}},
            summary="Server-sent progress events")
async def job_events(job: JobDep, ctx: Ctx, request: Request) -> StreamingResponse:
    job_id = job.id

    async def stream():
        last_seq, last_sent = -1, asyncio.get_running_loop().time()
        yield "retry: 2000\n\n"
        while True:
            row = await anyio.to_thread.run_sync(ctx.store.get, job_id)
            if row is None:
                return
            now = asyncio.get_running_loop().time()
            if row.seq != last_seq:
                last_seq, last_sent = row.seq, now
                data = job_view(ctx, row).model_dump_json()
                if row.terminal:
                    yield f"id: {row.seq}\nevent: end\ndata: {data}\n\n"
                    return
                yield f"id: {row.seq}\nevent: progress\ndata: {data}\n\n"
            elif now - last_sent > KEEPALIVE_S:
                last_sent = now
                yield ": keep-alive\n\n"
            if await request.is_disconnected():
                return
            await anyio.sleep(EVENT_POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# -- the report -------------------------------------------------------------------------------------------------
@router.get("/{job_id}/report", response_class=HTMLResponse, dependencies=[Depends(require_read)],
            responses={**json_errors(401, 404, 410, 422),
                       200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
            summary="The job's report: funnel, histograms with bounds, dedup clusters, audits, dropped examples")
def job_report(job: JobDep, ctx: Ctx) -> HTMLResponse:
    stats = None
    dropped: dict[str, list[dict]] = {}
    if job.state == SUCCEEDED:
        stats = _load_stats(job)
        for op in stats.get("ops", []):
            if op.get("dropped"):
                _, _, examples = _dropped(job, stats, op["label"], 0, REPORT_EXAMPLES)
                if examples:
                    dropped[op["label"]] = examples
    view = {"id": job.id, "name": job.name, "state": job.state, "error": job.error, "progress": job.progress,
            "output_display": ctx.policy.show(Path(job.output))}
    html = report.render(view, stats, dropped, live=job.state not in TERMINAL)
    return HTMLResponse(html, headers={"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff"})
