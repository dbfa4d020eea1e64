"""Human-readable views of stats.json (the terminal table; the HTML report lives with the API)."""

from __future__ import annotations


def stats_table(stats: dict) -> str:
    acc = stats["accounting"]
    lines = [
        f"input {acc['input_records']}  kept {stats['output_docs']}  quarantined {acc['quarantined']}  "
        f"balanced {acc['balanced']}",
        f"{'op':34s} {'in':>8s} {'out':>8s} {'kept':>6s} {'dropped':>8s} {'modified':>8s} {'s':>7s}  "
        f"{'stat p50 [min..max]':s}",
    ]
    for op in stats["ops"]:
        kept = f"{op['docs_out'] / op['docs_in']:.0%}" if op["docs_in"] else "-"
        dist = op.get("distribution") or {}
        q = ""
        if dist.get("quantiles"):
            q = f"{dist['quantiles']['0.5']:.4g} [{dist['min']:.4g}..{dist['max']:.4g}]"
        lines.append(
            f"{op['label']:34s} {op['docs_in']:8d} {op['docs_out']:8d} {kept:>6s} {op['dropped']:8d} "
            f"{op['modified']:8d} {op['seconds']:7.2f}  {q}"
        )
    for audit in stats.get("audits", []):
        lines.append(f"AUDIT {audit['level']}: {audit['message']}")
    return "\n".join(lines)
