"""The token-shard format, written once: Megatron-LM indexed datasets (.bin + .idx) plus manifest.json.

Writer (`steel tokenize`), server and trainer all read this module; nothing else knows the layout.

A shard set is a folder:

    manifest.json          what the set is (schema: `Manifest`); written last, so its presence means complete
    shard-NNNNN.bin        tokens, little-endian, `dtype` (int32 for vocabularies of 65,500 ids or more)
    shard-NNNNN.idx        Megatron's index of the .bin

Every document is one sequence: its tokens followed by the end-of-document id. A shard holds documents of one
source only. Training samples are *windows*: the shard's token stream cut into consecutive, non-overlapping runs
of `seq_len + 1` tokens (inputs are `w[:-1]`, targets `w[1:]`); window k of a shard starts at token
k * (seq_len + 1), and the last `tokens % (seq_len + 1)` tokens of a shard belong to no window. Which windows an
epoch visits, how often and in what order is `steel_data.order`'s business (the mixture lives in the manifest).

The .idx layout (Megatron-LM `megatron/core/datasets/indexed_dataset.py`, version 1), all little-endian:

    offset  size            field
    0       9               magic b"MMIDIDX\\x00\\x00"
    9       8   uint64      version = 1
    17      1   uint8       dtype code (1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64, 7 float32, 8 uint16)
    18      8   uint64      sequence count S
    26      8   uint64      document count D (= S + 1 here: document_indices has a leading 0)
    34      4*S int32       sequence lengths, in tokens
    ..      8*S int64       sequence pointers, byte offsets into the .bin
    ..      8*D int64       document indices: sequence index where each document ends, starting with 0

so Megatron's `IndexedDataset`, NeMo and other readers of that format read our shards unchanged.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import orjson
from pydantic import BaseModel, Field

from steel_data import io as sio

FORMAT = "steel-token-shards"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
INDEX_MAGIC = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
HEADER_SIZE = len(INDEX_MAGIC) + 8 + 1 + 8 + 8  # 34
# Megatron's DType codes
DTYPE_CODES: dict[str, int] = {
    "uint8": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5, "float64": 6, "float32": 7, "uint16": 8,
}
CODE_DTYPES = {code: name for name, code in DTYPE_CODES.items()}
HASH = "sha256"


class CorruptShard(RuntimeError):
    """A shard (or the manifest) does not match what the manifest records, or breaks the format."""


def token_dtype(vocab_size: int) -> np.dtype:
    """Megatron's choice: uint16 while every id fits below 65,500, else int32."""
    return np.dtype(np.uint16 if vocab_size < 65500 else np.int32)


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


# -- manifest schema --------------------------------------------------------------------------------------
class TokenizerInfo(BaseModel):
    name: str = Field(description="what the user asked for (builtin name, path or hub id)")
    kind: str = Field(description="tiktoken | huggingface")
    source: str = Field(description="where the vocabulary came from (package and file, path, or hub id)")
    sha256: str = Field(description="hash of the vocabulary file (rank file or tokenizer.json) as loaded")
    vocab_size: int = Field(description="largest id the tokenizer can produce + 1")
    eod_token: str
    eod_id: int
    normalization: str | None = Field(description="Unicode normalization applied before encoding")


class InputPiece(BaseModel):
    path: str
    row_group: int | None = Field(None, description="Parquet row group; None: the whole file")
    rows: int


class ShardEntry(BaseModel):
    name: str = Field(description="file prefix: NAME.bin and NAME.idx beside the manifest")
    source: str
    docs: int
    skipped_docs: int = Field(description="null or empty texts, left out")
    tokens: int = Field(description="tokens in the .bin, end tokens included")
    windows: int = Field(description="complete windows of seq_len + 1 tokens")
    text_bytes: int = Field(description="UTF-8 bytes of the documents' text")
    bin_bytes: int
    idx_bytes: int
    bin_sha256: str
    idx_sha256: str
    inputs: list[InputPiece]


class SourceEntry(BaseModel):
    name: str
    inputs: list[str]
    source_jobs: list[dict] = Field(default_factory=list, description="the `steel run` jobs that cleaned it")
    docs: int
    skipped_docs: int
    tokens: int
    windows: int
    text_bytes: int
    weight: float = Field(description="share of the mixture's tokens (normalised)")
    epoch_windows: int = Field(description="windows of this source per epoch, after up- or down-sampling")
    ratio: float = Field(description="epoch_windows / windows: > 1 upsampled, < 1 downsampled")


class Manifest(BaseModel):
    format: str = FORMAT
    version: int = FORMAT_VERSION
    job: dict = Field(description="the tokenize job: id (hash of its inputs and options) and options")
    tokenizer: TokenizerInfo
    vocab_size: int
    dtype: str
    seq_len: int
    window: int = Field(description="tokens per sample: seq_len + 1")
    eod_id: int
    docs: int
    tokens: int
    windows: int
    epoch_windows: int = Field(description="samples per epoch (the mixture applied)")
    mixture: dict = Field(description="how the epoch was composed: weights given or natural, total")
    sources: list[SourceEntry]
    shards: list[ShardEntry]
    megatron_data_path: list[str] = Field(
        description="the same mixture as Megatron's --data-path: weight, prefix, weight, prefix, ... "
                    "(prefixes relative to the manifest's folder)")

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_INDENT_2) + b"\n"


def write_manifest(root: Path, manifest: Manifest) -> None:
    sio.write_bytes_atomic(Path(root) / MANIFEST, manifest.to_bytes())


def load_manifest(root: str | Path) -> Manifest:
    path = Path(root) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} not found (not a token shard set, or the tokenize job has not finished)")
    try:
        manifest = Manifest.model_validate(orjson.loads(path.read_bytes()))
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise CorruptShard(f"{path}: not a valid manifest: {exc}") from None
    if manifest.format != FORMAT or manifest.version != FORMAT_VERSION:
        raise CorruptShard(f"{path}: format {manifest.format!r} v{manifest.version} is not {FORMAT} v{FORMAT_VERSION}")
    return manifest


# -- writing ----------------------------------------------------------------------------------------------
@dataclass
class WrittenShard:
    docs: int
    tokens: int
    bin_bytes: int
    idx_bytes: int
    bin_sha256: str
    idx_sha256: str


def index_bytes(lengths: np.ndarray, dtype: np.dtype) -> bytes:
    """The .idx file for documents of these lengths (one sequence per document)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(lengths)
    if n and (lengths.min() < 0 or lengths.max() > np.iinfo(np.int32).max):
        raise ValueError("sequence lengths must fit in int32")
    pointers = np.zeros(n, dtype=np.int64)
    if n > 1:
        np.cumsum(lengths[:-1] * np.dtype(dtype).itemsize, out=pointers[1:])
    head = INDEX_MAGIC + struct.pack("<QBQQ", INDEX_VERSION, DTYPE_CODES[np.dtype(dtype).name], n, n + 1)
    doc_idx = np.arange(n + 1, dtype=np.int64)
    return b"".join([head, lengths.astype("<i4").tobytes(), pointers.astype("<i8").tobytes(),
                     doc_idx.astype("<i8").tobytes()])


class ShardWriter:
    """Appends documents (already ending in the end token) to PREFIX.bin; `close()` writes PREFIX.idx.

    Both files are written under temporary names and renamed into place on `close()`, so a shard is either
    complete on disk or absent.
    """

    def __init__(self, prefix: str | Path, dtype: np.dtype):
        self.prefix = Path(prefix)
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self._bin_tmp = self._tmp(".bin")
        self._fh: BinaryIO = open(self._bin_tmp, "wb")
        self._hash = hashlib.sha256()
        self._lengths: list[np.ndarray] = []
        self._tokens = 0

    def _tmp(self, suffix: str) -> Path:
        return self.prefix.with_name(f".{self.prefix.name}{suffix}.tmp-{os.getpid()}")

    def add(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        """Append documents: `tokens` is their concatenation, `lengths` their sizes (end token included)."""
        if tokens.dtype == np.uint32 and self.dtype == np.int32 and tokens.flags.c_contiguous:
            data = tokens.view(np.int32)  # ids of an int32 vocabulary are below 2**31: the same bits
        else:
            data = np.ascontiguousarray(tokens, dtype=self.dtype)
        if int(np.sum(lengths, dtype=np.int64)) != len(data):
            raise ValueError("lengths do not add up to the number of tokens")
        buf = memoryview(data).cast("B")
        self._fh.write(buf)
        self._hash.update(buf)
        self._lengths.append(np.asarray(lengths, dtype=np.int64))
        self._tokens += len(data)

    def close(self) -> WrittenShard:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.empty(0, np.int64)
        idx = index_bytes(lengths, self.dtype)
        idx_tmp = self._tmp(".idx")
        with open(idx_tmp, "wb") as fh:
            fh.write(idx)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(self._bin_tmp, self.prefix.with_name(self.prefix.name + ".bin"))
        os.replace(idx_tmp, self.prefix.with_name(self.prefix.name + ".idx"))
        return WrittenShard(docs=len(lengths), tokens=self._tokens, bin_bytes=self._tokens * self.dtype.itemsize,
                            idx_bytes=len(idx), bin_sha256=self._hash.hexdigest(),
                            idx_sha256=hashlib.sha256(idx).hexdigest())

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        for p in (self._bin_tmp, self._tmp(".idx")):
            if p.exists():
                p.unlink()


# -- reading ----------------------------------------------------------------------------------------------
@dataclass
class Index:
    dtype: np.dtype
    lengths: np.ndarray  # int32 [S]
    pointers: np.ndarray  # int64 [S], bytes
    document_indices: np.ndarray  # int64 [D]


def read_index(path: str | Path) -> Index:
    """Parse and check a Megatron .idx file (any dtype; no multimodal sequence modes)."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < HEADER_SIZE or data[:9] != INDEX_MAGIC:
        raise CorruptShard(f"{path}: not a Megatron index (bad magic)")
    version, code, n_seq, n_doc = struct.unpack_from("<QBQQ", data, 9)
    if version != INDEX_VERSION:
        raise CorruptShard(f"{path}: index version {version}, expected {INDEX_VERSION}")
    if code not in CODE_DTYPES:
        raise CorruptShard(f"{path}: unknown dtype code {code}")
    expected = HEADER_SIZE + 4 * n_seq + 8 * n_seq + 8 * n_doc
    if len(data) != expected:
        raise CorruptShard(f"{path}: {len(data)} bytes, the header promises {expected}")
    off = HEADER_SIZE
    lengths = np.frombuffer(data, "<i4", n_seq, off)
    pointers = np.frombuffer(data, "<i8", n_seq, off + 4 * n_seq)
    docs = np.frombuffer(data, "<i8", n_doc, off + 12 * n_seq)
    return Index(np.dtype(CODE_DTYPES[code]), lengths, pointers, docs)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


class TokenShards:
    """A finished shard set: its manifest, and windows and documents read from memory-mapped .bin files.

    `verify=True` checks every file against the manifest's sizes and checksums first (reads all bytes).
    Shards are opened lazily and at most `max_open` stay mapped.
    """

    def __init__(self, root: str | Path, verify: bool = False, max_open: int = 64):
        self.root = Path(root)
        self.manifest = load_manifest(self.root)
        m = self.manifest
        self.seq_len = m.seq_len
        self.window = m.window
        self.dtype = np.dtype(m.dtype).newbyteorder("<")
        self.eod_id = m.eod_id
        self._open: OrderedDict[int, np.ndarray] = OrderedDict()
        self._max_open = max_open
        self._by_name = {s.name: i for i, s in enumerate(m.shards)}
        if verify:
            self.verify()

    # - checks -
    def verify(self, checksums: bool = True) -> None:
        """Raise `CorruptShard` naming the first shard whose files differ from the manifest."""
        for entry in self.manifest.shards:
            verify_shard(self.root, entry, self.dtype, checksums=checksums)

    # - access -
    def bin_path(self, shard: int) -> Path:
        return self.root / f"{self.manifest.shards[shard].name}.bin"

    def idx_path(self, shard: int) -> Path:
        return self.root / f"{self.manifest.shards[shard].name}.idx"

    def tokens(self, shard: int) -> np.ndarray:
        """The shard's whole token stream (a read-only memory map)."""
        arr = self._open.get(shard)
        if arr is not None:
            self._open.move_to_end(shard)
            return arr
        entry = self.manifest.shards[shard]
        path = self.bin_path(shard)
        size = path.stat().st_size if path.exists() else -1
        if size != entry.bin_bytes:
            raise CorruptShard(f"{path}: {size} bytes, the manifest records {entry.bin_bytes}")
        arr = np.memmap(path, dtype=self.dtype, mode="r") if entry.tokens else np.empty(0, self.dtype)
        self._open[shard] = arr
        if len(self._open) > self._max_open:
            self._open.popitem(last=False)
        return arr

    def window_tokens(self, shard: int, k: int) -> np.ndarray:
        """Window k of a shard: `seq_len + 1` tokens (a copy)."""
        entry = self.manifest.shards[shard]
        if not 0 <= k < entry.windows:
            raise IndexError(f"{entry.name} has {entry.windows} windows, not {k}")
        start = k * self.window
        return np.array(self.tokens(shard)[start:start + self.window])

    def documents(self, shard: int) -> list[np.ndarray]:
        """The shard's documents, per its .idx, each ending in the end token."""
        index = read_index(self.idx_path(shard))
        toks = self.tokens(shard)
        item = self.dtype.itemsize
        return [np.array(toks[p // item:p // item + n]) for p, n in zip(index.pointers, index.lengths)]


def verify_shard(root: Path, entry: ShardEntry, dtype: np.dtype, checksums: bool = True) -> None:
    for suffix, size, digest in ((".bin", entry.bin_bytes, entry.bin_sha256),
                                 (".idx", entry.idx_bytes, entry.idx_sha256)):
        path = Path(root) / f"{entry.name}{suffix}"
        if not path.exists():
            raise CorruptShard(f"{path}: missing")
        actual = path.stat().st_size
        if actual != size:
            raise CorruptShard(f"{path}: {actual} bytes, the manifest records {size}")
        if checksums and file_sha256(path) != digest:
            raise CorruptShard(f"{path}: {HASH} differs from the manifest's (the file is corrupted)")
    index = read_index(Path(root) / f"{entry.name}.idx")
    if index.dtype != np.dtype(dtype).newbyteorder("="):
        raise CorruptShard(f"{entry.name}.idx: dtype {index.dtype}, the manifest says {dtype}")
    if len(index.lengths) != entry.docs or int(index.lengths.sum(dtype=np.int64)) != entry.tokens:
        raise CorruptShard(f"{entry.name}.idx: {len(index.lengths)} documents / {int(index.lengths.sum())} tokens, "
                           f"the manifest records {entry.docs} / {entry.tokens}")
