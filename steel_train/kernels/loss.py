"""Next-token cross-entropy (mean over targets != ignore_index), with and without the output projection.

    cross_entropy(logits, targets, impl)               torch: F.cross_entropy in fp32 | triton: one fused kernel
    linear_cross_entropy(h, weight, targets, impl)     torch / triton: logits = h @ weight^T, then the above;
                                                       fused: chunks of tokens; each chunk's logits live only
                                                       while its loss and gradients are computed (in forward)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from steel_train.kernels.triton_support import use_triton

IGNORE_INDEX = -100


def cross_entropy_reference(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX)


def _n_valid(targets: torch.Tensor) -> torch.Tensor:
    return (targets != IGNORE_INDEX).sum().clamp(min=1).to(torch.float32)


def _ce_triton_inplace(logits: torch.Tensor, targets: torch.Tensor, n_valid: torch.Tensor) -> torch.Tensor:
    """Sum of row losses / n_valid; overwrites `logits` [N, V] (contiguous rows) with d(loss)/d(logits)."""
    from steel_train.kernels import triton_impl as k

    n, v = logits.shape
    losses = torch.empty(n, dtype=torch.float32, device=logits.device)
    if n:
        block = min(8192 if logits.is_cuda else 1024, 1 << (v - 1).bit_length())
        k.cross_entropy_fwd_bwd[(n,)](logits, targets, losses, n_valid, logits.stride(0), v, IGNORE_INDEX,
                                      BLOCK=block, num_warps=8 if logits.is_cuda else 4)
    return losses.sum() / n_valid


def _ce_torch_with_grad(logits: torch.Tensor, targets: torch.Tensor, n_valid: torch.Tensor):
    """The reference's loss and its gradient, computed explicitly (the fused path without Triton)."""
    lf = logits.float()
    valid = targets != IGNORE_INDEX
    safe = torch.where(valid, targets, 0)
    lse = torch.logsumexp(lf, dim=-1)
    picked = lf.gather(1, safe[:, None]).squeeze(1)
    loss = torch.where(valid, lse - picked, 0.0).sum() / n_valid
    grad = torch.softmax(lf, dim=-1)
    grad[torch.arange(len(safe), device=grad.device), safe] -= 1.0
    grad *= (valid.float() / n_valid)[:, None]
    return loss, grad.to(logits.dtype)


class _TritonCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        shape = logits.shape
        work = logits.reshape(-1, shape[-1]).contiguous()
        if work.data_ptr() == logits.data_ptr() and not getattr(logits, "_steel_scratch", False):
            work = work.clone()  # the kernel overwrites its input with the gradient
        loss = _ce_triton_inplace(work, targets.reshape(-1).contiguous(), _n_valid(targets))
        ctx.save_for_backward(work)
        ctx.shape = shape
        return loss

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return (grad * grad_out.to(grad.dtype)).view(ctx.shape), None


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, impl: str = "torch") -> torch.Tensor:
    """Mean cross-entropy of logits [..., V] against targets [...]. The Triton kernel keeps one V-wide buffer per
    row: it works on a copy of `logits`, unless the tensor was marked scratch with `mark_scratch` (then in place)."""
    if impl == "triton" and use_triton("cross_entropy", logits):
        return _TritonCrossEntropy.apply(logits, targets)
    return cross_entropy_reference(logits, targets)


def mark_scratch(logits: torch.Tensor) -> torch.Tensor:
    """Let the Triton loss overwrite these logits with their gradient (the caller never reads them again)."""
    logits._steel_scratch = True
    return logits


class _FusedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int, triton_ce: bool):
        n_valid = _n_valid(targets)
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.empty_like(h) if need_h else None
        # the weight's gradient is summed over chunks in fp32
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        loss = torch.zeros((), dtype=torch.float32, device=h.device)
        for i in range(0, h.shape[0], chunk):
            hc, tc = h[i:i + chunk], targets[i:i + chunk]
            logits = hc @ weight.t()  # [c, V]
            if triton_ce:
                loss += _ce_triton_inplace(logits, tc, n_valid)
                grad = logits
            else:
                part, grad = _ce_torch_with_grad(logits, tc, n_valid)
                loss += part
            if need_h:
                grad_h[i:i + chunk] = grad @ weight
            if need_w:
                if grad.dtype == torch.float32:
                    grad_w.addmm_(grad.t(), hc)
                else:
                    grad_w += (grad.t() @ hc).float()
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        gh = grad_h * grad_out.to(grad_h.dtype) if grad_h is not None else None
        gw = (grad_w * grad_out).to(ctx.weight_dtype) if grad_w is not None else None
        return gh, gw, None, None, None


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, impl: str = "torch",
                         chunk: int = 4096) -> torch.Tensor:
    """Mean cross-entropy of (h @ weight^T) against targets: h [..., d], weight [V, d], targets [...]."""
    h2, t2 = h.reshape(-1, h.shape[-1]), targets.reshape(-1)
    if impl == "fused":
        return _FusedLinearCrossEntropy.apply(h2, weight, t2, chunk, use_triton("fused_cross_entropy", h2))
    logits = h2 @ weight.t()
    if impl == "triton":
        return cross_entropy(mark_scratch(logits), t2, impl)
    return cross_entropy_reference(logits, t2)
