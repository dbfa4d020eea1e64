"""The job report: one self-contained HTML page (inline CSS and SVG, no script, nothing fetched).

Sections: the accounting, audits, the per-op funnel, each statistic's histogram with the recipe's bounds drawn
on it (the dropped zones shaded), dedup clusters, and examples of what each op dropped and why. Everything that
comes from data is escaped. A running job's page shows its live progress and refreshes itself.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1100px;color:#1d232b;
 padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde3ea;
 padding-bottom:4px}h3{font-size:14px;margin:14px 0 4px}
.meta{color:#5b6673}.kpis{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.kpi{background:#f3f6f9;border-radius:6px;padding:8px 14px}.kpi b{display:block;font-size:18px}
.audit{background:#fff6e0;border-left:4px solid #e0a100;padding:8px 12px;margin:8px 0}
.error{background:#fdecec;border-left:4px solid #c62828;padding:8px 12px;margin:8px 0;white-space:pre-wrap}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:right;padding:3px 8px;
 border-bottom:1px solid #eef1f4}th:first-child,td:first-child{text-align:left}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(500px,1fr));gap:14px}
.card{border:1px solid #e3e8ee;border-radius:6px;padding:8px 10px}
.note{color:#5b6673;font-size:12px}.ex{font-size:12px;border-bottom:1px dashed #e3e8ee;padding:4px 0}
.ex code{background:#f3f6f9;padding:0 4px}.txt{white-space:pre-wrap;word-break:break-all;color:#333}
svg text{font:11px system-ui,sans-serif;fill:#39424d}
.kept{fill:#3a8f5c}.dropped{fill:#d9534f}.errors{fill:#8b8f94}.bar{fill:#4a78b5}
.drop-zone{fill:#d9534f;fill-opacity:.12}.bound{stroke:#c62828;stroke-width:2;stroke-dasharray:5 3}
.axis{stroke:#9aa4ae;stroke-width:1}svg.clusters{max-width:520px;display:block}
"""


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        return f"{x:,.4g}" if abs(x) < 1e6 else f"{x:.3e}"
    if isinstance(x, int):
        return f"{x:,}"
    return escape(str(x))


def _short(text: Any, n: int = 300) -> str:
    s = "" if text is None else str(text)
    return escape(s if len(s) <= n else s[:n] + " …")


# -- charts -----------------------------------------------------------------------------------------------------
def funnel_svg(ops: list[dict], total: int) -> str:
    """One row per op: what came in, split into kept (green), dropped (red) and failed (grey)."""
    width, label_w, num_w, row_h = 1000, 290, 200, 22
    bar_w = width - label_w - num_w
    total = max(total, max((op.get("docs_in", 0) for op in ops), default=0), 1)
    rows = []
    for i, op in enumerate(ops):
        y = 6 + i * row_h
        din, dout = op.get("docs_in", 0), op.get("docs_out", 0)
        dropped, errors = op.get("dropped", 0), op.get("errors", 0)
        scale = bar_w / total
        x = label_w
        segs = []
        for cls, n in (("kept", dout), ("dropped", dropped), ("errors", errors)):
            if n > 0:
                w = max(n * scale, 1.0)
                segs.append(f'<rect class="{cls}" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 6}">'
                            f'<title>{escape(op["label"])}: {cls} {n:,}</title></rect>')
                x += w
        what = f"-{dropped:,}" if dropped else (f"~{op.get('modified', 0):,} modified" if op.get("modified") else "")
        rows.append(
            f'<text x="{label_w - 8}" y="{y + 12}" text-anchor="end">{escape(op["label"][:44])}</text>'
            + "".join(segs)
            + f'<text x="{label_w + bar_w + 8}" y="{y + 12}">{din:,} → {dout:,} {escape(what)}</text>')
    height = 12 + len(ops) * row_h
    return (f'<svg class="funnel" role="img" aria-label="per-op funnel" viewBox="0 0 {width} {height}" '
            f'width="100%" preserveAspectRatio="xMinYMin meet">{"".join(rows)}</svg>')


def histogram_svg(op: dict) -> str:
    dist = op.get("distribution") or {}
    hist = dist.get("histogram") or {}
    edges, counts = hist.get("edges") or [], hist.get("counts") or []
    if len(edges) < 2 or not counts:
        return ""
    width, height, left, bottom, top = 480, 190, 40, 34, 22
    plot_w, plot_h = width - left - 10, height - bottom - top
    lo, hi = float(edges[0]), float(edges[-1])
    degenerate = hi <= lo  # every value equal: one bar, on a range that shows the bounds too
    if degenerate:
        value = lo
        near = [float(b) for b in (op.get("bounds") or []) if isinstance(b, (int, float)) and math.isfinite(b)]
        pad = max(abs(value) * 0.5, 1.0)
        lo, hi = min([value - pad] + near), max([value + pad] + near)
        edges, counts = [value - (hi - lo) / 200, value + (hi - lo) / 200], [sum(counts)]
    span = hi - lo
    peak = max(max(counts), 1)

    def xpos(v: float) -> float:
        return left + (v - lo) / span * plot_w

    parts = [f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}"/>',
             f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}"/>',
             f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{peak:,}</text>',
             f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>']
    for i, c in enumerate(counts):
        h = c / peak * plot_h
        a, b = float(edges[i]), float(edges[i + 1] if i + 1 < len(edges) else edges[-1])
        x0, x1 = xpos(a), xpos(b)
        label = f"all {c:,} values = {_fmt(value)}" if degenerate else f"[{_fmt(a)}, {_fmt(b)}): {c:,}"
        parts.append(f'<rect class="bar" x="{x0 + 0.5:.1f}" y="{top + plot_h - h:.1f}" '
                     f'width="{max(x1 - x0 - 1, 1.5):.1f}" height="{h:.1f}"><title>{label}</title></rect>')
    for v, anchor in ((lo, "start"), (lo + span / 2, "middle"), (hi, "end")):
        parts.append(f'<text x="{xpos(v):.1f}" y="{top + plot_h + 14}" text-anchor="{anchor}">{_fmt(v)}</text>')
    notes = []
    bounds = list(op.get("bounds") or [None, None]) + [None, None]
    for kind, b in (("min", bounds[0]), ("max", bounds[1])):
        if b is None or not isinstance(b, (int, float)) or not math.isfinite(b):
            continue
        if lo <= b <= hi:
            x = xpos(float(b))
            zone = (left, x) if kind == "min" else (x, left + plot_w)
            parts.append(f'<rect class="drop-zone" x="{zone[0]:.1f}" y="{top}" width="{zone[1] - zone[0]:.1f}" '
                         f'height="{plot_h}"><title>dropped: {kind} bound {_fmt(b)}</title></rect>')
            parts.append(f'<line class="bound" data-bound="{kind}" x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" '
                         f'y2="{top + plot_h}"/>')
            anchor = "start" if kind == "min" else "end"
            dx = 3 if kind == "min" else -3
            parts.append(f'<text x="{x + dx:.1f}" y="{top - 8}" text-anchor="{anchor}">{kind} {_fmt(b)}</text>')
        else:
            side = "below" if b < lo else "above"
            notes.append(f"{kind} bound {_fmt(b)} lies {side} every observed value")
    x_label = escape(op.get("stat_key") or "value")
    parts.append(f'<text x="{left + plot_w}" y="{height - 4}" text-anchor="end">{x_label}</text>')
    svg = (f'<svg class="histogram" data-op="{escape(op["label"])}" role="img" '
           f'aria-label="histogram of {x_label}" viewBox="0 0 {width} {height}" width="100%" '
           f'preserveAspectRatio="xMinYMin meet">{"".join(parts)}</svg>')
    if notes:
        svg += f'<div class="note">{"; ".join(escape(n) for n in notes)}</div>'
    return svg


def bars_svg(items: list[tuple[str, int]], css: str) -> str:
    if not items:
        return ""
    width, height, left, bottom, top = 480, 160, 40, 30, 12
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max(max(v for _, v in items), 1)
    bar_w = plot_w / len(items)
    parts = [f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}"/>',
             f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{peak:,}</text>']
    for i, (label, v) in enumerate(items):
        h = v / peak * plot_h
        x = left + i * bar_w
        parts.append(f'<rect class="bar" x="{x + 2:.1f}" y="{top + plot_h - h:.1f}" width="{max(bar_w - 4, 1):.1f}" '
                     f'height="{h:.1f}"><title>{escape(label)}: {v:,}</title></rect>')
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle">'
                     f'{escape(label)}</text>')
    return (f'<svg class="{css}" role="img" viewBox="0 0 {width} {height}" width="100%" '
            f'preserveAspectRatio="xMinYMin meet">{"".join(parts)}</svg>')


# -- the page ---------------------------------------------------------------------------------------------------
def drop_reason(value: Any, bounds: list | tuple | None, stat_key: str | None) -> str:
    lo, hi = (list(bounds or []) + [None, None])[:2]
    key = stat_key or "statistic"
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        if lo is not None and value < lo:
            return f"{key} {_plain(value)} < min {_plain(lo)}"
        if hi is not None and value > hi:
            return f"{key} {_plain(value)} > max {_plain(hi)}"
        return f"{key} {_plain(value)} outside [{_plain(lo)}, {_plain(hi)}]"
    return f"{key} is {value!r}"


def _plain(x: Any) -> str:
    return "-" if x is None else (f"{x:.6g}" if isinstance(x, float) else str(x))


def render(job: dict, stats: dict | None, dropped: dict[str, list[dict]], live: bool) -> str:
    title = f"Steel job {job.get('name') or job['id']}"
    head = [f'<meta charset="utf-8"><title>{escape(title)}</title>',
            '<meta name="viewport" content="width=device-width, initial-scale=1">', f"<style>{STYLE}</style>"]
    if live:
        head.append('<meta http-equiv="refresh" content="5">')
    body = [f"<h1>{escape(title)}</h1>",
            f'<div class="meta">id {escape(job["id"])} · state <b class="state">{escape(job["state"])}</b>'
            f' · output {escape(job.get("output_display", ""))}'
            + (f' · recipe {escape(str(stats.get("recipe")))}' if stats else "") + "</div>"]
    if job.get("error"):
        body.append(f'<div class="error">{escape(job["error"])}</div>')
    if stats is None:
        prog = job.get("progress") or {}
        body.append('<p class="note">Final statistics appear when the job has finished; below is its live '
                    "progress (this page refreshes itself).</p>")
        body.append('<div class="kpis">' + "".join(
            f'<div class="kpi">{escape(k)}<b>{_fmt(prog.get(k))}</b></div>'
            for k in ("shards_done", "shards_total", "records_done", "records_total")) + "</div>")
        ops = prog.get("ops") or []
        if ops:
            body += ["<h2>Funnel so far</h2>", funnel_svg(ops, ops[0].get("docs_in", 0))]
        return _page(head, body)

    acc = stats.get("accounting") or {}
    dropped_total = sum((acc.get("dropped_by_op") or {}).values())
    body.append('<div class="kpis">' + "".join(
        f'<div class="kpi">{label}<b>{_fmt(v)}</b></div>' for label, v in (
            ("input records", acc.get("input_records")), ("kept", stats.get("output_docs")),
            ("dropped", dropped_total), ("quarantined", acc.get("quarantined")),
            ("balanced", "yes" if acc.get("balanced") else "NO"), ("wall seconds", stats.get("wall_seconds"))))
        + "</div>")
    audits = stats.get("audits") or []
    if audits:
        body.append("<h2>Audits</h2>")
        body += [f'<div class="audit"><b>{escape(str(a.get("level", "")))}</b> · {escape(str(a.get("op", "")))}: '
                 f'{escape(str(a.get("message", "")))}</div>' for a in audits]
    ops = stats.get("ops") or []
    body += ["<h2>Funnel</h2>", funnel_svg(ops, acc.get("input_records", 0)), _ops_table(ops)]
    charts = [(op, histogram_svg(op)) for op in ops]
    charts = [(op, svg) for op, svg in charts if svg]
    if charts:
        body.append("<h2>Statistics</h2><div class=\"grid\">")
        for op, svg in charts:
            q = (op.get("distribution") or {}).get("quantiles") or {}
            qs = " · ".join(f"p{float(k) * 100:g} {_fmt(v)}" for k, v in q.items() if k in ("0.05", "0.5", "0.95"))
            body.append(f'<div class="card"><h3>{escape(op["label"])} <span class="note">'
                        f'{escape(op.get("stat_key") or "")} · bounds [{_fmt((op.get("bounds") or [None])[0])}, '
                        f'{_fmt((op.get("bounds") or [None, None])[1])}] · {qs}</span></h3>{svg}</div>')
        body.append("</div>")
    dedup = stats.get("dedup")
    if dedup:
        body.append(_dedup_section(dedup))
    if dropped:
        body.append("<h2>Dropped examples</h2>")
        by_label = {op["label"]: op for op in ops}
        for label, examples in dropped.items():
            op = by_label.get(label, {})
            body.append(f'<h3>{escape(label)} <span class="note">{_fmt(op.get("dropped"))} dropped; '
                        f"{len(examples)} shown</span></h3>")
            for ex in examples:
                reason = drop_reason(ex.get("value"), op.get("bounds"), op.get("stat_key"))
                body.append(f'<div class="ex"><code>{escape(str(ex.get("id")))}</code> {escape(reason)}'
                            f'<div class="txt">{_short(ex.get("text"))}</div></div>')
    return _page(head, body)


def _ops_table(ops: list[dict]) -> str:
    rows = ["<table class=\"ops\"><tr><th>op</th><th>kind</th><th>in</th><th>out</th><th>dropped</th>"
            "<th>modified</th><th>kept</th><th>CPU s</th><th>docs/s</th></tr>"]
    for op in ops:
        kept = f"{op['docs_out'] / op['docs_in']:.1%}" if op.get("docs_in") else "-"
        rows.append(f"<tr><td>{escape(op['label'])}</td><td>{escape(op.get('kind', ''))}</td>"
                    f"<td>{_fmt(op.get('docs_in'))}</td><td>{_fmt(op.get('docs_out'))}</td>"
                    f"<td>{_fmt(op.get('dropped'))}</td><td>{_fmt(op.get('modified'))}</td><td>{kept}</td>"
                    f"<td>{_fmt(op.get('seconds'))}</td><td>{_fmt(op.get('docs_per_second'))}</td></tr>")
    return "".join(rows) + "</table>"


def _dedup_section(dedup: dict) -> str:
    keys = ("fingerprints", "unique_fingerprints", "near_duplicate_pairs", "clusters", "documents_in_clusters",
            "duplicates_dropped", "largest_cluster", "zero_fingerprint_docs", "empty_fingerprint_docs")
    out = ["<h2>Deduplication</h2>", '<div class="kpis">' + "".join(
        f'<div class="kpi">{escape(k.replace("_", " "))}<b>{_fmt(dedup.get(k))}</b></div>'
        for k in keys if k in dedup) + "</div>"]
    sizes = dedup.get("cluster_sizes") or {}
    if sizes:
        out += ["<h3>Cluster sizes</h3>", bars_svg([(k, int(v)) for k, v in sizes.items()], "clusters")]
    examples = dedup.get("cluster_examples") or []
    if examples:
        out.append("<h3>Largest clusters</h3>")
        for c in examples[:5]:
            members = c.get("members") or []
            out.append(f'<div class="card"><b>{_fmt(c.get("size"))} documents</b> '
                       f'<span class="note">the first is kept</span>')
            for m in members[:4]:
                out.append(f'<div class="ex"><code>{escape(str(m.get("id")))}</code> '
                           f'<code>{escape(str(m.get("simhash", "")))}</code>'
                           f'<div class="txt">{_short(m.get("text"), 200)}</div></div>')
            out.append("</div>")
    return "".join(out)


def _page(head: list[str], body: list[str]) -> str:
    return ("<!doctype html><html lang=\"en\"><head>" + "".join(head) + "</head><body>" + "".join(body)
            + "</body></html>")
