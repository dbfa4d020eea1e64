"""Server settings, read once from the environment (`STEEL_*`); every field documents its variable."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

ENV_PREFIX = "STEEL_"


class Settings(BaseModel):
    data_roots: list[Path] = Field(
        description="STEEL_DATA_ROOTS (os.pathsep-separated): the only folders jobs may read from or write to. "
        "A relative path in a request is relative to the first root. Default: the working directory.")
    state_dir: Path = Field(description="STEEL_STATE_DIR: job database (default), worker logs and locks. "
                            "Default: FIRST_ROOT/.steel-api; requests may not name paths inside it.")
    database_url: str = Field(description="STEEL_DATABASE_URL: sqlite:///PATH (default STATE_DIR/jobs.db) or "
                              "postgresql://... (needs psycopg)")
    datasets_dir: Path = Field(description="STEEL_DATASETS_DIR: token shard sets served under /v1/datasets, one "
                               "folder each (holding manifest.json). Default: FIRST_ROOT/datasets")
    token: str | None = Field(None, description="STEEL_API_TOKEN: bearer token required on writes")
    auth_reads: bool = Field(False, description="STEEL_AUTH_READS=1: require the token on reads too")
    ray_address: str | None = Field(None, description="STEEL_RAY_ADDRESS: run jobs on this Ray cluster")
    max_body_bytes: int = Field(1 << 20, description="STEEL_MAX_BODY_BYTES: larger requests get 413")
    max_running_jobs: int = Field(1, ge=1, description="STEEL_MAX_RUNNING_JOBS: jobs running at once")
    job_workers: int = Field(0, ge=0, description="STEEL_JOB_WORKERS: worker processes per job when a request "
                             "asks for 0 (0: all cores)")
    max_job_workers: int = Field(64, ge=1, description="STEEL_MAX_JOB_WORKERS: cap on a request's workers")
    resume_on_restart: bool = Field(True, description="STEEL_RESUME_ON_RESTART=0: fail (instead of resume) "
                                    "the jobs a crashed server left running")
    max_interruptions: int = Field(3, ge=0, description="STEEL_MAX_INTERRUPTIONS: a job interrupted by more "
                                   "server crashes than this fails instead of resuming")
    max_samples_bytes: int = Field(64 << 20, description="STEEL_MAX_SAMPLES_BYTES: cap on one samples response")
    fast_samples: bool = Field(True, description="STEEL_FAST_SAMPLES=0: serve every samples request through "
                               "the FastAPI route (the reference) instead of the fast path for plain requests")
    vectored_samples: bool = Field(True, description="STEEL_VECTORED_SAMPLES=0: the fast path gathers each body "
                                   "into one buffer instead of handing uvicorn's transport views of the shards")
    runner_poll_s: float = Field(0.25, gt=0, description="STEEL_RUNNER_POLL_S: job runner's poll interval")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)

        def get(name: str, default=None):
            value = env.get(ENV_PREFIX + name)
            return default if value in (None, "") else value

        def flag(name: str, default: bool) -> bool:
            value = get(name)
            return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")

        roots_env = get("DATA_ROOTS")
        roots = [Path(p).resolve() for p in roots_env.split(os.pathsep) if p] if roots_env else [Path.cwd()]
        state_dir = Path(get("STATE_DIR", roots[0] / ".steel-api")).resolve()
        values = {
            "data_roots": roots,
            "state_dir": state_dir,
            "database_url": get("DATABASE_URL", f"sqlite:///{state_dir / 'jobs.db'}"),
            "datasets_dir": Path(get("DATASETS_DIR", roots[0] / "datasets")).resolve(),
            "token": get("API_TOKEN"),
            "auth_reads": flag("AUTH_READS", False),
            "ray_address": get("RAY_ADDRESS"),
            "resume_on_restart": flag("RESUME_ON_RESTART", True),
            "fast_samples": flag("FAST_SAMPLES", True),
            "vectored_samples": flag("VECTORED_SAMPLES", True),
        }
        for name, field in (("MAX_BODY_BYTES", "max_body_bytes"), ("MAX_RUNNING_JOBS", "max_running_jobs"),
                            ("JOB_WORKERS", "job_workers"), ("MAX_JOB_WORKERS", "max_job_workers"),
                            ("MAX_INTERRUPTIONS", "max_interruptions"), ("MAX_SAMPLES_BYTES", "max_samples_bytes")):
            if get(name) is not None:
                values[field] = int(get(name))
        if get("RUNNER_POLL_S") is not None:
            values["runner_poll_s"] = float(get("RUNNER_POLL_S"))
        return cls(**values)
