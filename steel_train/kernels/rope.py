"""Rotary position embedding, rotate-half convention (as in Qwen2 / the published Steel-LLM):
the first and second halves of each head are the two coordinates of head_dim/2 rotating pairs."""

import torch

from steel_train.kernels.triton_support import use_triton


def rope_tables(head_dim: int, max_seq_len: int, theta: float, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, fp32 [max_seq_len, head_dim / 2]."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64, device=device) / head_dim))
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64, device=device), inv_freq)
    return angles.cos().float(), angles.sin().float()


def rope_reference(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [batch, seq, heads, head_dim]; cos, sin: [seq, head_dim / 2] (fp32). Math in fp32."""
    half = x.shape[-1] // 2
    xf = x.float()
    x1, x2 = xf[..., :half], xf[..., half:]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1).to(x.dtype)


@torch.library.custom_op("steel::rope", mutates_args=())
def _rope_triton(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, sign: float) -> torch.Tensor:
    """Rotate x [b, s, h, d] by the tables (sign=-1: the inverse rotation, which is also the backward)."""
    from steel_train.kernels import triton_impl as k
    import triton

    b, s, h, d = x.shape
    x = x.contiguous()
    y = torch.empty_like(x)
    if x.numel():
        k.rope_kernel[(b * s,)](x, y, cos, sin, s, h, d // 2, h * d, d, sign,
                                BLOCK_H=triton.next_power_of_2(h), BLOCK_D=triton.next_power_of_2(d // 2))
    return y


@_rope_triton.register_fake
def _(x, cos, sin, sign):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _rope_setup(ctx, inputs, output):
    _, cos, sin, sign = inputs
    ctx.save_for_backward(cos, sin)
    ctx.sign = sign


def _rope_backward(ctx, dy):
    cos, sin = ctx.saved_tensors
    return _rope_triton(dy, cos, sin, -ctx.sign), None, None, None


_rope_triton.register_autograd(_rope_backward, setup_context=_rope_setup)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, impl: str = "torch") -> torch.Tensor:
    cos, sin = cos[: x.shape[1]], sin[: x.shape[1]]
    if impl == "triton" and use_triton("rope", x):
        return _rope_triton(x, cos.contiguous(), sin.contiguous(), 1.0)
    return rope_reference(x, cos, sin)
