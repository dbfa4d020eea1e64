"""Causal self-attention over [batch, seq, heads, head_dim]: flash-attn, PyTorch SDPA, or the eager reference."""

from __future__ import annotations

import functools
import logging
import math

import torch
import torch.nn.functional as F

log = logging.getLogger("steel_train.kernels")


@functools.cache
def _flash_attn_func():
    try:
        from flash_attn import flash_attn_func
    except Exception:  # not installed (it is the optional [gpu] extra), or built for another torch
        return None
    return flash_attn_func


def flash_available() -> bool:
    return _flash_attn_func() is not None


@functools.cache
def _flash_fallback_note(why: str) -> None:
    log.warning("attention=flash: %s; using SDPA", why)


def attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + causal mask) v, the softmax in fp32."""
    s = q.shape[1]
    qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))  # [b, h, s, d]
    scores = (qt @ kt.transpose(-2, -1)).float() * (1.0 / math.sqrt(q.shape[-1]))
    mask = torch.ones(s, s, dtype=torch.bool, device=q.device).triu(1)
    probs = scores.masked_fill(mask, float("-inf")).softmax(-1).to(q.dtype)
    return (probs @ vt).transpose(1, 2)


def attention_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
    return out.transpose(1, 2)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, impl: str = "sdpa") -> torch.Tensor:
    """q, k, v: [batch, seq, heads, head_dim] -> [batch, seq, heads, head_dim]."""
    if impl == "flash":
        fn = _flash_attn_func()
        if fn is None:
            _flash_fallback_note("flash-attn is not installed (pip install steel[gpu])")
        elif not q.is_cuda or q.dtype not in (torch.float16, torch.bfloat16):
            _flash_fallback_note(f"flash-attn needs fp16/bf16 CUDA tensors, got {q.dtype} on {q.device.type}")
        else:
            return fn(q, k, v, causal=True)
        return attention_sdpa(q, k, v)
    if impl == "sdpa":
        return attention_sdpa(q, k, v)
    return attention_reference(q, k, v)
