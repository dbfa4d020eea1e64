"""Operator base classes. A subclass implements one method; the base class does the bookkeeping.

- `Mapper.map_text(text) -> text` (or `map_texts` for a vectorised batch version).
- `Filter.compute_stat(doc) -> number`; the base applies the inclusive `[min, max]` bounds of the
  parameters named in `bounds`, and reports kept/dropped and the values.
- `Deduplicator.fingerprint(text) -> int`; the global stage lives in `steel_data` (it needs all shards).

Operators are pure: no I/O, no executor, no statistics store. Heavy state (an OpenCC converter, a KenLM
model) is built lazily in `setup()`, once per worker process, never at import.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from operators.doc import Doc


class OpParams(BaseModel):
    """Parameters every operator accepts. Unknown parameters are refused (`extra=forbid`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text_key: str = "text"


class FilterParams(OpParams):
    """Data-Juicer's interval switches, shared by all filters."""

    min_closed_interval: bool = True
    max_closed_interval: bool = True
    reversed_range: bool = False


@dataclass
class MapResult:
    texts: list[str]
    modified: int
    chars_in: int
    chars_out: int
    seconds: float


@dataclass
class FilterResult:
    keep: list[bool]
    values: list[Any]
    seconds: float


class Op:
    """Common part of all operators."""

    name: ClassVar[str]
    kind: ClassVar[str]
    Params: ClassVar[type[OpParams]] = OpParams
    #: one line on what the operator does, shown by `steel ops`
    summary: ClassVar[str] = ""

    def __init__(self, params: OpParams | None = None, **kwargs: Any):
        self.params = params if params is not None else self.Params(**kwargs)
        self._ready = False

    def setup(self) -> None:
        """Build heavy state (models, converters). Called once per worker before the first batch."""

    def ensure_ready(self) -> None:
        if not self._ready:
            self.setup()
            self._ready = True

    @property
    def text_key(self) -> str:
        return self.params.text_key

    def __getstate__(self):
        # Heavy state is rebuilt in each worker: ship only the parameters.
        return {"params": self.params}

    def __setstate__(self, state):
        self.__init__(state["params"])

    def __repr__(self) -> str:
        return f"{self.name}({self.params.model_dump(exclude_defaults=True)})"


class Mapper(Op):
    kind = "mapper"

    def map_text(self, text: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def map_texts(self, texts: list[str]) -> list[str]:
        """Batch version; override when the operator can do better than a loop."""
        fn = self.map_text
        return [fn(t) for t in texts]

    def apply(self, texts: list[str]) -> MapResult:
        self.ensure_ready()
        start = time.process_time()
        out = self.map_texts(texts)
        seconds = time.process_time() - start
        modified = sum(1 for a, b in zip(texts, out) if a is not b and a != b)
        return MapResult(
            texts=out,
            modified=modified,
            chars_in=sum(map(len, texts)),
            chars_out=sum(map(len, out)),
            seconds=seconds,
        )

    def process(self, batch: pa.Table) -> pa.Table:
        """Arrow-in, Arrow-out form (DESIGN.md): maps the text column, carries every other column."""
        texts = batch.column(self.text_key).to_pylist()
        result = self.apply(texts)
        idx = batch.schema.get_field_index(self.text_key)
        return batch.set_column(idx, self.text_key, pa.array(result.texts, type=pa.string()))


class Filter(Op):
    kind = "filter"
    Params: ClassVar[type[OpParams]] = FilterParams
    #: the statistic's key, as in Data-Juicer's StatsKeys
    stat_key: ClassVar[str]
    #: names of the (min, max) parameters; None where the filter has no such bound
    bounds: ClassVar[tuple[str | None, str | None]]

    def compute_stat(self, doc: Doc) -> float | int:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute_stats(self, docs: list[Doc]) -> list[float | int]:
        fn = self.compute_stat
        return [fn(d) for d in docs]

    def bound_values(self) -> tuple[float | None, float | None]:
        lo_name, hi_name = self.bounds
        lo = getattr(self.params, lo_name) if lo_name else None
        hi = getattr(self.params, hi_name) if hi_name else None
        return lo, hi

    def keeps(self, value: float | int) -> bool:
        """Data-Juicer's `get_keep_boolean`, with exact arithmetic."""
        p: FilterParams = self.params  # type: ignore[assignment]
        lo, hi = self.bound_values()
        min_closed, max_closed = p.min_closed_interval, p.max_closed_interval
        if p.reversed_range:
            min_closed, max_closed = not min_closed, not max_closed
        ok = True
        if lo is not None:
            ok = value >= lo if min_closed else value > lo
        if hi is not None:
            ok = ok and (value <= hi if max_closed else value < hi)
        return (not ok) if p.reversed_range else ok

    def apply(self, docs: list[Doc]) -> FilterResult:
        self.ensure_ready()
        start = time.process_time()
        values = self.compute_stats(docs)
        keep = [self.keeps(v) for v in values]
        return FilterResult(keep=keep, values=values, seconds=time.process_time() - start)

    def compute_stats_table(self, batch: pa.Table) -> pa.Array:
        """Arrow form (DESIGN.md): the statistic column for a batch."""
        docs = [Doc(t) for t in batch.column(self.text_key).to_pylist()]
        return pa.array(self.apply(docs).values)


class Deduplicator(Op):
    kind = "deduplicator"

    def fingerprint(self, text: str) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def fingerprints(self, texts: list[str]) -> list[int]:
        fn = self.fingerprint
        return [fn(t) for t in texts]


@dataclass
class OpInfo:
    """What `steel ops` and `GET /v1/ops` show."""

    name: str
    kind: str
    summary: str
    stat_key: str | None
    params_schema: dict = field(default_factory=dict)
