"""The trainer's side of the token stream: where samples come from, and which ones each rank trains on.

A *source* serves global samples by position: `samples(seed, epoch, start, count)` -> int array
[count, seq_len + 1], a pure function of (dataset, seed, epoch) (DESIGN.md, "Token stream"). Sources come from
`steel_data.stream.open_source`, which owns the format and the HTTP client:

    PATH                                a `steel tokenize` folder, read in-process
    http(s)://HOST/v1/datasets/NAME     `steel serve` (retries, CRC checks; token from $STEEL_API_TOKEN)

`BatchStream` cuts the epoch into optimizer steps of `global_batch` samples. Step k of an epoch is samples
[k * G, (k + 1) * G); rank r of W takes the contiguous run [r * G/W, (r + 1) * G/W) of it, in micro-batches. Its
whole state is (epoch, consumed), the same on every rank, so a run resumes exactly, on any world size: the global
batch of every step is the same set of samples whatever W is. A partial last step of an epoch is skipped. The
next step's samples are fetched in a background thread while the current step trains.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np


class SampleSource(Protocol):
    seq_len: int
    vocab_size: int
    epoch_length: int  # samples per epoch

    def samples(self, seed: int, epoch: int, start: int, count: int) -> np.ndarray: ...

    def describe(self) -> dict: ...


def open_source(spec: str) -> SampleSource:
    """A shard folder or a `steel serve` dataset URL (see steel_data.stream.open_source)."""
    if not spec:
        raise ValueError("no data source: set data.source (or --data) to a shard folder or a steel serve URL")
    from steel_data.stream import open_source as open_stream_source

    return open_stream_source(spec)


@dataclass
class StreamState:
    epoch: int = 0
    consumed: int = 0
    """samples of `epoch` already trained on (a multiple of global_batch)"""


class BatchStream:
    """Yields, per optimizer step, this rank's micro-batches of the step's global batch."""

    def __init__(self, source: SampleSource, seed: int, global_batch: int, micro_batch: int, rank: int = 0,
                 world_size: int = 1, state: StreamState | None = None, prefetch: bool = False):
        if global_batch % (micro_batch * world_size):
            raise ValueError(f"data.global_batch {global_batch} is not a multiple of micro_batch {micro_batch} x "
                             f"{world_size} ranks")
        if global_batch > source.epoch_length:
            raise ValueError(f"data.global_batch {global_batch} is larger than an epoch "
                             f"({source.epoch_length} samples)")
        self.source, self.seed = source, seed
        self.global_batch, self.micro_batch = global_batch, micro_batch
        self.rank, self.world_size = rank, world_size
        self.accum = global_batch // (micro_batch * world_size)
        self.state = state or StreamState()
        self.prefetch = prefetch
        self._executor: ThreadPoolExecutor | None = None
        self._pending: tuple[tuple[int, int], Future] | None = None

    def _position(self) -> tuple[int, int]:
        """(epoch, first sample) of the next step: a partial step at the end of an epoch is skipped."""
        st = self.state
        if st.consumed + self.global_batch > self.source.epoch_length:
            return st.epoch + 1, 0
        return st.epoch, st.consumed

    def _fetch(self, epoch: int, start: int) -> np.ndarray:
        per_rank = self.global_batch // self.world_size
        return np.asarray(self.source.samples(self.seed, epoch, start + self.rank * per_rank, per_rank))

    def next_step(self) -> tuple[list[np.ndarray], dict]:
        """This rank's `accum` micro-batches [micro_batch, seq_len + 1] for the next step, and where they came
        from (epoch, start of the global batch, start of this rank's part). Advances the state."""
        epoch, start = self._position()
        pending, self._pending = self._pending, None
        block = pending[1].result() if pending is not None and pending[0] == (epoch, start) \
            else self._fetch(epoch, start)
        self.state = StreamState(epoch, start + self.global_batch)
        if self.prefetch:
            nxt = self._position()
            self._pending = (nxt, self._pool().submit(self._fetch, *nxt))
        per_rank = self.global_batch // self.world_size
        where = {"epoch": epoch, "start": start, "rank_start": start + self.rank * per_rank}
        return [block[i:i + self.micro_batch] for i in range(0, per_rank, self.micro_batch)], where

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="steel-prefetch")
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def state_dict(self) -> dict:
        return asdict(self.state)

    def load_state_dict(self, state: dict) -> None:
        self.state = StreamState(epoch=int(state["epoch"]), consumed=int(state["consumed"]))
        self._pending = None


def sample_digest(sample: np.ndarray) -> str:
    """A short checksum of one sample's tokens (little-endian int64), for traces and tests."""
    return hashlib.blake2b(np.ascontiguousarray(sample, dtype="<i8").tobytes(), digest_size=8).hexdigest()
