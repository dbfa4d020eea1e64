"""Readers for JSONL, JSON arrays and Parquet, plain or gzip/zstd, with per-record quarantine.

Every record a source holds ends up either as a row (with a stable id: source label and record index)
or as a quarantine entry naming file, record/line and reason. Nothing is skipped silently.
"""

from __future__ import annotations

import gzip
import io
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import orjson
import pyarrow as pa

from steel_data.schema import ID

JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}


class InputError(ValueError):
    """An input that cannot be read at all (missing file, unknown format, bad template)."""


@dataclass(frozen=True)
class Source:
    """One input file and how to read it."""

    path: str
    label: str  # stable name used in record ids
    fmt: str  # jsonl | json | parquet
    compression: str | None


@dataclass(frozen=True)
class TextMapping:
    """How a record's fields become the text column: a field name, or a template like `{title}\\n{summary}`."""

    text_key: str = "text"
    source_key: str | None = None
    template: str | None = None

    def __post_init__(self):
        if self.template is not None:
            try:
                fields = [f for _, f, _, _ in string.Formatter().parse(self.template) if f is not None]
            except ValueError as exc:
                raise InputError(f"bad --text-template {self.template!r}: {exc}") from None
            if not fields or any(not f.isidentifier() for f in fields):
                raise InputError(f"bad --text-template {self.template!r}: use {{field}} placeholders")

    @property
    def template_fields(self) -> list[str]:
        return [f for _, f, _, _ in string.Formatter().parse(self.template or "") if f]

    def extract(self, record: dict) -> str:
        """The text of one record; raises `BadRecord` with the reason."""
        if self.template is not None:
            values = {}
            for name in self.template_fields:
                value = record.get(name)
                if value is None:
                    value = ""  # an absent optional field (e.g. an empty `desc`) reads as empty
                if not isinstance(value, str):
                    raise BadRecord(f"template field {name!r} is {type(value).__name__}, not a string")
                values[name] = value
            return self.template.format(**values)
        key = self.source_key or self.text_key
        if key not in record:
            raise BadRecord(f"missing text field {key!r}")
        value = record[key]
        if not isinstance(value, str):
            raise BadRecord(f"text field {key!r} is {type(value).__name__}, not a string")
        return value


class BadRecord(ValueError):
    pass


@dataclass
class Quarantined:
    file: str
    record: int  # 0-based record index (JSONL: line index)
    reason: str
    raw: str = ""

    def to_json(self) -> dict:
        return {"file": self.file, "record": self.record, "line": self.record + 1, "reason": self.reason,
                "raw": self.raw[:500]}


@dataclass
class ShardRead:
    table: pa.Table
    quarantined: list[Quarantined] = field(default_factory=list)
    records: int = 0  # records read, good + quarantined


def detect(path: str | Path) -> tuple[str, str | None]:
    """(format, compression) from the file name; JSON files are sniffed (array vs lines) when read."""
    name = str(path).lower()
    compression = None
    for suffix, comp in COMPRESSIONS.items():
        if name.endswith(suffix):
            compression, name = comp, name[: -len(suffix)]
            break
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet", compression
    if name.endswith(JSON_SUFFIXES):
        return "json", compression
    raise InputError(f"{path}: unknown format (expected .jsonl, .json or .parquet, optionally .gz/.zst)")


def expand_inputs(inputs: list[str]) -> list[Source]:
    """Files, folders (searched recursively for known formats) and globs, in a stable order."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and _known(f))
            if not found:
                raise InputError(f"{item}: folder holds no .jsonl/.json/.parquet files")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        elif any(ch in item for ch in "*?["):
            found = sorted(Path().glob(item)) if not p.is_absolute() else sorted(Path("/").glob(item.lstrip("/")))
            if not found:
                raise InputError(f"{item}: no file matches")
            files.extend(f for f in found if f.is_file())
        else:
            raise InputError(f"{item}: no such file or folder")
    labels: dict[str, int] = {}
    for f in files:
        labels[f.name] = labels.get(f.name, 0) + 1
    sources = []
    for f in files:
        fmt, comp = detect(f)
        label = f.name if labels[f.name] == 1 else str(f)
        sources.append(Source(path=str(f), label=label, fmt=fmt, compression=comp))
    return sources


def _known(path: Path) -> bool:
    try:
        detect(path)
        return True
    except InputError:
        return False


def open_binary(source: Source) -> io.BufferedIOBase:
    if source.compression == "gzip":
        return gzip.open(source.path, "rb")
    if source.compression == "zstd":
        import zstandard

        # buffered so that it iterates by line like the others
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(source.path, "rb"), closefd=True))
    return open(source.path, "rb")


def _is_json_array(source: Source) -> bool:
    with open_binary(source) as fh:
        head = fh.read(4096).lstrip()
    return head.startswith(b"[")


def count_records(source: Source) -> int:
    """Records in a source: lines of a JSONL file, elements of a JSON array, rows of a Parquet file."""
    if source.fmt == "parquet":
        import pyarrow.parquet as pq

        with open_binary(source) as fh:
            return pq.ParquetFile(fh).metadata.num_rows
    if _is_json_array(source):
        return len(_load_json_array(source))
    n = 0
    last = b"\n"
    with open_binary(source) as fh:
        while chunk := fh.read(1 << 22):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (0 if last == b"\n" else 1)


def line_offsets(source: Source, every: int) -> list[int] | None:
    """Byte offsets of lines 0, every, 2*every, ... of a plain (uncompressed) JSONL file, so that a shard
    can seek to its first line instead of reading past the lines before it; None where seeking is
    impossible (compressed files, JSON arrays, Parquet)."""
    if source.fmt != "json" or source.compression is not None or _is_json_array(source):
        return None
    offsets, line, pos = [0], 0, 0
    with open(source.path, "rb") as fh:
        for raw in fh:
            line += 1
            pos += len(raw)
            if line % every == 0:
                offsets.append(pos)
    return offsets


def _load_json_array(source: Source) -> list:
    with open_binary(source) as fh:
        data = orjson.loads(fh.read())
    if not isinstance(data, list):
        raise InputError(f"{source.path}: a .json file must hold a JSON array or JSON lines")
    return data


def iter_raw_records(
    source: Source, start: int, stop: int, offset: int | None = None
) -> Iterator[tuple[int, Any, bytes | None]]:
    """(record index, parsed object or exception, raw bytes) for records in [start, stop); `offset`, when
    known, is the byte offset of line `start` in a plain JSONL file."""
    if source.fmt == "json" and _is_json_array(source):
        data = _load_json_array(source)
        for i in range(start, min(stop, len(data))):
            yield i, data[i], None
        return
    with open_binary(source) as fh:
        first = 0
        if offset is not None:
            fh.seek(offset)
            first = start
        for i, line in enumerate(fh, first):
            if i < start:
                continue
            if i >= stop:
                break
            try:
                yield i, orjson.loads(line), line
            except orjson.JSONDecodeError as exc:
                yield i, exc, line


def read_shard(source: Source, start: int, stop: int, mapping: TextMapping, offset: int | None = None) -> ShardRead:
    """Records [start, stop) of a source as a table (`id`, text column, other fields) plus quarantine."""
    if source.fmt == "parquet":
        return _read_parquet_shard(source, start, stop, mapping)
    rows: list[dict] = []
    quarantined: list[Quarantined] = []
    records = 0
    for index, obj, raw in iter_raw_records(source, start, stop, offset):
        if raw is not None and not raw.strip():
            continue  # a blank line is not a record
        records += 1
        raw_text = raw.decode("utf-8", "replace") if raw is not None else ""
        if isinstance(obj, Exception):
            reason = "invalid UTF-8" if "utf-8" in str(obj).lower() else f"invalid JSON: {obj}"
            quarantined.append(Quarantined(source.path, index, reason, raw_text))
            continue
        if not isinstance(obj, dict):
            quarantined.append(Quarantined(source.path, index, f"record is a JSON {type(obj).__name__}, not an object",
                                           raw_text))
            continue
        try:
            text = mapping.extract(obj)
            _check_encodable(text)
        except BadRecord as exc:
            quarantined.append(Quarantined(source.path, index, str(exc), raw_text or _short_json(obj)))
            continue
        row = {k: v for k, v in obj.items() if k not in (mapping.text_key, ID)}
        row[ID] = f"{source.label}#{index}"
        row[mapping.text_key] = text
        rows.append(row)
    return ShardRead(table=rows_to_table(rows, mapping.text_key), quarantined=quarantined, records=records)


def _check_encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadRecord(f"text is not valid Unicode ({exc.reason} at {exc.start})") from None


def _short_json(obj: Any) -> str:
    try:
        return orjson.dumps(obj, default=str).decode()[:500]
    except TypeError:
        return repr(obj)[:500]


def rows_to_table(rows: list[dict], text_key: str) -> pa.Table:
    """Rows to Arrow; source fields whose values do not share one Arrow type are kept as JSON strings."""
    if not rows:
        return pa.table({ID: pa.array([], pa.string()), text_key: pa.array([], pa.string())})
    keys = list(dict.fromkeys(k for r in rows for k in r))
    columns = {}
    for key in keys:
        values = [r.get(key) for r in rows]
        try:
            columns[key] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[key] = pa.array([None if v is None else orjson.dumps(v, default=str).decode() for v in values])
    table = pa.table(columns)
    front = [ID, text_key]
    return table.select(front + [c for c in table.column_names if c not in front])


def _read_parquet_shard(source: Source, start: int, stop: int, mapping: TextMapping) -> ShardRead:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with open_binary(source) as fh:
        pf = pq.ParquetFile(fh)
        pieces, pos = [], 0
        for batch in pf.iter_batches(batch_size=4096):
            end = pos + batch.num_rows
            if end > start and pos < stop:
                pieces.append(batch.slice(max(0, start - pos), min(stop, end) - max(start, pos)))
            pos = end
            if pos >= stop:
                break
        table = pa.Table.from_batches(pieces, schema=pf.schema_arrow)
    n = table.num_rows
    quarantined: list[Quarantined] = []
    if mapping.template is not None:
        rows = table.to_pylist()
        texts: list[str | None] = []
        for i, row in enumerate(rows):
            try:
                texts.append(mapping.extract(row))
            except BadRecord as exc:
                texts.append(None)
                quarantined.append(Quarantined(source.path, start + i, str(exc), _short_json(row)))
        text = pa.array(texts, pa.string())
    else:
        key = mapping.source_key or mapping.text_key
        if key not in table.column_names:
            return ShardRead(
                table=rows_to_table([], mapping.text_key),
                quarantined=[Quarantined(source.path, start + i, f"missing text field {key!r}") for i in range(n)],
                records=n,
            )
        text = table.column(key)
        if not pa.types.is_string(text.type) and not pa.types.is_large_string(text.type):
            return ShardRead(
                table=rows_to_table([], mapping.text_key),
                quarantined=[Quarantined(source.path, start + i, f"text field {key!r} is {text.type}, not a string")
                             for i in range(n)],
                records=n,
            )
        text = text.cast(pa.string())
        nulls = pc.is_null(text).to_pylist()
        for i, is_null in enumerate(nulls):
            if is_null:
                quarantined.append(Quarantined(source.path, start + i, f"text field {key!r} is null"))
    ids = pa.array([f"{source.label}#{start + i}" for i in range(n)], pa.string())
    others = [c for c in table.column_names if c not in (mapping.text_key, ID, mapping.source_key)]
    out = pa.table({ID: ids, mapping.text_key: text, **{c: table.column(c) for c in others}})
    if quarantined:
        out = out.filter(pc.invert(pc.is_null(out.column(mapping.text_key))))
    return ShardRead(table=out, quarantined=quarantined, records=n)
