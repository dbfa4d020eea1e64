"""Stage D of the distributed dedup (the star rounds) run in one process on any graph, for tests."""

from __future__ import annotations

import numpy as np

from steel_data.dedup_distributed import _route_edges, star_round


def components(edges: np.ndarray, parts: int) -> tuple[dict[int, int], int]:
    """Run the star rounds (stage D) on an arbitrary graph: node -> the root its final star points to."""
    hi, lo = np.maximum(edges[:, 0], edges[:, 1]), np.minimum(edges[:, 0], edges[:, 1])
    keep = hi != lo
    pieces = _route_edges(hi[keep], lo[keep], parts)
    by_part = [[pieces[q]] for q in range(parts)]
    rounds, kind = 0, "large"
    while True:
        outs = [star_round(kind, parts, *by_part[q]) for q in range(parts)]
        rounds += 1
        if all(o[1]["converged"] for o in outs):
            break
        by_part = [[o[0][q] for o in outs] for q in range(parts)]
        kind = "small" if kind == "large" else "large"
    roots: dict[int, int] = {}
    for q in range(parts):
        for src, dst in by_part[q]:
            for s, d in zip(src.tolist(), dst.tolist()):
                roots.setdefault(s, s)
                if d < s:
                    assert roots[s] in (s, d), "a node of a star has one smaller neighbour"
                    roots[s] = d
    return roots, rounds
