"""Parity: every kernel switch against its PyTorch reference, values and gradients."""

from __future__ import annotations

import pytest
import torch

from steel_train import kernels
from steel_train.kernels.attention import attention_reference
from steel_train.kernels.loss import IGNORE_INDEX, cross_entropy_reference
from steel_train.kernels.rmsnorm import rms_norm_reference
from steel_train.kernels.rope import rope_reference

from .conftest import triton_or_skip

DTYPES = [torch.float32, torch.bfloat16]


def tol(dtype):
    return dict(atol=1e-5, rtol=1e-4) if dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)


def grads(fn, *inputs):
    """Output and gradients of sum(out * fixed random weights) w.r.t. inputs."""
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(*inputs)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(7)).to(out)
    (out.float() * g.float()).sum().backward()
    return out.detach(), [t.grad for t in inputs]


@pytest.mark.parametrize("dtype", DTYPES)
def test_rmsnorm_triton_matches_reference(device, dtype):
    triton_or_skip()
    torch.manual_seed(0)
    x = torch.randn(3, 5, 100, device=device, dtype=dtype) * 3
    w = (1 + 0.1 * torch.randn(100, device=device)).to(dtype)
    ref, (rdx, rdw) = grads(lambda a, b: rms_norm_reference(a, b, 1e-6), x, w)
    out, (dx, dw) = grads(lambda a, b: kernels.rms_norm(a, b, 1e-6, "triton"), x, w)
    torch.testing.assert_close(out, ref, **tol(dtype))
    torch.testing.assert_close(dx, rdx, **tol(dtype))
    torch.testing.assert_close(dw, rdw, **tol(dtype) if dtype == torch.float32 else dict(atol=0.2, rtol=2e-2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_rope_triton_matches_reference(device, dtype):
    triton_or_skip()
    torch.manual_seed(0)
    b, s, h, d = 2, 7, 3, 14  # odd half (7) and head counts: the masks are exercised
    cos, sin = kernels.rope_tables(d, 16, 1e6, device=device)
    x = torch.randn(b, s, h, d, device=device, dtype=dtype)
    ref, (rdx,) = grads(lambda a: rope_reference(a, cos[:s], sin[:s]), x)
    out, (dx,) = grads(lambda a: kernels.apply_rope(a, cos, sin, "triton"), x)
    torch.testing.assert_close(out, ref, **tol(dtype))
    torch.testing.assert_close(dx, rdx, **tol(dtype))


def test_rope_is_a_rotation(device):
    """Norms are preserved, and q.k depends only on the distance between positions."""
    cos, sin = kernels.rope_tables(8, 32, 1e6, device=device)
    q = torch.randn(1, 1, 1, 8, device=device).expand(1, 32, 1, 8)
    rq = kernels.apply_rope(q, cos, sin)
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))
    dots = (rq[0, :, 0] @ rq[0, :, 0].T)
    torch.testing.assert_close(dots.diagonal(3)[:-1], dots.diagonal(3)[1:], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("impl", ["sdpa", "flash"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_matches_eager(device, impl, dtype):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 9, 3, 8, device=device, dtype=dtype) for _ in range(3))
    ref, rg = grads(attention_reference, q, k, v)
    out, g = grads(lambda a, b, c: kernels.attention(a, b, c, impl), q, k, v)
    torch.testing.assert_close(out, ref, **tol(dtype))
    for a, b in zip(g, rg):
        torch.testing.assert_close(a, b, **tol(dtype))


def test_attention_is_causal(device):
    q, k, v = (torch.randn(1, 6, 2, 4, device=device) for _ in range(3))
    base = attention_reference(q, k, v)
    k2, v2 = k.clone(), v.clone()
    k2[:, 4:] += 1
    v2[:, 4:] += 1
    torch.testing.assert_close(attention_reference(q, k2, v2)[:, :4], base[:, :4])


def _targets(n, vocab, device):
    t = torch.randint(0, vocab, (n,), device=device)
    t[::5] = IGNORE_INDEX
    return t


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_triton_matches_reference(device, dtype):
    triton_or_skip()
    torch.manual_seed(0)
    logits = (torch.randn(13, 1000, device=device) * 4).to(dtype)  # V not a multiple of the block
    t = _targets(13, 1000, device)
    ref, (rg,) = grads(lambda a: cross_entropy_reference(a, t), logits)
    out, (g,) = grads(lambda a: kernels.cross_entropy(a, t, "triton"), logits)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(g, rg, **tol(dtype))
    assert g[::5].abs().max() == 0  # ignored targets get no gradient


@pytest.mark.parametrize("impl", ["torch", "triton", "fused"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_cross_entropy_matches_reference(device, impl, dtype):
    if impl == "triton":
        triton_or_skip()
    torch.manual_seed(0)
    n, d, vocab = 37, 16, 300
    h = torch.randn(n, d, device=device, dtype=dtype)
    w = (torch.randn(vocab, d, device=device) * 0.3).to(dtype)
    t = _targets(n, vocab, device)
    ref, rg = grads(lambda a, b: cross_entropy_reference(a @ b.t(), t), h, w)
    out, g = grads(lambda a, b: kernels.linear_cross_entropy(a, b, t, impl, chunk=10), h, w)
    torch.testing.assert_close(out, ref, atol=1e-4 if dtype == torch.float32 else 2e-2, rtol=1e-4)
    for a, b in zip(g, rg):
        torch.testing.assert_close(a, b, **tol(dtype) if dtype == torch.float32 else dict(atol=5e-2, rtol=5e-2))


def test_fused_loss_without_triton_uses_the_reference_math(device, monkeypatch):
    """The fused path's own PyTorch branch (no Triton) gives the reference loss and gradients too."""
    from steel_train.kernels import loss

    monkeypatch.setattr(loss, "use_triton", lambda *a: False)
    torch.manual_seed(0)
    h, w = torch.randn(20, 8, device=device), torch.randn(50, 8, device=device)
    t = _targets(20, 50, device)
    ref, rg = grads(lambda a, b: cross_entropy_reference(a @ b.t(), t), h, w)
    out, g = grads(lambda a, b: loss.linear_cross_entropy(a, b, t, "fused", chunk=6), h, w)
    torch.testing.assert_close(out, ref)
    for a, b in zip(g, rg):
        torch.testing.assert_close(a, b)


def test_triton_switch_falls_back_without_interpreter(monkeypatch):
    """Without a GPU or the interpreter, `triton` switches compute the reference instead of failing."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x, w = torch.randn(4, 8), torch.ones(8)
    torch.testing.assert_close(kernels.rms_norm(x, w, 1e-6, "triton"), rms_norm_reference(x, w, 1e-6))
