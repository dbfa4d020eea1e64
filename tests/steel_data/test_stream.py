"""The token stream without a server: rank/worker slicing, epochs, exact resume on another world size."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steel_data.order import sample_index, samples
from steel_data.stream import LocalSource, TokenStream, open_source, read_samples


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, sample_dir):
    """A real shard set (Qwen tokenizer, 4 shards, short windows) from the built-in sample's text."""
    import orjson

    from steel_data.sample import read_texts
    from steel_data.tokenize import TokenizeConfig, tokenize

    src = tmp_path_factory.mktemp("streamsrc")
    docs = read_texts(sample_dir / "input")
    for k in range(4):
        (src / f"d{k}.jsonl").write_bytes(b"".join(orjson.dumps({"text": t}) + b"\n" for t in docs[k::4]))
    out = tmp_path_factory.mktemp("streamds") / "ds"
    tokenize(TokenizeConfig(inputs=[str(src)], output=out, seq_len=15, workers=1, shard_bytes=20_000))
    return out


def global_order(ds, seed, first, count):
    """Positions [first, first + count) of the endless stream, straight from steel_data.order."""
    n = LocalSource(ds).epoch_length
    out = []
    for g in range(first, first + count):
        e, i = divmod(g, n)
        out.append(samples(ds, seed, e, i, 1)[0])
    return np.stack(out)


def take(stream, k):
    it = iter(stream)
    return np.stack([next(it) for _ in range(k)])


def test_read_samples_matches_the_order_with_any_stride(dataset):
    src = LocalSource(dataset)
    n = src.epoch_length
    assert n > 1000
    np.testing.assert_array_equal(src.fetch(3, 1, 10, 50), samples(dataset, 3, 1, 10, 50))
    strided = read_samples(src.shards, 3, 1, 7, 40, stride=9)
    full = samples(dataset, 3, 1, 7, 40 * 9)
    np.testing.assert_array_equal(strided, full[::9])
    assert src.samples(0, 0, 0, 5).shape == (5, src.window) and src.describe()["kind"] == "local"


def test_ranks_interleave_into_the_global_order(dataset):
    w, k = 4, 30
    per_rank = [take(TokenStream(dataset, seed=5, rank=r, world_size=w, chunk=7), k) for r in range(w)]
    merged = np.empty((w * k, per_rank[0].shape[1]), per_rank[0].dtype)
    for r in range(w):
        merged[r::w] = per_rank[r]
    np.testing.assert_array_equal(merged, global_order(dataset, 5, 0, w * k))


def test_workers_split_a_rank_in_chunks(dataset):
    rank_alone = take(TokenStream(dataset, seed=1, rank=1, world_size=3, chunk=5), 60)
    n = 3
    workers = [iter(TokenStream(dataset, seed=1, rank=1, world_size=3, worker=w, num_workers=n, chunk=5))
               for w in range(n)]
    dataloader_order = []
    for c in range(12):  # a DataLoader yields worker c % n's next batch of 5
        dataloader_order += [next(workers[c % n]) for _ in range(5)]
    np.testing.assert_array_equal(np.stack(dataloader_order), rank_alone)


@pytest.mark.parametrize("old_world,new_world", [(3, 2), (2, 5), (4, 4), (1, 3)])
def test_resume_on_another_world_size_reads_exactly_the_rest(dataset, old_world, new_world):
    src = LocalSource(dataset)
    n = src.epoch_length
    start, k, per_new = n - 100, 37, 30  # the old group crosses into epoch 1 or close to it
    old = [TokenStream(src, seed=9, rank=r, world_size=old_world, chunk=8, position=start)
           for r in range(old_world)]
    seen = [take(s, k) for s in old]
    state = old[0].state_dict()
    assert all(s.state_dict() == state for s in old)  # every rank saves the same state
    assert state["epoch"] * n + state["index"] == start + k * old_world
    new = []
    for r in range(new_world):
        s = TokenStream(src, seed=9, rank=r, world_size=new_world, chunk=6)
        s.load_state_dict(state)
        new.append(take(s, per_new))
    before = np.empty((k * old_world, src.window), src.dtype)
    for r in range(old_world):
        before[r::old_world] = seen[r]
    after = np.empty((per_new * new_world, src.window), src.dtype)
    for r in range(new_world):
        after[r::new_world] = new[r]
    stream = np.concatenate([before, after])
    expected = np.concatenate([samples(dataset, 9, 0, start, 100),
                               samples(dataset, 9, 1, 0, len(stream) - 100)])
    np.testing.assert_array_equal(stream, expected)  # nothing skipped, nothing twice


def test_epochs_chain_and_stop(dataset):
    src = LocalSource(dataset)
    n = src.epoch_length
    s = TokenStream(src, seed=2, chunk=64, position=n - 10, stop=n + 20)
    got = np.stack(list(s))
    assert len(got) == 30
    np.testing.assert_array_equal(got[:10], samples(dataset, 2, 0, n - 10, 10))
    np.testing.assert_array_equal(got[10:], samples(dataset, 2, 1, 0, 20))
    assert s.state_dict()["epoch"] == 1 and s.state_dict()["index"] == 20
    # two epochs are two different permutations of the same windows
    e0, e1 = sample_index(dataset, 2, 0, 0, n), sample_index(dataset, 2, 1, 0, n)
    assert not np.array_equal(e0, e1)
    assert sorted(map(tuple, e0)) == sorted(map(tuple, e1))


def test_state_checks(dataset):
    s = TokenStream(dataset, seed=1)
    take(s, 3)
    state = s.state_dict()
    with pytest.raises(ValueError, match="seed"):
        TokenStream(dataset, seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="not a"):
        s.load_state_dict({"epoch": 0})
    with pytest.raises(ValueError):
        TokenStream(dataset, rank=2, world_size=2)
    with pytest.raises(ValueError, match="name the dataset"):
        open_source("http://127.0.0.1:1/")


def test_iterating_again_continues(dataset):
    s = TokenStream(dataset, seed=4, chunk=5)
    first = take(s, 7)
    second = take(s, 6)
    np.testing.assert_array_equal(np.concatenate([first, second]), global_order(dataset, 4, 0, 13))


def test_torch_dataset_state_and_workers(dataset):
    torch = pytest.importorskip("torch")
    from steel_data.stream_torch import StreamLoader, TokenStreamDataset

    ds = TokenStreamDataset(dataset, seed=6, batch_size=4, rank=0, world_size=2)
    loader = StreamLoader(ds, num_workers=2)
    batches = []
    for b in loader:
        batches.append(b)
        if len(batches) == 5:
            break
    assert batches[0].dtype == torch.int64 and batches[0].shape == (4, 16)
    got = torch.cat(batches).numpy()
    expected = global_order(dataset, 6, 0, 40)[0::2]  # rank 0 of 2
    np.testing.assert_array_equal(got, expected)
    state = loader.state_dict()
    assert state["index"] == 40
    # resume as one rank, without workers: exactly the rest
    ds2 = TokenStreamDataset(dataset, seed=6, batch_size=3, rank=0, world_size=1)
    ds2.load_state_dict(state)
    rest = next(iter(StreamLoader(ds2)))
    np.testing.assert_array_equal(rest.numpy(), global_order(dataset, 6, 40, 3))
    assert ds2.state_dict()["index"] == 43


def test_index_cache_matches_the_order(dataset):
    from steel_data.stream import IndexCache

    src = LocalSource(dataset)
    cache = IndexCache(block=100, max_blocks=3)
    n = src.epoch_length
    for start, count, stride in ((0, 10, 1), (95, 20, 1), (7, 50, 13), (n - 30, 30, 1), (3, 40, 7)):
        np.testing.assert_array_equal(read_samples(src.shards, 2, 1, start, count, stride, cache=cache),
                                      samples(dataset, 2, 1, start, (count - 1) * stride + 1)[::stride])
    assert len(cache._blocks) <= 3


def _expected_runs(index: np.ndarray) -> int:
    """Runs of samples whose windows follow each other in one shard, counted one pair at a time."""
    return 1 + sum(1 for a, b in zip(index[:-1], index[1:]) if not (a[0] == b[0] and b[1] == a[1] + 1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**63 - 1), epoch=st.integers(0, 5), start=st.integers(0, 900),
       count=st.integers(1, 300), stride=st.integers(1, 4))
def test_sample_spans_are_the_samples_bytes(dataset, seed, epoch, start, count, stride):
    """The server's views of the shard maps: the same bytes as the gathered samples, one view per run of adjacent
    windows, none of them a copy."""
    from steel_data.order import sample_index_at
    from steel_data.stream import WindowDigests, checksum, sample_spans

    shards = LocalSource(dataset).shards
    count = min(count, (shards.manifest.epoch_windows - 1 - start) // stride + 1)
    spans = sample_spans(shards, seed, epoch, start, count, stride)
    assert b"".join(spans) == read_samples(shards, seed, epoch, start, count, stride).tobytes()
    index = sample_index_at(shards, seed, epoch, np.arange(start, start + count * stride, stride, dtype=np.uint64))
    assert len(spans) == _expected_runs(index)
    assert all(span.readonly and isinstance(span.obj, np.memmap) for span in spans)
    # the server's checksum from kept window digests (a table of two shards at most: evictions on the way)
    digests = WindowDigests(max_shards=2)
    rows = read_samples(shards, seed, epoch, start, count, stride)
    assert digests.checksum(shards, index) == checksum(rows) == digests.checksum(shards, index)
    assert len(digests._tables) <= 2
    # without computing: None until every shard the request touches has its digests kept
    fresh = WindowDigests()
    assert fresh.checksum(shards, index, compute=False) is None and not fresh._tables
    for s in np.unique(index[:, 0]):
        fresh.shard(shards, int(s))
    assert fresh.checksum(shards, index, compute=False) == checksum(rows)


def test_sample_spans_join_adjacent_windows(dataset):
    """A whole epoch under some seed has windows that follow each other (about one pair per epoch): found, they
    come as one view, and the bytes still match."""
    from steel_data.stream import IndexCache, sample_spans

    shards = LocalSource(dataset).shards
    n = shards.manifest.epoch_windows
    for seed in range(60):
        spans = sample_spans(shards, seed, 0, 0, n, cache=IndexCache())
        if len(spans) < n:
            break
    else:
        pytest.fail("no seed in 60 put two adjacent windows next to each other")
    assert b"".join(spans) == read_samples(shards, seed, 0, 0, n).tobytes()
    assert max(len(s) for s in spans) >= 2 * shards.window * shards.dtype.itemsize
    assert sample_spans(shards, seed, 0, 0, 0) == []
    with pytest.raises(IndexError):
        sample_spans(shards, seed, 0, n - 1, 2)


def test_checksum_is_the_hash_of_window_digests():
    """The samples checksum as the HTTP contract words it, computed independently; and one changed token in any
    window changes it, as does swapping two windows."""
    import xxhash

    from steel_data.stream import checksum

    rng = np.random.default_rng(3)
    rows = rng.integers(0, 151_000, size=(6, 33), dtype=np.int32)
    digests = b"".join(xxhash.xxh3_64_intdigest(r.astype("<i4").tobytes()).to_bytes(8, "little") for r in rows)
    assert checksum(rows) == xxhash.xxh3_64_intdigest(digests)
    for k in range(6):
        changed = rows.copy()
        changed[k, 17] ^= 1
        assert checksum(changed) != checksum(rows)
    assert checksum(rows[[1, 0, 2, 3, 4, 5]]) != checksum(rows)
    assert checksum(rows[:0]) == xxhash.xxh3_64_intdigest(b"")
    with pytest.raises(ValueError):
        checksum(rows.ravel())
