"""Model arguments and the named flavors (`steel-1b`, `debug`). Plain dataclasses; no torch here."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

ATTENTION = ("flash", "sdpa", "eager")
RMSNORM = ("triton", "torch")
ROPE = ("triton", "torch")
LOSS = ("fused", "triton", "torch")
SOFT_MOE = ("paper", "causal")


@dataclass(frozen=True)
class ModelArgs:
    """The architecture, and which kernel computes each part (every kernel has a PyTorch reference)."""

    vocab_size: int = 151_936
    """rows of the (untied) input embedding and output projection"""
    dim: int = 1792
    """hidden size"""
    n_layers: int = 18
    n_heads: int = 32
    """attention heads (head dim = dim / n_heads; as many key/value heads as query heads)"""
    n_experts: int = 6
    """Soft-MoE experts"""
    slots_per_expert: int = 1
    expert_hidden: int = 448
    """width of each expert's two gated layers (dim / 4 in steel-1b)"""
    rope_theta: float = 1_000_000.0
    norm_eps: float = 1e-6
    max_seq_len: int = 2048
    """RoPE tables are built for this many positions (longer inputs are refused)"""
    init_std: float = 0.02
    """normal init of linear and embedding weights (the published `initializer_range`)"""
    soft_moe: str = "paper"
    """paper: dispatch softmax over the whole sequence, as published (a token sees later tokens);
    causal: each position dispatches over its prefix only"""
    attention: str = "sdpa"
    """flash (flash-attn, if installed; else sdpa) | sdpa | eager"""
    rmsnorm: str = "torch"
    """triton | torch"""
    rope: str = "torch"
    """triton | torch"""
    loss: str = "torch"
    """fused (output projection + cross-entropy in chunks, logits never materialised) | triton | torch"""
    loss_chunk: int = 4096
    """tokens per chunk of the fused loss"""

    def __post_init__(self):
        for name, allowed in (("attention", ATTENTION), ("rmsnorm", RMSNORM), ("rope", ROPE), ("loss", LOSS),
                              ("soft_moe", SOFT_MOE)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"model.{name} = {getattr(self, name)!r}: expected one of {', '.join(allowed)}")
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ValueError(f"dim {self.dim} must split into {self.n_heads} heads of even size")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def n_slots(self) -> int:
        return self.n_experts * self.slots_per_expert

    def with_(self, **changes) -> "ModelArgs":
        return replace(self, **changes)


FLAVORS: dict[str, ModelArgs] = {
    # The published Steel-LLM: 1,122,922,770 parameters.
    "steel-1b": ModelArgs(),
    # Trains on a CPU in seconds; same structure (QKV bias, Soft-MoE of two-layer gated experts, untied head).
    "debug": ModelArgs(vocab_size=512, dim=64, n_layers=2, n_heads=4, expert_hidden=16, max_seq_len=256),
}


def model_args(flavor: str, **overrides) -> ModelArgs:
    """A flavor with some fields replaced (only fields of `ModelArgs`; None values are ignored)."""
    if flavor not in FLAVORS:
        raise ValueError(f"unknown model flavor {flavor!r}: expected one of {', '.join(FLAVORS)}")
    known = {f.name for f in fields(ModelArgs)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown model fields: {', '.join(sorted(unknown))}")
    return replace(FLAVORS[flavor], **{k: v for k, v in overrides.items() if v is not None})
