"""The Steel-LLM model, single-device and readable (nanoGPT style: one file, shapes in comments).

    tokens [b, s]
      -> embed_tokens                                     [b, s, d]
      -> n_layers x Block:
            h = h + Attention(RMSNorm(h))                 QKV with bias, RoPE, causal, no output bias
            h = h + SoftMoE(RMSNorm(h))                   6 experts x 1 slot, each a two-layer gated MLP
      -> norm -> lm_head (untied)                         [b, s, vocab]

Soft-MoE (Puigcerver et al., "From Sparse to Soft Mixtures of Experts", as the published Steel-LLM uses it):
tokens x and slot vectors phi are L2-normalised, logits = scale * <x_t, phi_j>. Dispatch weights are a softmax
over the *sequence* for each slot, so each slot's input is a weighted mean of the tokens; each expert transforms
its slot; combine weights are a softmax over the *slots* for each token, so each token's output is a weighted
mean of the expert outputs. Both softmaxes are computed in fp32.

`soft_moe="paper"` keeps the published behaviour: the dispatch mean runs over the whole sequence, so a token's
output depends on later tokens (the model is not causal). `soft_moe="causal"` dispatches, for position t, over
tokens 0..t only: every position has its own slot inputs, and the experts run on s x 6 slot vectors instead of
6 (the cost of a dense FFN of that width).

Parallelism, precision, checkpointing and compilation are applied from outside (steel_train.parallel).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from steel_train import kernels
from steel_train.model.args import ModelArgs


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float, impl: str):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps, self.impl = eps, impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.rms_norm(x, self.weight, self.eps, self.impl)

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads, self.head_dim = args.n_heads, args.head_dim
        self.rope_impl, self.attn_impl = args.rope, args.attention
        self.q_proj = nn.Linear(args.dim, args.dim, bias=True)
        self.k_proj = nn.Linear(args.dim, args.dim, bias=True)
        self.v_proj = nn.Linear(args.dim, args.dim, bias=True)
        self.o_proj = nn.Linear(args.dim, args.dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q = self.q_proj(x).view(b, s, self.n_heads, self.head_dim)  # [b, s, h, hd]
        k = self.k_proj(x).view(b, s, self.n_heads, self.head_dim)
        v = self.v_proj(x).view(b, s, self.n_heads, self.head_dim)
        q = kernels.apply_rope(q, cos, sin, self.rope_impl)
        k = kernels.apply_rope(k, cos, sin, self.rope_impl)
        out = kernels.attention(q, k, v, self.attn_impl)  # [b, s, h, hd]
        return self.o_proj(out.reshape(b, s, d))


class SoftMoE(nn.Module):
    """Soft mixture of `n_experts` experts with `slots_per_expert` slots each.

    The experts' weights are stacked (expert is the leading dimension) so all experts run as one batched matmul.
    Each expert is a two-layer gated MLP:  u = silu(x W_gu) * (x W_u);  y = silu(u W_gd) * (u W_d).
    """

    def __init__(self, args: ModelArgs):
        super().__init__()
        d, n, p, f = args.dim, args.n_experts, args.slots_per_expert, args.expert_hidden
        self.n_experts, self.slots_per_expert = n, p
        self.causal = args.soft_moe == "causal"
        self.init_std = args.init_std
        self.phi = nn.Parameter(torch.empty(d, n, p))  # slot vectors
        self.scale = nn.Parameter(torch.ones(1))  # logit scale (the slots and tokens are unit vectors)
        self.gate_up_proj = nn.Parameter(torch.empty(n, f, d))  # [expert, out, in] like nn.Linear
        self.up_proj = nn.Parameter(torch.empty(n, f, d))
        self.gate_down_proj = nn.Parameter(torch.empty(n, d, f))
        self.down_proj = nn.Parameter(torch.empty(n, d, f))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.phi, std=1.0 / math.sqrt(self.phi.shape[0]))  # LeCun normal
        nn.init.ones_(self.scale)
        for w in (self.gate_up_proj, self.up_proj, self.gate_down_proj, self.down_proj):
            nn.init.normal_(w, std=self.init_std)

    def experts(self, xs: torch.Tensor) -> torch.Tensor:
        """xs [..., slots, d] (slot j belongs to expert j // slots_per_expert) -> [..., slots, d]."""
        *lead, slots, d = xs.shape
        x = xs.reshape(-1, self.n_experts, self.slots_per_expert, d)  # [B, e, p, d]
        u = F.silu(torch.einsum("bepd,efd->bepf", x, self.gate_up_proj)) * \
            torch.einsum("bepd,efd->bepf", x, self.up_proj)
        y = F.silu(torch.einsum("bepf,edf->bepd", u, self.gate_down_proj)) * \
            torch.einsum("bepf,edf->bepd", u, self.down_proj)
        return y.reshape(*lead, slots, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        x = F.normalize(x, dim=-1)  # [b, s, d]
        phi = F.normalize(self.phi, dim=0).reshape(d, -1)  # [d, n*p]
        scale = self.scale.float()
        logits = scale * (x.float() @ phi.float())  # [b, s, slots], fp32
        combine = logits.softmax(dim=-1).to(x.dtype)  # over slots, per token
        if not self.causal:
            dispatch = logits.softmax(dim=1).to(x.dtype)  # over the whole sequence, per slot
            xs = torch.einsum("bsn,bsd->bnd", dispatch, x)  # [b, slots, d]
            ys = self.experts(xs)  # [b, slots, d]
            return torch.einsum("bsn,bnd->bsd", combine, ys)
        # causal: slot input at t = sum_{u<=t} exp(l_u) x_u / sum_{u<=t} exp(l_u). |l| <= |scale| (unit vectors),
        # so exp(l - |scale|) needs no running max: nothing at t depends on tokens after t, even in rounding.
        w = torch.exp(logits - scale.detach().abs())  # [b, s, slots]
        num = torch.cumsum(w.unsqueeze(-1) * x.float().unsqueeze(2), dim=1)  # [b, s, slots, d]
        den = torch.cumsum(w, dim=1).clamp_min(torch.finfo(torch.float32).tiny)  # [b, s, slots]
        xs = (num / den.unsqueeze(-1)).to(x.dtype)  # [b, s, slots, d]
        ys = self.experts(xs)  # [b, s, slots, d]
        return torch.einsum("bsn,bsnd->bsd", combine, ys)


class Block(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.input_layernorm = RMSNorm(args.dim, args.norm_eps, args.rmsnorm)
        self.self_attn = Attention(args)
        self.post_attention_layernorm = RMSNorm(args.dim, args.norm_eps, args.rmsnorm)
        self.mlp = SoftMoE(args)

    def forward(self, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        h = h + self.self_attn(self.input_layernorm(h), cos, sin)
        return h + self.mlp(self.post_attention_layernorm(h))


class Steel(nn.Module):
    """The Steel-LLM decoder. Parameter names follow the published checkpoint where the structure allows."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embed_tokens = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(Block(args) for _ in range(args.n_layers))
        self.norm = RMSNorm(args.dim, args.norm_eps, args.rmsnorm)
        self.lm_head = nn.Linear(args.dim, args.vocab_size, bias=False)
        cos, sin = rope_tables_for(args, device=self.lm_head.weight.device)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self, buffer_device: torch.device | None = None) -> None:
        """(Re)initialise every parameter and the RoPE tables: N(0, init_std) for linear and embedding weights,
        zero biases, unit norms, LeCun-normal slots, unit logit scale. Call after `to_empty` from meta."""
        std = self.args.init_std
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (RMSNorm, SoftMoE)):
                module.reset_parameters()
        device = buffer_device or self.rope_cos.device
        if device.type != "meta":
            cos, sin = rope_tables_for(self.args, device=device)
            self.rope_cos, self.rope_sin = cos, sin

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [b, s] -> final normalised hidden states [b, s, d]."""
        s = tokens.shape[1]
        if s > self.rope_cos.shape[0]:
            raise ValueError(f"sequence of {s} tokens is longer than max_seq_len {self.rope_cos.shape[0]}")
        cos, sin = self.rope_cos[:s], self.rope_sin[:s]
        h = self.embed_tokens(tokens)
        for layer in self.layers:
            h = layer(h, cos, sin)
        return self.norm(h)

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [b, s, vocab] or, given targets [b, s], the mean next-token loss (a scalar, fp32)."""
        h = self.hidden(tokens)
        if targets is None:
            return self.lm_head(h)
        return kernels.linear_cross_entropy(h, self.lm_head.weight, targets, self.args.loss, self.args.loss_chunk)


def rope_tables_for(args: ModelArgs, device=None):
    if device is not None and torch.device(device).type == "meta":
        half = args.head_dim // 2
        return (torch.empty(args.max_seq_len, half, device="meta"),) * 2
    return kernels.rope_tables(args.head_dim, args.max_seq_len, args.rope_theta, device=device)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
