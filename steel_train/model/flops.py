"""Model FLOPs per trained token, counting what the model really computes (no torch here).

Per token, forward (a matmul of m x k by k x n is 2mkn FLOPs):
    attention projections   2 * 4 d^2                      (q, k, v, o)
    attention scores        2 * 2 * s * d * 1/2            (q k^T and p v; causal: half the square)
    Soft-MoE routing        3 * 2 * d * slots              (logits, dispatch mean, combine mean)
    Soft-MoE experts        paper:  slots / s * 8 d f      (the experts see `slots` vectors per *sequence*)
                            causal: slots * 8 d f          (every position has its own slot inputs)
    output projection       2 * d * vocab
Training = 3 x forward (backward is twice the forward); activation recomputation is not counted (model FLOPs, as
in the PaLM paper's MFU). Embedding lookups, norms, softmaxes and RoPE are left out (not matmul work).
"""

from __future__ import annotations

from steel_train.model.args import ModelArgs


def forward_flops_per_token(args: ModelArgs, seq_len: int) -> float:
    d, f, slots = args.dim, args.expert_hidden, args.n_slots
    attn = 2 * 4 * d * d + 2 * 2 * seq_len * d * 0.5
    routing = 3 * 2 * d * slots
    expert_vectors = slots / seq_len if args.soft_moe == "paper" else slots
    experts = expert_vectors * 4 * 2 * d * f  # four d x f matrices per expert
    return args.n_layers * (attn + routing + experts) + 2 * d * args.vocab_size


def flops_per_token(args: ModelArgs, seq_len: int) -> float:
    """Training FLOPs (forward + backward) per token at this sequence length."""
    return 3.0 * forward_flops_per_token(args, seq_len)


# Dense bf16 tensor-core peak per GPU, FLOP/s (no sparsity), by a substring of the device name.
PEAK_BF16 = [
    ("H200", 989e12), ("H100", 989e12), ("H800", 989e12), ("H20", 148e12), ("A100", 312e12), ("A800", 312e12),
    ("L40S", 362e12), ("A10", 125e12), ("4090", 165e12), ("B200", 2250e12),
]


def peak_flops(device_name: str) -> float | None:
    for key, value in PEAK_BF16:
        if key.lower() in device_name.lower():
            return value
    return None
