"""Per-operator statistics that merge associatively across shards, workers and nodes.

Each op keeps counts (docs in/out, dropped or modified, characters in/out, CPU seconds), the
distribution of its statistic as a KLL quantile sketch (Apache DataSketches: mergeable, bounded size),
and a bounded sample of dropped documents. Merging in shard order keeps the samples deterministic.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DROPPED_SAMPLE_PER_OP = 20
SKETCH_K = 200
HISTOGRAM_BINS = 20


def _new_sketch():
    from datasketches import kll_doubles_sketch

    return kll_doubles_sketch(SKETCH_K)


@dataclass
class Distribution:
    """A mergeable distribution of one statistic."""

    sketch: Any = None
    count: int = 0
    nonfinite: int = 0

    def add(self, values: list[float]) -> None:
        if not values:
            return
        arr = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(arr)
        self.nonfinite += int((~finite).sum())
        arr = arr[finite]
        if arr.size:
            if self.sketch is None:
                self.sketch = _new_sketch()
            self.sketch.update(arr)
            self.count += int(arr.size)

    def merge(self, other: "Distribution") -> None:
        if other.sketch is not None:
            if self.sketch is None:
                self.sketch = _new_sketch()
            self.sketch.merge(other.sketch)
        self.count += other.count
        self.nonfinite += other.nonfinite

    def summary(self, bounds: tuple[float | None, float | None] = (None, None)) -> dict:
        out: dict[str, Any] = {"count": self.count, "nonfinite": self.nonfinite}
        if self.sketch is None or self.sketch.is_empty():
            return out
        s = self.sketch
        lo, hi = s.get_min_value(), s.get_max_value()
        out["min"], out["max"] = lo, hi
        qs = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]
        out["quantiles"] = {str(q): float(v) for q, v in zip(qs, s.get_quantiles(qs))}
        out["histogram"] = histogram(s, lo, hi, bounds)
        return out

    def to_json(self) -> dict:
        return {
            "count": self.count,
            "nonfinite": self.nonfinite,
            "sketch": base64.b64encode(self.sketch.serialize()).decode() if self.sketch is not None else None,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Distribution":
        from datasketches import kll_doubles_sketch

        sketch = kll_doubles_sketch.deserialize(base64.b64decode(data["sketch"])) if data.get("sketch") else None
        return cls(sketch=sketch, count=data["count"], nonfinite=data.get("nonfinite", 0))


def histogram(sketch, lo: float, hi: float, bounds: tuple[float | None, float | None]) -> dict:
    """Equal-width bins over the observed range (clipped to the recipe's bounds' neighbourhood when the
    range is huge), with counts estimated from the sketch."""
    if hi <= lo:
        return {"edges": [lo, hi], "counts": [sketch.n]}
    edges = list(np.linspace(lo, hi, HISTOGRAM_BINS + 1))
    pmf = sketch.get_pmf(edges[1:-1])  # masses of (-inf, e1), [e1, e2), ..., [e_last, inf)
    counts = [int(round(m * sketch.n)) for m in pmf]
    return {"edges": [float(e) for e in edges], "counts": counts}


@dataclass
class OpStats:
    name: str
    kind: str
    stat_key: str | None = None
    bounds: tuple[float | None, float | None] = (None, None)
    docs_in: int = 0
    docs_out: int = 0
    dropped: int = 0
    modified: int = 0
    errors: int = 0  # records quarantined because this op raised on them
    chars_in: int = 0
    chars_out: int = 0
    seconds: float = 0.0
    distribution: Distribution = field(default_factory=Distribution)
    dropped_sample: list[dict] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def merge(self, other: "OpStats") -> None:
        self.docs_in += other.docs_in
        self.docs_out += other.docs_out
        self.dropped += other.dropped
        self.modified += other.modified
        self.errors += other.errors
        self.chars_in += other.chars_in
        self.chars_out += other.chars_out
        self.seconds += other.seconds
        self.distribution.merge(other.distribution)
        room = DROPPED_SAMPLE_PER_OP - len(self.dropped_sample)
        if room > 0:
            self.dropped_sample.extend(other.dropped_sample[:room])
        for key, value in other.extra.items():
            if isinstance(value, (int, float)) and isinstance(self.extra.get(key, 0), (int, float)):
                self.extra[key] = self.extra.get(key, 0) + value
            else:
                self.extra[key] = value

    def to_json(self, with_sketch: bool = True) -> dict:
        out = {
            "name": self.name,
            "kind": self.kind,
            "stat_key": self.stat_key,
            "bounds": list(self.bounds),
            "docs_in": self.docs_in,
            "docs_out": self.docs_out,
            "dropped": self.dropped,
            "modified": self.modified,
            "errors": self.errors,
            "chars_in": self.chars_in,
            "chars_out": self.chars_out,
            "seconds": round(self.seconds, 6),
            "kept_share": (self.docs_out / self.docs_in) if self.docs_in else None,
            "docs_per_second": (self.docs_in / self.seconds) if self.seconds > 0 else None,
            "distribution": self.distribution.summary(self.bounds) if self.stat_key else None,
            "extra": self.extra,
        }
        if with_sketch:
            out["_sketch"] = self.distribution.to_json()
            out["_dropped_sample"] = self.dropped_sample
        return out

    @classmethod
    def from_json(cls, data: dict) -> "OpStats":
        stats = cls(
            name=data["name"], kind=data["kind"], stat_key=data.get("stat_key"),
            bounds=tuple(data.get("bounds") or (None, None)),  # type: ignore[arg-type]
        )
        for key in ("docs_in", "docs_out", "dropped", "modified", "errors", "chars_in", "chars_out", "seconds"):
            setattr(stats, key, data.get(key, 0))
        stats.extra = dict(data.get("extra") or {})
        if data.get("_sketch"):
            stats.distribution = Distribution.from_json(data["_sketch"])
        stats.dropped_sample = list(data.get("_dropped_sample") or [])
        return stats


@dataclass
class RunStats:
    """Statistics of one shard or, merged, of a whole job."""

    ops: dict[str, OpStats] = field(default_factory=dict)  # label -> stats, in recipe order
    input_records: int = 0
    quarantined: int = 0
    output_docs: int = 0
    shards: int = 0
    read_seconds: float = 0.0

    def merge(self, other: "RunStats") -> None:
        for label, op in other.ops.items():
            if label in self.ops:
                self.ops[label].merge(op)
            else:
                self.ops[label] = OpStats.from_json(op.to_json())
        self.input_records += other.input_records
        self.quarantined += other.quarantined
        self.output_docs += other.output_docs
        self.shards += other.shards
        self.read_seconds += other.read_seconds

    def accounting(self) -> dict:
        """input = output + dropped by each op + quarantined (op errors are quarantined records)."""
        dropped = {label: op.dropped for label, op in self.ops.items() if op.dropped}
        total = self.output_docs + sum(dropped.values()) + self.quarantined
        return {
            "input_records": self.input_records,
            "output_docs": self.output_docs,
            "dropped_by_op": dropped,
            "quarantined": self.quarantined,
            "balanced": total == self.input_records,
        }

    def to_json(self, with_sketch: bool = True) -> dict:
        return {
            "input_records": self.input_records,
            "quarantined": self.quarantined,
            "output_docs": self.output_docs,
            "shards": self.shards,
            "read_seconds": round(self.read_seconds, 6),
            "accounting": self.accounting(),
            "ops": [op.to_json(with_sketch) | {"label": label} for label, op in self.ops.items()],
        }

    @classmethod
    def from_json(cls, data: dict) -> "RunStats":
        stats = cls(
            input_records=data.get("input_records", 0),
            quarantined=data.get("quarantined", 0),
            output_docs=data.get("output_docs", 0),
            shards=data.get("shards", 0),
            read_seconds=data.get("read_seconds", 0.0),
        )
        for op in data.get("ops", []):
            stats.ops[op["label"]] = OpStats.from_json(op)
        return stats

