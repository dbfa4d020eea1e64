"""Run a recipe's mappers and filters over one batch, with per-op books and per-record fault isolation.

Ops run in recipe order on the documents still alive. A filter's `Doc` views are shared by consecutive
filters, so lines and words are computed once per document between two mappers. An op that raises on a
batch is retried document by document: the failing documents are quarantined with the op's name and
the error, the others go on. (Data-Juicer drops the whole batch instead.)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import pyarrow as pa

from operators.base import Filter, Mapper, Op
from operators.doc import Doc
from steel_data.io import take_rows
from steel_data.recipe import Recipe
from steel_data.stats import DROPPED_SAMPLE_PER_OP, OpStats, RunStats
from steel_data.schema import ID


@dataclass
class BatchResult:
    table: pa.Table  # surviving rows, text column updated
    quarantined: list[dict] = field(default_factory=list)


def new_op_stats(recipe: Recipe) -> dict[str, OpStats]:
    out = {}
    for label, op in zip(recipe.op_labels(), recipe.ops):
        stat_key = op.stat_key if isinstance(op, Filter) else None
        bounds = op.bound_values() if isinstance(op, Filter) else (None, None)
        out[label] = OpStats(name=op.name, kind=op.kind, stat_key=stat_key, bounds=bounds)
    return out


def _json_value(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def run_batch(recipe: Recipe, table: pa.Table, stats: RunStats,
              sample_limit: int = DROPPED_SAMPLE_PER_OP) -> BatchResult:
    """Apply the mappers and filters of `recipe` to `table`; book into `stats.ops`."""
    text_key = recipe.text_key
    texts: list[str] = table.column(text_key).to_pylist()
    alive = list(range(len(texts)))  # row indices into `table`
    docs: list[Doc] | None = None
    quarantined: list[dict] = []
    ids = table.column(ID).to_pylist()
    for label, op in zip(recipe.op_labels(), recipe.mappers_and_filters):
        book = stats.ops[label]
        book.docs_in += len(alive)
        if isinstance(op, Mapper):
            current = [texts[i] for i in alive]
            outputs, failed, seconds, modified = _run_mapper(op, current)
            book.seconds += seconds
            book.modified += modified
            survivors = []
            for pos, (row, text_in, out) in enumerate(zip(alive, current, outputs)):
                if pos in failed:
                    quarantined.append({"id": ids[row], "op": label, "reason": failed[pos]})
                    continue
                book.chars_in += len(text_in)
                book.chars_out += len(out)
                texts[row] = out
                survivors.append(row)
            book.errors += len(failed)
            alive = survivors
            book.docs_out += len(alive)
            docs = None
        else:
            if docs is None:
                docs = [Doc(texts[i]) for i in alive]
            values, failed, seconds = _run_filter(op, docs)
            book.seconds += seconds
            survivors, kept_docs, kept_values = [], [], []
            for pos, (row, doc, value) in enumerate(zip(alive, docs, values)):
                if pos in failed:
                    quarantined.append({"id": ids[row], "op": label, "reason": failed[pos]})
                    continue
                n = len(doc.text)
                book.chars_in += n
                kept_values.append(value)
                if op.keeps(value):
                    survivors.append(row)
                    kept_docs.append(doc)
                    book.chars_out += n
                else:
                    book.dropped += 1
                    if len(book.dropped_sample) < sample_limit:
                        book.dropped_sample.append(
                            {"id": ids[row], "value": _json_value(value), "text": doc.text[:2000]}
                        )
            book.errors += len(failed)
            book.distribution.add(kept_values)
            alive, docs = survivors, kept_docs
            book.docs_out += len(alive)
    out = take_rows(table, alive)
    idx = out.schema.get_field_index(text_key)
    out = out.set_column(idx, text_key, pa.array([texts[i] for i in alive], pa.string()))
    return BatchResult(table=out, quarantined=quarantined)


def _run_mapper(op: Mapper, texts: list[str]) -> tuple[list[str], dict[int, str], float, int]:
    start = time.process_time()
    try:
        result = op.apply(texts)
        return result.texts, {}, result.seconds, result.modified
    except Exception:  # noqa: BLE001 - isolate the failing record(s) below
        pass
    outputs, failed, modified = [], {}, 0
    for i, text in enumerate(texts):
        try:
            out = op.map_text(text)
            if not isinstance(out, str):
                raise TypeError(f"returned {type(out).__name__}, not str")
        except Exception as exc:  # noqa: BLE001
            failed[i] = f"{type(exc).__name__}: {exc}"
            out = text
        modified += out != text
        outputs.append(out)
    return outputs, failed, time.process_time() - start, modified


def _run_filter(op: Filter, docs: list[Doc]) -> tuple[list, dict[int, str], float]:
    start = time.process_time()
    try:
        result = op.apply(docs)
        return result.values, {}, result.seconds
    except Exception:  # noqa: BLE001
        pass
    values, failed = [], {}
    for i, doc in enumerate(docs):
        try:
            values.append(op.compute_stat(doc))
        except Exception as exc:  # noqa: BLE001
            failed[i] = f"{type(exc).__name__}: {exc}"
            values.append(float("nan"))
    return values, failed, time.process_time() - start
