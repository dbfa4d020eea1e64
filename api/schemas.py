"""Request and response schemas of the HTTP API (they make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PathStr = Field(min_length=1, max_length=4096)


class JobState(str, Enum):
    queued = "queued"
    running = "running"
    cancelling = "cancelling"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


# -- jobs ------------------------------------------------------------------------------------------------------
class JobRequest(BaseModel):
    """A cleaning job: what `steel run` takes, as JSON. Paths are relative to the server's first data root, or
    absolute inside a data root."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "recipe": {"project_name": "demo", "text_keys": "text",
                   "process": [{"whitespace_normalization_mapper": {}},
                               {"text_length_filter": {"min_len": 10, "max_len": 100000}}]},
        "inputs": ["corpus/zh/part-0.jsonl"], "output": "out/demo"}]})

    recipe: dict[str, Any] | str = Field(
        description="a Data-Juicer recipe: the mapping itself, or its YAML text (data only, parsed safely)")
    inputs: list[str] = Field(min_length=1, max_length=1000, description="input files, folders or globs")
    output: str = Field(min_length=1, max_length=4096, description="output folder (inside a data root)")
    name: str | None = Field(None, max_length=200, description="a label for people")
    text_key: str | None = Field(None, min_length=1, max_length=256, description="source field holding the text")
    text_template: str | None = Field(None, min_length=1, max_length=4096,
                                      description="build the text from fields, e.g. '{title}\\n{summary}'")
    set: dict[str, dict[str, Any]] = Field(default_factory=dict, max_length=200,
                                           description="parameter overrides: {op: {param: value}}")
    skip_ops: list[str] = Field(default_factory=list, max_length=200, description="operators to leave out")
    shard_size: int = Field(4096, ge=1, le=10_000_000, description="records per shard (unit of work and resume)")
    format: Literal["parquet", "jsonl"] = "parquet"
    workers: int = Field(0, ge=0, le=4096, description="worker processes (0: the server's default)")
    overwrite: bool = Field(False, description="discard a previous run's outputs in the output folder")


class OpProgress(BaseModel):
    label: str
    name: str
    kind: str
    docs_in: int
    docs_out: int
    dropped: int
    modified: int
    errors: int


class Progress(BaseModel):
    phase: str = Field(description="planning | processing | global stages | done")
    shards_total: int
    shards_done: int
    records_total: int
    records_done: int
    fraction: float = Field(description="records done / records total")
    ops: list[OpProgress] = Field(description="per-op counts over the shards finished so far")


class JobResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    input_records: int
    output_docs: int
    quarantined: int
    dropped_by_op: dict[str, int]
    balanced: bool
    wall_seconds: float | None = None
    shards_done_before: int = Field(0, description="shards reused from an earlier, interrupted attempt")


class Note(BaseModel):
    at: datetime
    note: str


class Job(BaseModel):
    id: str
    name: str | None
    state: JobState
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int = Field(description="worker starts (more than 1 after a resume)")
    interruptions: int = Field(description="server crashes the job survived")
    cancel_requested: bool
    output: str
    progress: Progress | None
    result: JobResult | None
    error: str | None
    notes: list[Note]
    request: JobRequest
    links: dict[str, str]


class JobSummary(BaseModel):
    id: str
    name: str | None
    state: JobState
    created_at: datetime
    updated_at: datetime
    output: str
    fraction: float | None
    error: str | None


class JobList(BaseModel):
    jobs: list[JobSummary]
    total: int
    limit: int
    offset: int


class JobCreated(BaseModel):
    id: str
    state: JobState
    links: dict[str, str]


# -- statistics ------------------------------------------------------------------------------------------------
class Histogram(BaseModel):
    edges: list[float]
    counts: list[int]


class Distribution(BaseModel):
    model_config = ConfigDict(extra="allow")
    count: int
    nonfinite: int = 0
    min: float | None = None
    max: float | None = None
    quantiles: dict[str, float] | None = None
    histogram: Histogram | None = None


class OpStats(BaseModel):
    model_config = ConfigDict(extra="allow")
    label: str
    name: str
    kind: str
    stat_key: str | None = None
    bounds: list[float | None] = Field(default_factory=list)
    docs_in: int
    docs_out: int
    dropped: int
    modified: int
    errors: int = 0
    chars_in: int = 0
    chars_out: int = 0
    seconds: float = 0.0
    kept_share: float | None = None
    docs_per_second: float | None = None
    distribution: Distribution | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class Accounting(BaseModel):
    input_records: int
    output_docs: int
    dropped_by_op: dict[str, int]
    quarantined: int
    balanced: bool


class Audit(BaseModel):
    model_config = ConfigDict(extra="allow")
    op: str
    level: str
    message: str


class JobStats(BaseModel):
    """stats.json of a finished job (see steel_data.stats)."""

    model_config = ConfigDict(extra="allow")
    input_records: int
    quarantined: int
    output_docs: int
    shards: int
    accounting: Accounting
    ops: list[OpStats]
    recipe: str | None = None
    dedup: dict[str, Any] | None = None
    audits: list[Audit] = Field(default_factory=list)
    wall_seconds: float | None = None


class DroppedExample(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    value: float | str | None = Field(None, description="the op's statistic for this document")
    reason: str = Field(description="why the op dropped it: which bound the value broke")
    text: str | None = None


class DroppedExamples(BaseModel):
    job: str
    op: str
    name: str
    stat_key: str | None
    bounds: list[float | None]
    dropped: int = Field(description="documents the op dropped in the whole job")
    sampled: int = Field(description="examples kept by the job (a bounded sample)")
    offset: int
    limit: int
    examples: list[DroppedExample]


# -- operators -------------------------------------------------------------------------------------------------
class OpInfo(BaseModel):
    name: str
    kind: str
    summary: str
    stat_key: str | None
    params_schema: dict[str, Any] = Field(description="JSON Schema of the operator's parameters")


class OpList(BaseModel):
    ops: list[OpInfo]


# -- datasets --------------------------------------------------------------------------------------------------
class DatasetSummary(BaseModel):
    name: str
    docs: int
    tokens: int
    seq_len: int
    window: int
    dtype: str
    epoch_windows: int = Field(description="samples per epoch")
    shards: int
    files: list[str] = Field(description="files served under /v1/datasets/{name}/files/")


class DatasetList(BaseModel):
    datasets: list[DatasetSummary]


# -- misc ------------------------------------------------------------------------------------------------------
class Health(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    database: str
    runner: bool = Field(description="the job runner thread is alive")
    runner_role: Literal["leader", "standby"] = Field(
        description="leader: this process runs the jobs; standby: another server process does")
    jobs: dict[str, int]


class ErrorDetail(BaseModel):
    detail: Any


def json_errors(*codes: int) -> dict:
    """Error responses documented as JSON on routes whose success is not JSON (HTML, SSE, bytes)."""
    schema = {"type": "object", "properties": {"detail": {}}, "required": ["detail"]}
    return {c: {"description": "error", "content": {"application/json": {"schema": schema}}} for c in codes}
