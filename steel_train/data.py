"""The trainer's side of the token stream: where samples come from, and which ones each rank trains on.

A *source* serves global samples by position: `samples(seed, epoch, start, count)` -> int array
[count, seq_len + 1], a pure function of (dataset, seed, epoch) (DESIGN.md, "Token stream"). Two sources:

    LocalShards(path)   a `steel tokenize` folder, read with `steel_data.shards` in `steel_data.order`'s order
    http(s)://...       `steel serve`, through `steel_data.stream` (the service's client), same interface

`BatchStream` cuts the epoch into optimizer steps of `global_batch` samples. Step k of an epoch is samples
[k * G, (k + 1) * G); rank r of W takes the contiguous run [r * G/W, (r + 1) * G/W) of it, in micro-batches. Its
whole state is (epoch, consumed), the same on every rank, so a run resumes exactly, on any world size: the global
batch of every step is the same set of samples whatever W is. A partial last step of an epoch is skipped.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


class SampleSource(Protocol):
    seq_len: int
    vocab_size: int
    epoch_length: int  # samples per epoch

    def samples(self, seed: int, epoch: int, start: int, count: int) -> np.ndarray: ...

    def describe(self) -> dict: ...


class LocalShards:
    """A finished token-shard folder on this machine."""

    def __init__(self, path: str | Path, verify: bool = False):
        from steel_data.shards import TokenShards

        self.path = Path(path)
        self.shards = TokenShards(self.path, verify=verify)
        m = self.shards.manifest
        self.seq_len, self.vocab_size, self.epoch_length = m.seq_len, m.vocab_size, m.epoch_windows
        self.eod_id = m.eod_id

    def samples(self, seed: int, epoch: int, start: int, count: int) -> np.ndarray:
        from steel_data.order import samples

        return samples(self.shards, seed, epoch, start, count)

    def describe(self) -> dict:
        m = self.shards.manifest
        return {"kind": "local", "path": str(self.path), "job": m.job.get("id"), "seq_len": m.seq_len,
                "vocab_size": m.vocab_size, "epoch_samples": m.epoch_windows, "tokens": m.tokens}


def open_source(spec: str) -> SampleSource:
    """`http(s)://...` -> the service's stream client; anything else -> a local shard folder."""
    if not spec:
        raise ValueError("no data source: set data.source (or --data) to a shard folder or a steel serve URL")
    if spec.startswith(("http://", "https://")):
        try:
            from steel_data import stream
        except ImportError:
            raise NotImplementedError(
                "streaming from `steel serve` needs steel_data.stream (the service's client), which this "
                "installation does not have; point --data at a local shard folder instead") from None
        return stream.open_source(spec)  # the same SampleSource interface, over HTTP
    return LocalShards(spec)


@dataclass
class StreamState:
    epoch: int = 0
    consumed: int = 0
    """samples of `epoch` already trained on (a multiple of global_batch)"""


class BatchStream:
    """Yields, per optimizer step, this rank's micro-batches of the step's global batch."""

    def __init__(self, source: SampleSource, seed: int, global_batch: int, micro_batch: int, rank: int = 0,
                 world_size: int = 1, state: StreamState | None = None):
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

    def next_step(self) -> tuple[list[np.ndarray], dict]:
        """This rank's `accum` micro-batches [micro_batch, seq_len + 1] for the next step, and where they came
        from ({epoch, start} of the global batch). Advances the state."""
        st = self.state
        if st.consumed + self.global_batch > self.source.epoch_length:
            st.epoch, st.consumed = st.epoch + 1, 0
        per_rank = self.global_batch // self.world_size
        start = st.consumed + self.rank * per_rank
        block = self.source.samples(self.seed, st.epoch, start, per_rank)
        where = {"epoch": st.epoch, "start": st.consumed, "rank_start": start}
        st.consumed += self.global_batch
        return [block[i:i + self.micro_batch] for i in range(0, per_rank, self.micro_batch)], where

    def state_dict(self) -> dict:
        return asdict(self.state)

    def load_state_dict(self, state: dict) -> None:
        self.state = StreamState(epoch=int(state["epoch"]), consumed=int(state["consumed"]))


def sample_digest(sample: np.ndarray) -> str:
    """A short checksum of one sample's tokens (little-endian int64), for traces and tests."""
    return hashlib.blake2b(np.ascontiguousarray(sample, dtype="<i8").tobytes(), digest_size=8).hexdigest()
