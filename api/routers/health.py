"""/healthz: liveness of the server, its database and its job runner (no auth)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import Ctx
from api.schemas import Health
from steel_data import __version__

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Health",
            responses={503: {"model": Health, "description": "the database or the job runner is down"}})
def healthz(ctx: Ctx, response: Response) -> Health:
    try:
        counts = ctx.store.counts()
        db_ok = True
    except Exception:
        counts, db_ok = {}, False
    ok = db_ok and ctx.runner.alive
    if not ok:
        response.status_code = 503
    return Health(status="ok" if ok else "degraded", version=__version__, database=ctx.store.kind,
                  runner=ctx.runner.alive, runner_role="leader" if ctx.runner.leader else "standby", jobs=counts)
