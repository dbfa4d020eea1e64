"""Whether a Triton kernel can run on a tensor, and a one-time note when a switch falls back to PyTorch."""

from __future__ import annotations

import functools
import logging
import os

import torch

log = logging.getLogger("steel_train.kernels")


_TRITON: list[bool] = []  # [importable], filled on first use (a plain global: torch.compile traces through it)


def triton_importable() -> bool:
    if not _TRITON:
        try:
            import triton  # noqa: F401
            import triton.language  # noqa: F401
            _TRITON.append(True)
        except Exception:  # ImportError, or a broken install
            _TRITON.append(False)
    return _TRITON[0]


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def triton_runs_on(x: torch.Tensor) -> bool:
    """Triton compiles for CUDA tensors; on the CPU only its interpreter (TRITON_INTERPRET=1) runs kernels."""
    if not triton_importable():
        return False
    return x.is_cuda or (x.device.type == "cpu" and interpreting())


@functools.cache
def fallback_note(kernel: str, why: str) -> None:
    log.warning("%s: Triton kernel unavailable (%s); using the PyTorch reference", kernel, why)


def use_triton(kernel: str, x: torch.Tensor) -> bool:
    if triton_runs_on(x):
        return True
    why = "triton is not installed" if not triton_importable() else f"{x.device.type} tensor without TRITON_INTERPRET=1"
    fallback_note(kernel, why)
    return False
