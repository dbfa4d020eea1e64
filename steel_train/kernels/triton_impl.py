"""The Triton kernels behind the `triton` switches. Imported only when one is used (needs `triton`).

Each kernel computes in fp32 whatever the storage dtype, like its PyTorch reference.
"""

from __future__ import annotations

import triton
import triton.language as tl


# -- RMSNorm ------------------------------------------------------------------------------------------------
@triton.jit
def rms_norm_fwd(X, W, Y, RSTD, x_stride, y_stride, N, eps, BLOCK: tl.constexpr):
    # one program per row: y = w * round(x * rsqrt(mean(x^2) + eps))
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < N
    x = tl.load(X + row * x_stride + cols, mask=mask, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / N + eps)
    xhat = (x * rstd).to(X.dtype.element_ty).to(tl.float32)  # the reference rounds to x's dtype first
    w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(Y + row * y_stride + cols, (w * xhat).to(Y.dtype.element_ty), mask=mask)
    tl.store(RSTD + row, rstd)


@triton.jit
def rms_norm_bwd(DY, X, W, RSTD, DX, DW_PART, dy_stride, x_stride, dx_stride, M, N, rows_per_program,
                 BLOCK: tl.constexpr):
    # each program takes a run of rows: dx per row, and its share of dw summed in registers
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < N
    w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK], dtype=tl.float32)
    start = pid.to(tl.int64) * rows_per_program
    end = tl.minimum(start + rows_per_program, M)
    for i in range(0, end - start):
        row64 = start + i
        x = tl.load(X + row64 * x_stride + cols, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + row64 * dy_stride + cols, mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(RSTD + row64)
        xhat = x * rstd
        g = dy * w
        dx = rstd * (g - xhat * (tl.sum(g * xhat, axis=0) / N))
        tl.store(DX + row64 * dx_stride + cols, dx.to(DX.dtype.element_ty), mask=mask)
        dw += dy * xhat.to(X.dtype.element_ty).to(tl.float32)
    tl.store(DW_PART + pid * N + cols, dw, mask=mask)


# -- RoPE ---------------------------------------------------------------------------------------------------
@triton.jit
def rope_kernel(X, Y, COS, SIN, seq_len, n_heads, half, row_stride, head_stride, sign,
                BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr):
    # one program per (batch, position): all heads. y1 = x1 cos - x2 sin, y2 = x2 cos + x1 sin (sign=-1: inverse)
    row = tl.program_id(0).to(tl.int64)
    pos = row % seq_len
    h = tl.arange(0, BLOCK_H)[:, None]
    j = tl.arange(0, BLOCK_D)[None, :]
    jm = j < half
    mask = (h < n_heads) & jm
    c = tl.load(COS + pos * half + j, mask=jm, other=0.0)
    s = tl.load(SIN + pos * half + j, mask=jm, other=0.0) * sign
    off = row * row_stride + h * head_stride + j
    x1 = tl.load(X + off, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(X + off + half, mask=mask, other=0.0).to(tl.float32)
    tl.store(Y + off, (x1 * c - x2 * s).to(Y.dtype.element_ty), mask=mask)
    tl.store(Y + off + half, (x2 * c + x1 * s).to(Y.dtype.element_ty), mask=mask)


# -- cross-entropy ------------------------------------------------------------------------------------------
@triton.jit
def cross_entropy_fwd_bwd(LOGITS, TARGETS, LOSS, N_VALID, stride, V, ignore_index, BLOCK: tl.constexpr):
    # one program per row: loss = logsumexp(x) - x[target]; then the row is overwritten with its gradient
    # (softmax(x) - onehot(target)) / n_valid, so the logits are never held twice.
    row = tl.program_id(0).to(tl.int64)
    base = LOGITS + row * stride
    target = tl.load(TARGETS + row).to(tl.int64)
    valid = target != ignore_index
    # per-lane running max and sum of exponentials (a large finite floor instead of -inf: no inf - inf)
    m_vec = tl.full([BLOCK], -1e30, tl.float32)
    s_vec = tl.zeros([BLOCK], tl.float32)
    for off in range(0, V, BLOCK):
        cols = off + tl.arange(0, BLOCK)
        x = tl.load(base + cols, mask=cols < V, other=-1e30).to(tl.float32)
        m_new = tl.maximum(m_vec, x)
        s_vec = s_vec * tl.exp(m_vec - m_new) + tl.exp(x - m_new)
        m_vec = m_new
    m = tl.max(m_vec, axis=0)
    lse = m + tl.log(tl.sum(s_vec * tl.exp(m_vec - m), axis=0))
    x_t = tl.load(base + tl.where(valid, target, 0)).to(tl.float32)
    tl.store(LOSS + row, tl.where(valid, lse - x_t, 0.0))
    scale = tl.where(valid, 1.0 / tl.load(N_VALID).to(tl.float32), 0.0)
    for off in range(0, V, BLOCK):
        cols = off + tl.arange(0, BLOCK)
        x = tl.load(base + cols, mask=cols < V, other=0.0).to(tl.float32)
        g = tl.exp(x - lse)
        g = tl.where(cols == target, g - 1.0, g) * scale
        tl.store(base + cols, g.to(LOGITS.dtype.element_ty), mask=cols < V)
