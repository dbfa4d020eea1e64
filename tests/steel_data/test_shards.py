"""The shard format: read back by Megatron's own reader (where it installs) and by an independent reader written
from the format's description; checksums catch corruption."""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from steel_data import tokenize as tk
from steel_data.shards import CorruptShard, TokenShards, index_bytes, load_manifest, read_index
from tests.steel_data import _tokdata as td


@pytest.fixture(scope="module")
def shard_set(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shards")
    docs = td.make_docs("mixed", 250, 11)
    src = td.write_parquet_parts(tmp / "in", docs, per_part=40)
    tk.tokenize(tk.TokenizeConfig(inputs=[str(src)], output=tmp / "out", seq_len=63, shard_bytes=5000, workers=1))
    return tmp / "out", docs


# -- an independent reader: written from Megatron's index layout, sharing no code with steel_data.shards -----
DTYPES = {1: "u1", 2: "i1", 3: "<i2", 4: "<i4", 5: "<i8", 6: "<f8", 7: "<f4", 8: "<u2"}


def spec_read(prefix: Path) -> tuple[list[list[int]], list[int], str]:
    """(sequences, document indices, dtype) of PREFIX.idx / PREFIX.bin."""
    with open(f"{prefix}.idx", "rb") as fh:
        assert fh.read(9) == b"MMIDIDX\x00\x00"
        (version,) = struct.unpack("<Q", fh.read(8))
        (code,) = struct.unpack("<B", fh.read(1))
        n_seq, n_doc = struct.unpack("<QQ", fh.read(16))
        lengths = struct.unpack(f"<{n_seq}i", fh.read(4 * n_seq))
        pointers = struct.unpack(f"<{n_seq}q", fh.read(8 * n_seq))
        doc_idx = list(struct.unpack(f"<{n_doc}q", fh.read(8 * n_doc)))
        assert fh.read() == b""  # nothing after the document indices
    assert version == 1
    dt = np.dtype(DTYPES[code])
    seqs = []
    with open(f"{prefix}.bin", "rb") as fh:
        for length, ptr in zip(lengths, pointers):
            fh.seek(ptr)
            seqs.append(np.frombuffer(fh.read(length * dt.itemsize), dtype=dt).tolist())
        fh.seek(0, os.SEEK_END)
        assert fh.tell() == sum(lengths) * dt.itemsize  # the sequences tile the .bin exactly
    return seqs, doc_idx, dt.name


def test_independent_reader_reads_our_shards(shard_set):
    root, docs = shard_set
    m = load_manifest(root)
    qwen = tk.get_tokenizer("qwen")
    texts = []
    for entry in m.shards:
        seqs, doc_idx, dtype = spec_read(root / entry.name)
        assert dtype == m.dtype == "int32"
        assert doc_idx == list(range(len(seqs) + 1))  # one sequence per document
        assert len(seqs) == entry.docs and sum(map(len, seqs)) == entry.tokens
        for s in seqs:
            assert s[-1] == m.eod_id
            texts.append(qwen.decode(s[:-1]))
    assert texts == td.expected_docs(docs)


MEGATRON_SCRIPT = r"""
import json, sys
from megatron.core.datasets.indexed_dataset import IndexedDataset
out = []
for prefix in sys.argv[1:]:
    assert IndexedDataset.exists(prefix)
    ds = IndexedDataset(prefix, multimodal=False, mmap=True)
    out.append({"len": len(ds), "documents": ds.document_indices.tolist(), "lengths": ds.sequence_lengths.tolist(),
                "dtype": str(ds[0].dtype), "sequences": [ds[i].tolist() for i in range(len(ds))],
                "partial": ds.get(0, offset=1, length=2).tolist()})
print(json.dumps(out))
"""


def test_megatron_reader_reads_our_shards(shard_set):
    """Megatron-LM's own IndexedDataset: in this environment if megatron-core imports, else in the Python named
    by STEEL_MEGATRON_PYTHON (an environment with torch + megatron-core), else skipped."""
    root, _ = shard_set
    m = load_manifest(root)
    prefixes = [str(root / s.name) for s in m.shards]
    other = os.environ.get("STEEL_MEGATRON_PYTHON")
    if importlib.util.find_spec("megatron") is not None:
        python = sys.executable
    elif other:
        python = other
    else:
        pytest.skip("megatron-core is not installed (`make test` installs it: the `megatron` extra); or set "
                    "STEEL_MEGATRON_PYTHON to a Python that has it. The independent reader test covers the format "
                    "meanwhile.")
    proc = subprocess.run([python, "-c", MEGATRON_SCRIPT, *prefixes], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    ds = TokenShards(root)
    for i, (entry, meg) in enumerate(zip(m.shards, got)):
        ours = ds.documents(i)
        assert meg["len"] == entry.docs and meg["dtype"] == "int32"
        assert meg["documents"] == list(range(entry.docs + 1))
        assert meg["sequences"] == [d.tolist() for d in ours]
        assert meg["partial"] == ours[0][1:3].tolist()


def test_index_layout_and_dtypes():
    lengths = np.array([3, 1, 5])
    data = index_bytes(lengths, np.dtype(np.uint16))
    assert data[:9] == b"MMIDIDX\x00\x00" and struct.unpack_from("<QBQQ", data, 9) == (1, 8, 3, 4)
    idx = read_index_bytes(data)
    assert idx.lengths.tolist() == [3, 1, 5] and idx.pointers.tolist() == [0, 6, 8]
    assert idx.document_indices.tolist() == [0, 1, 2, 3] and idx.dtype == np.uint16
    empty = read_index_bytes(index_bytes(np.array([], np.int64), np.dtype(np.int32)))
    assert empty.lengths.size == 0 and empty.document_indices.tolist() == [0]


def read_index_bytes(data: bytes):
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".idx") as fh:
        fh.write(data)
        fh.flush()
        return read_index(fh.name)


# -- corruption --------------------------------------------------------------------------------------------
@pytest.fixture
def fresh_set(tmp_path):
    src = td.write_parquet_parts(tmp_path / "in", td.make_docs("zh", 120, 5), per_part=30)
    tk.tokenize(tk.TokenizeConfig(inputs=[str(src)], output=tmp_path / "out", seq_len=31, shard_bytes=3000,
                                  workers=1))
    TokenShards(tmp_path / "out", verify=True)  # intact: no complaint
    return tmp_path / "out"


def test_flipped_byte_in_bin_detected(fresh_set):
    path = fresh_set / "shard-00001.bin"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    TokenShards(fresh_set).verify(checksums=False)  # same size: only the checksum can tell
    with pytest.raises(CorruptShard, match=r"shard-00001\.bin: sha256 differs"):
        TokenShards(fresh_set, verify=True)


def test_truncated_or_missing_files_detected(fresh_set):
    bin0 = fresh_set / "shard-00000.bin"
    bin0.write_bytes(bin0.read_bytes()[:-4])
    ds = TokenShards(fresh_set)
    with pytest.raises(CorruptShard, match="shard-00000.bin: .* bytes, the manifest records"):
        ds.window_tokens(0, 0)
    with pytest.raises(CorruptShard, match="shard-00000.bin"):
        ds.verify(checksums=False)
    (fresh_set / "shard-00002.idx").unlink()
    with pytest.raises(CorruptShard, match="shard-00002.idx: missing"):
        load_and_verify_from(fresh_set, 2)


def load_and_verify_from(root, shard):
    from steel_data.shards import verify_shard

    ds = TokenShards(root)
    verify_shard(root, ds.manifest.shards[shard], ds.dtype)


def test_bad_index_and_manifest_detected(fresh_set):
    idx = fresh_set / "shard-00000.idx"
    good = idx.read_bytes()
    idx.write_bytes(b"NOTANIDX" + good[8:])
    with pytest.raises(CorruptShard, match="bad magic"):
        read_index(idx)
    idx.write_bytes(good[:-8])
    with pytest.raises(CorruptShard, match="header promises"):
        read_index(idx)
    manifest = fresh_set / "manifest.json"
    data = json.loads(manifest.read_text())
    data["shards"][1]["tokens"] += 1  # a manifest that disagrees with the index
    manifest.write_text(json.dumps(data))
    from steel_data.shards import verify_shard

    ds = TokenShards(fresh_set)
    with pytest.raises(CorruptShard, match="the manifest records"):
        verify_shard(fresh_set, ds.manifest.shards[1], ds.dtype, checksums=False)
    manifest.write_text("{not json")
    with pytest.raises(CorruptShard, match="not a valid manifest"):
        load_manifest(fresh_set)
