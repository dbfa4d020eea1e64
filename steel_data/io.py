"""Atomic writes: a file appears under its final name complete, or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq


def skip_pandas_probe() -> bool:
    """Stop pyarrow from importing pandas on its first conversion; True if the probe was skipped.

    `pa.array` checks whether its input is a pandas object, and the first check imports pandas when it is
    installed (ray[data] installs it): about 0.26 s per process, a tenth of a small `steel run`, for a library
    Steel's commands never use. Both of pyarrow's probes (the Python shim and the C++ converter) try the
    import once per process; here they try it while it is blocked, and remember "no pandas". The block is
    lifted at once: explicit conversions (`Table.to_pandas`) and other libraries still import pandas."""
    import sys

    if "pandas" in sys.modules:
        return False

    class _NoPandas:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name == "pandas":
                raise ImportError("pandas is hidden from pyarrow's probe")
            return None

    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        pa.array(["probe"])  # runs both probes (pyarrow's Python shim and its C++ converter) once, failing
    finally:
        sys.meta_path.remove(blocker)
    return True


def take_rows(table: pa.Table, rows: list[int]) -> pa.Table:
    """`table.take(rows)` for strictly increasing row numbers, without pyarrow.compute: each run of
    consecutive rows is a zero-copy slice, and the slices are concatenated. (`Table.take` and `filter` import
    pyarrow.compute, whose import scrapes the docstrings of ~300 kernels: 0.05 s in every process.)"""
    if len(rows) == table.num_rows:
        return table
    pieces, run_start, previous = [], None, None
    for row in rows:
        if previous is None or row != previous + 1:
            if run_start is not None:
                pieces.append(table.slice(run_start, previous + 1 - run_start))
            run_start = row
        previous = row
    if run_start is not None:
        pieces.append(table.slice(run_start, previous + 1 - run_start))
    if not pieces:
        return table.slice(0, 0)
    return pa.concat_tables(pieces).combine_chunks()


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_bytes_atomic(path: Path, data: bytes, fsync: bool = True) -> None:
    """`fsync=False`: the file appears complete or not at all while the system runs, but after a crash it may
    be missing or cut short; for files whose loss only costs redoing work."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    with open(tmp, "wb") as fh:
        fh.write(data)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, obj) -> None:
    write_bytes_atomic(path, orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))


def write_jsonl_atomic(path: Path, rows: list[dict]) -> None:
    write_bytes_atomic(path, b"".join(orjson.dumps(r, default=str) + b"\n" for r in rows))


def write_table_atomic(path: Path, table: pa.Table, fmt: str = "parquet") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    if fmt == "parquet":
        pq.write_table(table, tmp, compression="zstd")
    elif fmt == "jsonl":
        with open(tmp, "wb") as fh:
            for row in table.to_pylist():
                fh.write(orjson.dumps(row, default=str) + b"\n")
    else:
        raise ValueError(f"unknown output format {fmt!r}")
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file. (`pq.read_table` goes through pyarrow.dataset, whose first use costs ~0.25 s of
    imports: a quarter of a small job's serial stages.)"""
    return pq.ParquetFile(path).read(columns=columns)


def read_json(path: Path):
    return orjson.loads(Path(path).read_bytes())
