"""A thin torch wrapper over `steel_data.stream`: an IterableDataset and a loader that keeps its state.

    ds = TokenStreamDataset("http://host:8000/v1/datasets/mix", seed=0, batch_size=8)   # rank/world from
    loader = StreamLoader(ds, num_workers=2)                                            # torch.distributed
    for batch in loader: ...            # LongTensor [8, seq_len + 1]
    state = loader.state_dict()         # -> checkpoint; later, on any world size:
    loader.load_state_dict(state)

Rank r of W reads the interleaved positions r, r + W, ...; each DataLoader worker reads chunks of `batch_size`
of them (worker w: chunks w, w + n, ...), which the DataLoader yields back in order, so batch k of a rank is the
same whatever the number of workers. The state counts what the *consumer* received (in the main process), not
what workers prefetched. torch is imported here only; `steel_data.stream` works without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from steel_data.stream import SampleSource, TokenStream, make_state, open_source, position_of


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class TokenStreamDataset(IterableDataset):
    def __init__(self, source: str | Path | SampleSource, dataset: str | None = None, *, seed: int = 0,
                 batch_size: int = 8, rank: int | None = None, world_size: int | None = None, prefetch: int = 4,
                 fetch_threads: int = 1, token: str | None = None, stop: int | None = None, **http_options):
        super().__init__()
        self._spec = (source, dataset, token, http_options)
        self._source = open_source(source, dataset, token, **http_options)
        r, w = _dist_rank_world()
        self.rank = r if rank is None else rank
        self.world_size = w if world_size is None else world_size
        self.seed, self.batch_size, self.prefetch, self.fetch_threads = seed, batch_size, prefetch, fetch_threads
        self.stop = stop
        self.epoch_length = self._source.epoch_length
        self.position = 0  # global position the group starts from
        self.consumed = 0  # samples this rank's consumer has received since `position`

    def __getstate__(self):  # workers reopen the source (connections and file maps do not cross processes)
        state = dict(self.__dict__)
        state["_source"] = None
        return state

    def __iter__(self):
        if self._source is None:
            source, dataset, token, http_options = self._spec
            self._source = open_source(source, dataset, token, **http_options)
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        start = self.position + self.consumed * self.world_size  # resume after what the consumer has seen
        stream = TokenStream(self._source, seed=self.seed, rank=self.rank, world_size=self.world_size,
                             worker=worker, num_workers=workers, chunk=self.batch_size, prefetch=self.prefetch,
                             fetch_threads=self.fetch_threads, position=start, stop=self.stop)
        for row in stream:
            if info is None:
                self.consumed += 1
            yield torch.from_numpy(row.astype(np.int64))

    def state_dict(self) -> dict:
        pos = self.position + self.consumed * self.world_size
        return make_state(pos if self.stop is None else min(pos, self.stop), self.epoch_length, self.seed)

    def load_state_dict(self, state: dict) -> None:
        self.position = position_of(state, self.epoch_length, self.seed)
        self.consumed = 0


class StreamLoader:
    """A DataLoader over a TokenStreamDataset (batch_size = the dataset's) that counts what it hands out."""

    def __init__(self, dataset: TokenStreamDataset, num_workers: int = 0, **loader_options):
        self.dataset = dataset
        self.num_workers = num_workers
        self.loader_options = loader_options

    def __iter__(self):
        ds = self.dataset
        if self.num_workers == 0:
            it = iter(DataLoader(ds, batch_size=ds.batch_size, num_workers=0, **self.loader_options))
            yield from it  # the dataset counts in this process
            return
        base = ds.consumed
        loader = DataLoader(ds, batch_size=ds.batch_size, num_workers=self.num_workers, **self.loader_options)
        received = 0
        for batch in loader:
            received += len(batch)
            ds.consumed = base + received
            yield batch

    def state_dict(self) -> dict:
        return self.dataset.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.dataset.load_state_dict(state)
