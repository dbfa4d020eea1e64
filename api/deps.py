"""Dependencies injected into the routers: the app context, bearer-token auth, and a job by id."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.datasets import DatasetCatalog
from api.paths import PathPolicy
from api.runner import JobRunner
from api.settings import Settings
from api.store import JobRow, JobStore

JOB_ID_PATTERN = r"^[0-9a-f]{32}$"
bearer = HTTPBearer(auto_error=False, description="STEEL_API_TOKEN of the server")


@dataclass
class AppContext:
    settings: Settings
    store: JobStore
    runner: JobRunner
    policy: PathPolicy
    datasets: DatasetCatalog


def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]


def bearer_matches(token: str, scheme: str, credentials: str) -> bool:
    """Whether an Authorization header's scheme and credentials (as FastAPI's HTTPBearer splits them: at the
    first space, the credentials stripped) present `token` as a bearer token. Constant time in the token."""
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.encode(), token.encode())


def _check(ctx: AppContext, creds: HTTPAuthorizationCredentials | None) -> None:
    token = ctx.settings.token
    if token is None:
        return
    if creds is None or not bearer_matches(token, creds.scheme, creds.credentials):
        raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})


def require_write(ctx: Ctx, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    _check(ctx, creds)


def require_read(ctx: Ctx, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    if ctx.settings.auth_reads:
        _check(ctx, creds)


def get_job(ctx: Ctx, job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN, description="job id")]) -> JobRow:
    job = ctx.store.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


JobDep = Annotated[JobRow, Depends(get_job)]
