"""The model: the published parameter count, Soft-MoE causality per mode, kernel switches at model level,
FLOP accounting, and that the debug flavor learns."""

from __future__ import annotations

import math

import pytest
import torch

from steel_train.model import FLAVORS, Steel, count_parameters, flops_per_token, model_args


def test_steel_1b_has_the_published_parameter_count():
    with torch.device("meta"):
        model = Steel(FLAVORS["steel-1b"])
    assert count_parameters(model) == 1_122_922_770
    d, vocab = 1792, 151_936
    per_layer = (3 * d * d + 3 * d + d * d  # q, k, v with bias; o without
                 + 2 * d  # two RMSNorms
                 + d * 6 + 1  # slot matrix [d, 6 experts, 1 slot] and the scale
                 + 6 * 4 * d * 448)  # six experts, each two gated layers (four d x 448 matrices)
    assert count_parameters(model) == 2 * vocab * d + 18 * per_layer + d  # untied embeddings, final norm
    assert count_parameters(model.layers[0]) == per_layer


def _outputs(model, tokens):
    with torch.no_grad():
        return model(tokens)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_causal_soft_moe_is_causal_and_paper_mode_is_not(device, attention):
    torch.manual_seed(0)
    tokens = torch.randint(0, 512, (2, 24), device=device)
    changed = tokens.clone()
    changed[:, 17] = (changed[:, 17] + 1) % 512  # change one later token
    for mode in ("causal", "paper"):
        torch.manual_seed(1)
        # a wide init: at the default (0.02) the experts' output is too small to see the dispatch in fp32
        model = Steel(model_args("debug", soft_moe=mode, attention=attention, init_std=1.0)).to(device)
        a, b = _outputs(model, tokens), _outputs(model, changed)
        earlier = (a[:, :17] - b[:, :17]).abs().max().item()
        if mode == "causal":  # exactly, on the CPU; a GPU may pick other kernels for other values
            assert earlier <= (0.0 if device == "cpu" else 1e-6), "a later token changed an earlier output"
        else:
            assert earlier > 1e-3, "paper mode dispatches over the whole sequence: earlier outputs must move"
        assert (a[:, 17:] - b[:, 17:]).abs().max().item() > 1e-4


def test_causal_soft_moe_equals_paper_mode_on_the_last_position(device):
    """At the last position the prefix is the whole sequence, so both modes agree there."""
    torch.manual_seed(0)
    tokens = torch.randint(0, 512, (2, 16), device=device)
    torch.manual_seed(1)
    paper = Steel(model_args("debug", soft_moe="paper", n_layers=1)).to(device)
    causal = Steel(model_args("debug", soft_moe="causal", n_layers=1)).to(device)
    causal.load_state_dict(paper.state_dict())
    x = torch.randn(2, 16, 64, device=device)
    torch.testing.assert_close(causal.layers[0].mlp(x)[:, -1], paper.layers[0].mlp(x)[:, -1], atol=1e-5, rtol=1e-4)


def test_model_with_every_fast_kernel_matches_the_reference_model(device):
    from .conftest import triton_or_skip

    triton_or_skip()
    torch.manual_seed(0)
    tokens = torch.randint(0, 512, (1, 17), device=device)
    results = []
    for kw in ({}, dict(rope="triton", rmsnorm="triton", loss="fused", loss_chunk=20),
               dict(rope="triton", rmsnorm="triton", loss="triton", attention="flash")):
        torch.manual_seed(1)
        model = Steel(model_args("debug", **kw)).to(device)
        loss = model(tokens[:, :-1], tokens[:, 1:])
        loss.backward()
        results.append((loss.detach(), [p.grad for p in model.parameters()]))
    for loss, g in results[1:]:
        atol = 1e-5 if device == "cpu" else 1e-4
        torch.testing.assert_close(loss, results[0][0], atol=atol, rtol=1e-5)
        for a, b in zip(g, results[0][1]):
            torch.testing.assert_close(a, b, atol=atol, rtol=1e-4)


def test_flops_count_what_the_model_computes():
    args = FLAVORS["steel-1b"]
    fpt = flops_per_token(args, 2048)
    assert 3.3e9 < fpt < 3.5e9  # ~6 x the 0.57B matmul parameters a token meets, plus attention
    causal = flops_per_token(args.with_(soft_moe="causal"), 2048)
    # causal: every position runs all six experts (6 x 4 x 1792 x 448 weights) instead of 6 slots per sequence
    expected_extra = 3 * 18 * (6 - 6 / 2048) * 4 * 2 * 1792 * 448
    assert math.isclose(causal - fpt, expected_extra, rel_tol=1e-9)


def test_debug_flavor_learns_on_cpu():
    torch.manual_seed(0)
    model = Steel(FLAVORS["debug"])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    tokens = (torch.arange(33)[None, :] + torch.randint(0, 400, (8, 1))) % 511
    first = None
    for _ in range(30):
        loss = model(tokens[:, :-1], tokens[:, 1:])
        first = first if first is not None else loss.item()
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert loss.item() < first - 1.0


def test_flavor_and_switch_validation():
    with pytest.raises(ValueError, match="attention"):
        model_args("debug", attention="xformers")
    with pytest.raises(ValueError, match="unknown model flavor"):
        model_args("steel-7b")


def test_compiled_blocks_match_eager(device):
    """torch.compile per block: inductor on a GPU; aot_eager on the CPU (inductor's CPU build takes a minute)."""
    from steel_train.model import Steel, model_args
    from steel_train.parallel import apply_compile

    tokens = torch.randint(0, 512, (2, 17), generator=torch.Generator().manual_seed(0)).to(device)
    out = []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = Steel(model_args("debug")).to(device)
        if compiled:
            apply_compile(model, backend="inductor" if device == "cuda" else "aot_eager")
        loss = model(tokens[:, :-1], tokens[:, 1:])
        loss.backward()
        out.append((loss.detach(), [p.grad for p in model.parameters()]))
    tol = {} if device == "cpu" else dict(atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out[1][0], out[0][0], **tol)
    for a, b in zip(out[1][1], out[0][1]):
        torch.testing.assert_close(a, b, **tol)
