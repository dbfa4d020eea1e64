from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from steel_data.readers import InputError, TextMapping, count_records, expand_inputs, read_shard


def write(path, data: bytes):
    if path.suffix == ".gz":
        data = gzip.compress(data)
    elif path.suffix == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


def read_all(path, mapping=TextMapping()):
    (src,) = expand_inputs([str(path)])
    n = count_records(src)
    return read_shard(src, 0, n, mapping), n


@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz", "a.jsonl.zst", "a.json"])
def test_jsonl_variants_with_quarantine(tmp_path, name):
    lines = [
        json.dumps({"text": "good one", "lang": "en"}),
        "{not json",
        json.dumps({"content": "wrong field"}),
        json.dumps({"text": 5}),
        "",
        json.dumps(["a", "list"]),
        json.dumps({"text": "good two", "lang": "zh"}),
    ]
    path = write(tmp_path / name, ("\n".join(lines) + "\n").encode())
    read, n = read_all(path)
    assert read.table.column("text").to_pylist() == ["good one", "good two"]
    assert read.table.column("id").to_pylist() == [f"{name}#0", f"{name}#6"]
    assert read.table.column("lang").to_pylist() == ["en", "zh"]
    reasons = {q.record: q.reason for q in read.quarantined}
    assert set(reasons) == {1, 2, 3, 5}
    assert "invalid JSON" in reasons[1]
    assert "missing text field 'text'" in reasons[2]
    assert "int" in reasons[3]
    assert read.records == 6  # the blank line is not a record
    assert all(q.file == str(path) for q in read.quarantined)


def test_invalid_utf8_is_quarantined(tmp_path):
    path = write(tmp_path / "b.jsonl", b'{"text": "ok"}\n{"text": "bad \xff\xfe bytes"}\n')
    read, _ = read_all(path)
    assert read.table.num_rows == 1
    assert read.quarantined[0].reason == "invalid UTF-8"
    assert read.quarantined[0].to_json()["line"] == 2


def test_lone_surrogate_escape_is_quarantined(tmp_path):
    path = write(tmp_path / "s.jsonl", b'{"text": "ok"}\n{"text": "bad \\ud800 x"}\n')
    read, _ = read_all(path)
    assert read.table.num_rows == 1 and len(read.quarantined) == 1


def test_json_array_and_template(tmp_path):
    data = [{"title": "T1", "summary": "S1"}, {"title": "T2", "summary": None}, {"title": 3, "summary": "x"}]
    path = write(tmp_path / "arr.json.gz", json.dumps(data).encode())
    read, n = read_all(path, TextMapping(template="{title}\n{summary}"))
    assert n == 3
    assert read.table.column("text").to_pylist() == ["T1\nS1", "T2\n"]
    assert read.table.column("title").to_pylist() == ["T1", "T2"]
    assert "template field 'title'" in read.quarantined[0].reason


def test_parquet_with_text_key_and_ranges(tmp_path):
    table = pa.table({"content": ["a", None, "c", "d"], "n": [1, 2, 3, 4]})
    pq.write_table(table, tmp_path / "p.parquet")
    (src,) = expand_inputs([str(tmp_path / "p.parquet")])
    read = read_shard(src, 1, 4, TextMapping(source_key="content"))
    assert read.table.column("text").to_pylist() == ["c", "d"]
    assert read.table.column("id").to_pylist() == ["p.parquet#2", "p.parquet#3"]
    assert read.table.column("n").to_pylist() == [3, 4]
    assert [q.record for q in read.quarantined] == [1]
    assert read.records == 3


def test_parquet_non_string_text_is_quarantined(tmp_path):
    pq.write_table(pa.table({"text": [1, 2]}), tmp_path / "n.parquet")
    read, _ = read_all(tmp_path / "n.parquet")
    assert read.table.num_rows == 0 and len(read.quarantined) == 2


def test_bad_inputs_are_refused(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        expand_inputs([str(tmp_path / "missing.jsonl")])
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(InputError, match="unknown format"):
        expand_inputs([str(tmp_path / "x.csv")])
    with pytest.raises(InputError, match="template"):
        TextMapping(template="{title")


def test_folder_inputs_are_sorted_and_labels_disambiguated(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        write(tmp_path / sub / "same.jsonl", b'{"text": "x"}\n')
    sources = expand_inputs([str(tmp_path)])
    assert [s.path for s in sources] == sorted(s.path for s in sources)
    assert len({s.label for s in sources}) == 2


@pytest.mark.corpus
def test_real_sources_read_cleanly(corpus):
    steel = corpus / "steel"
    cases = [
        ("sky_2021-31_zh_head_0000_sample.jsonl", TextMapping()),
        ("wanjuan_part-010205-a894b46e_sample.jsonl", TextMapping(source_key="content")),
        ("wiki_cn_wikipedia-cn-20230720-filtered_sample.json", TextMapping(source_key="completion")),
        ("baidu_baike_563w_baidubaike_sample.json", TextMapping(template="{title}\n{summary}")),
        ("starcode_python_train-00000-of-00059_python_sample.parquet", TextMapping(source_key="content")),
    ]
    for name, mapping in cases:
        read, n = read_all(steel / name, mapping)
        assert read.table.num_rows + len(read.quarantined) == read.records > 0, name
        assert read.table.num_rows > 0.9 * read.records, name


def test_plain_jsonl_shards_seek_to_their_first_line(tmp_path):
    from steel_data.readers import line_offsets

    lines = [json.dumps({"text": f"doc {i}"}) for i in range(10)]
    path = write(tmp_path / "o.jsonl", ("\n".join(lines) + "\n").encode())
    (src,) = expand_inputs([str(path)])
    offsets = line_offsets(src, 4)
    assert offsets == [0, sum(len(x) + 1 for x in lines[:4]), sum(len(x) + 1 for x in lines[:8])]
    seeked = read_shard(src, 4, 8, TextMapping(), offsets[1])
    scanned = read_shard(src, 4, 8, TextMapping())
    assert seeked.table.equals(scanned.table)
    assert seeked.table.column("id").to_pylist() == [f"o.jsonl#{i}" for i in range(4, 8)]
    gz = write(tmp_path / "o.jsonl.gz", ("\n".join(lines) + "\n").encode())
    assert line_offsets(expand_inputs([str(gz)])[0], 4) is None
