"""Kernels as switches over plain PyTorch references (each pair has a parity test in tests/steel_train).

    attention(q, k, v, impl)          flash | sdpa | eager        causal, [batch, seq, heads, head_dim]
    rms_norm(x, weight, eps, impl)    triton | torch
    apply_rope(x, cos, sin, impl)     triton | torch              rotate-half convention
    cross_entropy(logits, targets, impl)             triton | torch
    linear_cross_entropy(h, weight, targets, impl)   fused | triton | torch   (fused: logits never materialised)

A Triton kernel runs where Triton can run it: on a GPU, or on the CPU under TRITON_INTERPRET=1 (tests). Where it
cannot, the call falls back to the reference and says so once.
"""

from steel_train.kernels.attention import attention, flash_available
from steel_train.kernels.loss import cross_entropy, linear_cross_entropy
from steel_train.kernels.rmsnorm import rms_norm
from steel_train.kernels.rope import apply_rope, rope_tables
from steel_train.kernels.triton_support import triton_runs_on

__all__ = ["attention", "flash_available", "cross_entropy", "linear_cross_entropy", "rms_norm", "apply_rope",
           "rope_tables", "triton_runs_on"]
