"""The job store: one table of jobs in SQLite (default) or another database named by URL.

Shared by the server (request handlers, the job runner) and the worker processes, each with its own
connections. Every state change is one conditional UPDATE (`... WHERE state IN (...)`), so the server, a
worker and a cancel request can race without a lock and without losing a transition. `seq` increases on every
change; the event stream watches it.

States: queued -> running -> succeeded | failed; queued -> cancelled; running -> cancelling -> cancelled.
A running job whose server died is put back to queued (resumed) or failed, explicitly, at the next start.

PostgreSQL: the schema is created under a transaction-scoped advisory lock (concurrent CREATE ... IF NOT EXISTS
collide in its catalog when several processes start at once); a connection found dead (database restarted,
backend terminated) is reopened and the statement run once more on the new one: every statement here is a
read, a conditional UPDATE (run twice, the second finds the state already changed and reports a lost race) or
an INSERT of a new random id. Text columns cannot hold U+0000 there, so free text (a job's name, an error) is
stored with U+FFFD in its place, on every backend alike.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import orjson

QUEUED, RUNNING, CANCELLING = "queued", "running", "cancelling"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
ACTIVE = (QUEUED, RUNNING, CANCELLING)
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)

SCHEMA_VERSION = 1
# Portable DDL: SQLite gives DOUBLE PRECISION real affinity; PostgreSQL reads it natively.
_DDL = [
    """CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        name TEXT,
        state TEXT NOT NULL,
        request TEXT NOT NULL,
        spec TEXT NOT NULL,
        output TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        started_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION,
        attempts INTEGER NOT NULL DEFAULT 0,
        interruptions INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        prepared INTEGER NOT NULL DEFAULT 0,
        worker_pid INTEGER,
        progress TEXT,
        result TEXT,
        error TEXT,
        notes TEXT NOT NULL DEFAULT '[]',
        seq BIGINT NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created_at)",
    "CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at)",
]
_JSON_FIELDS = ("request", "spec", "progress", "result", "notes")
_SCHEMA_LOCK = 0x5713E1  # pg_advisory_xact_lock key of the schema creation
_COLUMNS = ("id", "name", "state", "request", "spec", "output", "created_at", "updated_at", "started_at",
            "finished_at", "attempts", "interruptions", "cancel_requested", "prepared", "worker_pid", "progress",
            "result", "error", "notes", "seq")


class UnsupportedDatabase(ValueError):
    pass


@dataclass
class JobRow:
    id: str
    name: str | None
    state: str
    request: dict
    spec: dict
    output: str
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    interruptions: int
    cancel_requested: bool
    prepared: bool
    worker_pid: int | None
    progress: dict | None
    result: dict | None
    error: str | None
    notes: list
    seq: int

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _text(value: Any) -> Any:
    """Free text as every backend can store it (PostgreSQL text has no U+0000)."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


class JobStore:
    def __init__(self, url: str):
        self.url = url
        parsed = urlparse(url)
        self._local = threading.local()
        self._lost_errors: tuple[type[Exception], ...] = ()
        if parsed.scheme == "sqlite":
            # sqlite:///relative/path, sqlite:////absolute/path, sqlite:///:memory: is refused (one per connection)
            path = unquote(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else ""
            if not path or path == ":memory:":
                raise UnsupportedDatabase("sqlite URL needs a file: sqlite:///PATH")
            self.kind = "sqlite"
            self.path = Path(path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._param = "?"
        elif parsed.scheme in ("postgresql", "postgres"):
            try:
                import psycopg
            except ImportError:
                raise UnsupportedDatabase("a postgresql:// job store needs the psycopg package") from None
            self.kind = "postgresql"
            self._param = "%s"
            self._lost_errors = (psycopg.OperationalError,)
        else:
            raise UnsupportedDatabase(f"unsupported database URL scheme {parsed.scheme!r} (sqlite, postgresql)")
        self._init_schema()

    # -- connections ------------------------------------------------------------------------------------------
    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.kind == "sqlite":
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=30000")
            else:
                import psycopg

                conn = psycopg.connect(self.url, autocommit=True)
            self._local.conn = conn
        return conn

    def _exec(self, sql: str, params: tuple = ()):
        if self._param != "?":
            sql = sql.replace("?", self._param)
        reopened = False
        for attempt in range(5):
            try:
                cur = self._conn().cursor()
                cur.execute(sql, params)
                return cur
            except sqlite3.OperationalError as exc:  # "database is locked" past the busy timeout
                if "locked" not in str(exc) or attempt == 4:
                    raise
                time.sleep(0.1 * (attempt + 1))
            except self._lost_errors:
                conn = self._local.conn
                if reopened or not (conn.closed or conn.broken):
                    raise
                self.close()  # the connection is dead: open a new one and run the statement on it
                reopened = True
        raise AssertionError("unreachable")

    def _init_schema(self) -> None:
        if self.kind == "postgresql":
            conn = self._conn()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for stmt in _DDL:
                    conn.execute(stmt)
            return
        for stmt in _DDL:
            self._exec(stmt)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- reading ----------------------------------------------------------------------------------------------
    def _row(self, values) -> JobRow:
        data = dict(zip(_COLUMNS, values))
        for key in _JSON_FIELDS:
            data[key] = orjson.loads(data[key]) if data[key] is not None else None
        data["cancel_requested"] = bool(data["cancel_requested"])
        data["prepared"] = bool(data["prepared"])
        data["notes"] = data["notes"] or []
        return JobRow(**data)

    def get(self, job_id: str) -> JobRow | None:
        cur = self._exec(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE id = ?", (job_id,))
        row = cur.fetchone()
        return self._row(row) if row else None

    def list(self, state: str | None = None, limit: int = 100, offset: int = 0) -> tuple[list[JobRow], int]:
        where, params = ("WHERE state = ?", (state,)) if state else ("", ())
        total = self._exec(f"SELECT COUNT(*) FROM jobs {where}", params).fetchone()[0]
        cur = self._exec(f"SELECT {', '.join(_COLUMNS)} FROM jobs {where} ORDER BY created_at DESC, id "
                         f"LIMIT ? OFFSET ?", params + (limit, offset))
        return [self._row(r) for r in cur.fetchall()], int(total)

    def active(self) -> list[JobRow]:
        cur = self._exec(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE state IN (?, ?, ?) ORDER BY created_at",
                         ACTIVE)
        return [self._row(r) for r in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        return {state: int(n) for state, n in self._exec("SELECT state, COUNT(*) FROM jobs GROUP BY state")}

    def ping(self) -> bool:
        self._exec("SELECT 1").fetchone()
        return True

    # -- writing ----------------------------------------------------------------------------------------------
    def create(self, request: dict, spec: dict, output: str, name: str | None = None) -> JobRow:
        now = time.time()
        job_id = uuid.uuid4().hex
        self._exec(
            "INSERT INTO jobs (id, name, state, request, spec, output, created_at, updated_at, notes, seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, '[]', 1)",
            (job_id, _text(name), QUEUED, _dumps(request), _dumps(spec), output, now, now),
        )
        return self.get(job_id)

    def _update(self, job_id: str, states: tuple[str, ...], **fields) -> bool:
        fields["updated_at"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in fields) + ", seq = seq + 1"
        values = tuple(_dumps(v) if k in _JSON_FIELDS else _text(v) for k, v in fields.items())
        marks = ", ".join("?" for _ in states)
        cur = self._exec(f"UPDATE jobs SET {sets} WHERE id = ? AND state IN ({marks})", values + (job_id,) + states)
        return cur.rowcount == 1

    def claim_next(self) -> JobRow | None:
        """Move the oldest queued job to running (atomically; a lost race returns the next one)."""
        while True:
            row = self._exec("SELECT id FROM jobs WHERE state = ? ORDER BY created_at, id LIMIT 1",
                             (QUEUED,)).fetchone()
            if row is None:
                return None
            now = time.time()
            cur = self._exec("UPDATE jobs SET state = ?, attempts = attempts + 1, "
                             "started_at = COALESCE(started_at, ?), updated_at = ?, seq = seq + 1 "
                             "WHERE id = ? AND state = ?",
                             (RUNNING, now, now, row[0], QUEUED))
            if cur.rowcount == 1:
                return self.get(row[0])

    def set_worker(self, job_id: str, pid: int | None) -> None:
        self._update(job_id, ACTIVE, worker_pid=pid)

    def set_prepared(self, job_id: str) -> None:
        self._update(job_id, (RUNNING, CANCELLING), prepared=1)

    def set_progress(self, job_id: str, progress: dict) -> bool:
        return self._update(job_id, (RUNNING, CANCELLING), progress=progress)

    def succeed(self, job_id: str, progress: dict, result: dict) -> bool:
        """A finished job stays finished even if a cancel arrived while it was completing."""
        return self._update(job_id, (RUNNING, CANCELLING), state=SUCCEEDED, progress=progress, result=result,
                            finished_at=time.time(), worker_pid=None)

    def fail(self, job_id: str, error: str, states: tuple[str, ...] = (RUNNING, CANCELLING, QUEUED)) -> bool:
        return self._update(job_id, states, state=FAILED, error=error[:20000], finished_at=time.time(),
                            worker_pid=None)

    def request_cancel(self, job_id: str) -> JobRow | None:
        """queued -> cancelled at once; running -> cancelling (the runner stops the worker). Idempotent."""
        if not self._update(job_id, (QUEUED,), state=CANCELLED, cancel_requested=1, finished_at=time.time()):
            self._update(job_id, (RUNNING,), state=CANCELLING, cancel_requested=1)
        return self.get(job_id)

    def mark_cancelled(self, job_id: str) -> bool:
        return self._update(job_id, (CANCELLING, RUNNING), state=CANCELLED, finished_at=time.time(),
                            worker_pid=None)

    def requeue(self, job_id: str, note: str, interrupted: bool) -> bool:
        job = self.get(job_id)
        if job is None:
            return False
        notes = job.notes + [{"at": time.time(), "note": note}]
        extra = {"interruptions": job.interruptions + 1} if interrupted else {}
        return self._update(job_id, (RUNNING,), state=QUEUED, worker_pid=None, notes=notes, **extra)

    def add_note(self, job_id: str, note: str) -> None:
        job = self.get(job_id)
        if job is not None:
            self._update(job_id, (job.state,), notes=job.notes + [{"at": time.time(), "note": note}])
