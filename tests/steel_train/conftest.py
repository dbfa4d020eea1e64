"""Trainer tests. They need torch (the [train] extra) and skip, saying so, where it is missing.

Triton kernels run on the CPU under Triton's interpreter (TRITON_INTERPRET=1, set here before anything imports
triton). With STEEL_TEST_DEVICE=cuda (bench/gpu_check.sh) the parity tests run on the GPU, compiled.
"""

from __future__ import annotations

import os

import pytest

DEVICE = os.environ.get("STEEL_TEST_DEVICE", "cpu")
if DEVICE == "cpu":
    os.environ.setdefault("TRITON_INTERPRET", "1")

torch = pytest.importorskip("torch", reason="steel_train needs torch: pip install -e '.[train]'")
# Tiny models on a small shared machine: one thread avoids OpenMP contention (many times slower otherwise).
torch.set_num_threads(1)


@pytest.fixture
def device() -> str:
    return DEVICE


def triton_or_skip():
    from steel_train.kernels.triton_support import triton_importable

    if not triton_importable():
        pytest.skip("triton is not installed")
