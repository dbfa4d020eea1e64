"""RMSNorm: y = weight * round_to_x_dtype(x / sqrt(mean(x^2) + eps)), statistics in fp32 (the published norm)."""

import torch

from steel_train.kernels.triton_support import use_triton


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()
    normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * normed.to(x.dtype)


# The Triton path is a pair of custom ops (forward, backward) with fake implementations, so torch.compile treats
# each as one opaque node instead of tracing into Triton's launcher.
@torch.library.custom_op("steel::rms_norm_fwd", mutates_args=())
def _rms_norm_fwd(x: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    from steel_train.kernels import triton_impl as k
    import triton

    x2 = x.reshape(-1, x.shape[-1]).contiguous()
    m, n = x2.shape
    y = torch.empty((m, n), dtype=torch.promote_types(x.dtype, weight.dtype), device=x.device)
    rstd = torch.empty(m, dtype=torch.float32, device=x.device)
    if m:
        k.rms_norm_fwd[(m,)](x2, weight, y, rstd, x2.stride(0), y.stride(0), n, eps, BLOCK=triton.next_power_of_2(n))
    return y.view(x.shape), rstd


@_rms_norm_fwd.register_fake
def _(x, weight, eps):
    m = x.numel() // x.shape[-1]
    return (x.new_empty(x.shape, dtype=torch.promote_types(x.dtype, weight.dtype)),
            x.new_empty((m,), dtype=torch.float32))


@torch.library.custom_op("steel::rms_norm_bwd", mutates_args=())
def _rms_norm_bwd(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                  rstd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from steel_train.kernels import triton_impl as k
    import triton

    x2 = x.reshape(-1, x.shape[-1]).contiguous()
    m, n = x2.shape
    dy2 = dy.reshape(m, n).contiguous()
    dx = torch.empty_like(x2)
    programs = max(1, min(m, 4 * _multiprocessors(x2.device)))
    dw_part = torch.zeros((programs, n), dtype=torch.float32, device=x2.device)
    if m:
        k.rms_norm_bwd[(programs,)](dy2, x2, weight, rstd, dx, dw_part, dy2.stride(0), x2.stride(0), dx.stride(0),
                                    m, n, -(-m // programs), BLOCK=triton.next_power_of_2(n))
    return dx.view(x.shape), dw_part.sum(0).to(weight.dtype)


@_rms_norm_bwd.register_fake
def _(dy, x, weight, rstd):
    return x.new_empty(x.shape), weight.new_empty(weight.shape)


def _rms_setup(ctx, inputs, output):
    x, weight, _ = inputs
    ctx.save_for_backward(x, weight, output[1])


def _rms_backward(ctx, dy, _drstd):
    x, weight, rstd = ctx.saved_tensors
    dx, dw = _rms_norm_bwd(dy, x, weight, rstd)
    return dx, dw, None


_rms_norm_fwd.register_autograd(_rms_backward, setup_context=_rms_setup)


def _multiprocessors(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4  # the interpreter: a few programs are plenty


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, impl: str = "torch") -> torch.Tensor:
    if impl == "triton" and use_triton("rmsnorm", x):
        return _rms_norm_fwd(x, weight, eps)[0]
    return rms_norm_reference(x, weight, eps)
