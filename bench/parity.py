"""Parity of Steel's operators with Data-Juicer 1.6.1, op by op and end to end, on the Steel-LLM sources.

Why: Steel's default must reproduce Data-Juicer's decisions exactly (../shared/OPERATORS.md). The only
trustworthy reference is Data-Juicer itself, so this bench runs it (in its own cached virtualenv, see
bench/dj_env.py, driven by bench/dj_driver.py) and Steel on the same documents and compares:

  op by op   every op of the text and code recipes (minus perplexity and the tokenized alphanumeric
             filter, which need models). In `chain` mode each mapper gets Data-Juicer's output of the
             previous mapper, so a disagreement is charged to the op that caused it and never cascades;
             filters and the deduplicator see the last mapper's output. `raw` mode gives every op the
             unified input instead (more varied text for the later mappers).
             mappers: output text equal; filters: statistic within 1e-9 and the same keep decision;
             dedup: the same SimHash per document and the same survivor set.
  end to end `dj-process` (default executor, np=1) vs Steel (`steel run`, or Steel's ops composed here
             when the CLI is missing or fails) on each recipe; output sequences compared and timed.

Usage:
  .venv/bin/python bench/parity.py                       # both recipes, chain mode, end to end
  .venv/bin/python bench/parity.py --mode both --json /tmp/parity.json
  .venv/bin/python bench/parity.py --recipes text --limit 500 --no-e2e   # quick look
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# bench/ holds scripts named like standard-library modules (there was a bench/tokenize.py; it is now tokenize_bench.py): keep it off the front of sys.path
# (where `python bench/parity.py` puts it) and search it last, only for the helper modules below.
if sys.path and Path(sys.path[0] or ".").resolve() == BENCH:
    sys.path.pop(0)
sys.path.insert(0, str(REPO))
sys.path.append(str(BENCH))

from corpus import build_inputs, read_texts, write_edge_cases  # noqa: E402
from dj_env import CACHE, dj_python, ensure_dj_venv  # noqa: E402

# --------------------------------------------------------------------------------------------------
# The Steel-LLM recipes (OPERATORS.md "The recipes"), without perplexity_filter and the tokenized
# alphanumeric_filter. Parameters are passed verbatim to both sides.
# --------------------------------------------------------------------------------------------------
SIMHASH = {"tokenization": "space", "window_size": 6, "num_blocks": 6, "hamming_distance": 4, "lowercase": True}

RECIPES: dict[str, list[tuple[str, dict]]] = {
    "text": [
        ("chinese_convert_mapper", {"mode": "t2s"}),
        ("clean_email_mapper", {}),
        ("clean_html_mapper", {}),
        ("clean_ip_mapper", {}),
        ("clean_links_mapper", {}),
        ("clean_copyright_mapper", {}),
        ("expand_macro_mapper", {}),
        ("fix_unicode_mapper", {}),
        ("punctuation_normalization_mapper", {}),
        ("remove_repeat_sentences_mapper",
         {"lowercase": False, "ignore_special_character": True, "min_repeat_sentence_length": 2}),
        ("remove_specific_chars_mapper", {"chars_to_remove": "◆●■►▼▲▴∆▻▷❖♡□"}),
        ("whitespace_normalization_mapper", {}),
        ("alphanumeric_filter", {"tokenization": False, "min_ratio": 0.0, "max_ratio": 0.9}),
        ("average_line_length_filter", {"min_len": 10, "max_len": 150}),
        ("character_repetition_filter", {"rep_len": 10, "min_ratio": 0.0, "max_ratio": 0.4}),
        ("maximum_line_length_filter", {"max_len": 1000}),
        ("special_characters_filter", {"min_ratio": 0.0, "max_ratio": 0.25}),
        ("text_length_filter", {"min_len": 10, "max_len": 100000}),
        ("words_num_filter", {"lang": "zh", "tokenization": False, "min_num": 10, "max_num": 10000}),
        ("word_repetition_filter", {"lang": "zh", "tokenization": False, "rep_len": 10, "min_ratio": 0.0,
                                    "max_ratio": 0.5}),
        ("document_simhash_deduplicator", SIMHASH),
    ],
    "code": [
        ("clean_email_mapper", {}),
        ("clean_links_mapper", {}),
        ("fix_unicode_mapper", {}),
        ("punctuation_normalization_mapper", {}),
        ("whitespace_normalization_mapper", {}),
        ("clean_copyright_mapper", {}),
        ("alphanumeric_filter", {"tokenization": False, "min_ratio": 0.2, "max_ratio": 0.9163}),
        ("average_line_length_filter", {"min_len": 10, "max_len": 150}),
        ("character_repetition_filter", {"max_ratio": 0.36}),
        ("maximum_line_length_filter", {"max_len": 1000}),
        ("text_length_filter", {"max_len": 96714}),
        ("words_num_filter", {"min_num": 20, "max_num": 6640}),
        ("word_repetition_filter", {"rep_len": 10, "max_ratio": 0.357}),
        ("document_simhash_deduplicator", {**SIMHASH, "ignore_pattern": r"\p{P}"}),
    ],
}

STAT_TOLERANCE = 1e-9


# --------------------------------------------------------------------------------------------------
# Data-Juicer side (subprocesses in its venv)
# --------------------------------------------------------------------------------------------------
def run_dj_ops(recipe: list, input_path: Path, mode: str, work: Path) -> dict:
    """All per-document outputs of Data-Juicer's ops, via bench/dj_driver.py in the DJ venv."""
    job = work / f"dj_job_{input_path.stem}_{mode}.json"
    out = work / f"dj_ops_{input_path.stem}_{mode}.json"
    job.write_text(json.dumps({"input": str(input_path), "mode": mode, "ops": recipe}, ensure_ascii=False))
    log = work / f"dj_ops_{input_path.stem}_{mode}.log"
    with open(log, "w") as fh:
        proc = subprocess.run([str(dj_python()), str(BENCH / "dj_driver.py"), "ops", str(job), str(out)],
                              stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode:
        sys.exit(f"Data-Juicer op-by-op run failed; see {log}:\n" + log.read_text()[-3000:])
    return json.loads(out.read_text(encoding="utf-8"))


def dj_recipe_yaml(name: str, recipe: list, dataset: Path, export: Path, np_: int) -> dict:
    return {
        "project_name": f"steel-parity-{name}",
        "dataset_path": str(dataset),
        "export_path": str(export),
        "np": np_,
        "text_keys": "text",
        "use_cache": False,
        "skip_op_error": False,
        "open_tracer": False,
        "process": [{op: dict(params)} for op, params in recipe],
    }


def run_dj_process(name: str, recipe: list, dataset: Path, work: Path, np_: int = 1) -> tuple[list[str], float, float]:
    """`dj-process` (default executor) end to end; returns the exported texts, the wall time of the command
    and the time its executor reports (without interpreter start and config parsing)."""
    run_dir = work / f"dj_e2e_{name}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    export = run_dir / "out.jsonl"
    config = run_dir / "recipe.yaml"
    config.write_text(yaml.safe_dump(dj_recipe_yaml(name, recipe, dataset, export, np_), allow_unicode=True))
    cmd = [str(dj_python()), str(BENCH / "dj_driver.py"), "process", "--config", str(config),
           "--dataset_path", str(dataset), "--export_path", str(export), "--np", str(np_)]
    start = time.perf_counter()
    with open(run_dir / "dj-process.log", "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=run_dir)
    seconds = time.perf_counter() - start
    log = (run_dir / "dj-process.log").read_text(encoding="utf-8", errors="replace")
    if proc.returncode:
        sys.exit(f"dj-process failed; see {run_dir / 'dj-process.log'}:\n{log[-3000:]}")
    inner = re.search(r"Running executor took ([\d.]+) seconds", log)
    return read_texts(export) if export.exists() else [], seconds, float(inner.group(1)) if inner else seconds


# --------------------------------------------------------------------------------------------------
# Steel side (this venv)
# --------------------------------------------------------------------------------------------------
def steel_op(name: str, params: dict):
    from operators import registry

    op = registry.build(name, dict(params))
    op.ensure_ready()
    return op


def _per_doc(fn, items):
    """Steel's batch call, and on an exception one document at a time (errors kept per document)."""
    try:
        return fn(items), {}
    except Exception:  # noqa: BLE001
        outs, errors = [], {}
        for i, item in enumerate(items):
            try:
                outs.append(fn([item])[0])
            except Exception as exc:  # noqa: BLE001
                outs.append(None)
                errors[i] = f"{type(exc).__name__}: {exc}"
        return outs, errors


def steel_dedup_survivors(hashes: list[int], subset: list[int] | None, params: dict) -> list[int]:
    """Steel's global SimHash stage (steel_data.dedup) over `subset`, as original indices."""
    import numpy as np
    from steel_data.dedup import deduplicate

    idx = [i for i in (range(len(hashes)) if subset is None else subset) if hashes[i] is not None]
    if len(idx) <= 1:
        return idx
    res = deduplicate(np.array([hashes[i] for i in idx], dtype=np.uint64), params["num_blocks"],
                      params["hamming_distance"])
    return [i for i, k in zip(idx, res.keep) if k]


# --------------------------------------------------------------------------------------------------
# Comparison and reporting
# --------------------------------------------------------------------------------------------------
def diff_window(a: str, b: str, context: int = 40) -> tuple[int, str, str]:
    """First differing position and both strings shortened around it."""
    pos = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    lo = max(0, pos - context)
    return pos, _clip(a, lo, pos + context * 2), _clip(b, lo, pos + context * 2)


def _clip(s: str, lo: int, hi: int) -> str:
    return ("…" if lo > 0 else "") + repr(s[lo:hi]) + ("…" if hi < len(s) else "")


def input_window(inp: str, out: str, pos: int, context: int = 40) -> str:
    """The input shortened around the place that became output position `pos` (found by the longest
    preceding output fragment that occurs in the input)."""
    for k in (24, 12, 6, 3):
        frag = out[max(0, pos - k) : pos]
        if len(frag) == k:
            at = inp.find(frag)
            if at >= 0:
                at += k
                return _clip(inp, max(0, at - context), at + context * 2)
    p = min(pos, len(inp))
    return _clip(inp, max(0, p - context), p + context * 2)


def _char_class(c: str) -> str:
    if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf":
        return "CJK"
    if c.isspace():
        return "space"
    if c.isdigit():
        return "digit"
    if c.isalpha():
        return "letter"
    return "punct/symbol"


def first_hunk(dj: str, st: str, window: int = 300) -> tuple[str, str]:
    """The first differing stretch of the two texts: what DJ has there and what Steel has instead
    (difflib on a window from the first differing position, so later, unrelated differences in the same
    document do not blur the key)."""
    pos = next((i for i, (x, y) in enumerate(zip(dj, st)) if x != y), min(len(dj), len(st)))
    a, b = dj[pos : pos + window], st[pos : pos + window]
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            return a[i1:i2], b[j1:j2]
    return a, b


def mapper_category(dj: str, st: str) -> str:
    """A key grouping text disagreements by their first differing stretch. Short stretches are the key
    themselves (every `搧`/`扇` case is one group); longer ones are described by their character classes
    (a URL that only DJ kept is `DJ letter+punct/symbol / Steel nothing`)."""
    a, b = first_hunk(dj, st)
    if len(a) <= 4 and len(b) <= 4:
        return f"DJ {a!r} / Steel {b!r}"
    sig = lambda s: "+".join(sorted({_char_class(c) for c in s})) or "nothing"  # noqa: E731
    return f"DJ {sig(a)} / Steel {sig(b)}"


def compare_op(dj_res: dict, inputs: list[str], n_examples: int) -> dict:
    """Run Steel's op on the same inputs as Data-Juicer's and compare per document."""
    name, params, kind = dj_res["name"], dj_res["params"], dj_res["kind"]
    op = steel_op(name, params)
    dj_errors = {int(k): v for k, v in dj_res["errors"].items()}
    start = time.perf_counter()
    row: dict = {"op": name, "kind": kind, "n": len(inputs), "dj_seconds": dj_res["seconds"],
                 "dj_errors": len(dj_errors)}
    categories: dict[str, list] = defaultdict(list)

    if kind == "mapper":
        outs, errs = _per_doc(op.map_texts, inputs)
        row["steel_seconds"] = time.perf_counter() - start
        row["dj_changed"] = sum(1 for inp, dj in zip(inputs, dj_res["outputs"]) if dj is not None and dj != inp)
        agree = 0
        for i, (inp, dj, st) in enumerate(zip(inputs, dj_res["outputs"], outs)):
            if dj == st and i not in dj_errors and i not in errs:
                agree += 1
                continue
            if i in dj_errors or i in errs:
                key = f"error: DJ {dj_errors.get(i, 'ok')} / Steel {errs.get(i, 'ok')}"
                categories[key].append({"doc": i, "input": _clip(inp, 0, 120)})
                continue
            pos, d, s = diff_window(dj, st)
            categories[mapper_category(dj, st)].append(
                {"doc": i, "pos": pos, "input": input_window(inp, dj, pos), "dj": d, "steel": s})
    elif kind == "filter":
        from operators.doc import Doc

        values, errs = _per_doc(op.compute_stats, [Doc(t) for t in inputs])
        row["steel_seconds"] = time.perf_counter() - start
        agree = keep_agree = stat_agree = 0
        for i, (inp, dj_stat, dj_keep, st) in enumerate(zip(inputs, dj_res["stats"], dj_res["keep"], values)):
            if i in dj_errors or i in errs:
                categories[f"error: DJ {dj_errors.get(i, 'ok')} / Steel {errs.get(i, 'ok')}"].append(
                    {"doc": i, "input": _clip(inp, 0, 120)})
                continue
            st_keep = op.keeps(st)
            same_stat = _close(dj_stat, st)
            keep_agree += st_keep == dj_keep
            stat_agree += same_stat
            if same_stat and st_keep == dj_keep:
                agree += 1
                continue
            key = ("keep differs" if st_keep != dj_keep else "same decision, stat differs")
            categories[key].append({"doc": i, "input": _clip(inp, 0, 160), "dj": f"{dj_stat!r} keep={dj_keep}",
                                    "steel": f"{st!r} keep={st_keep}"})
        row.update(keep_agree=keep_agree, stat_agree=stat_agree, dj_dropped=dj_res["keep"].count(False))
    else:
        hashes, errs = _per_doc(op.fingerprints, inputs)
        row["steel_seconds"] = time.perf_counter() - start
        agree = 0
        for i, (inp, dj_h, st_h) in enumerate(zip(inputs, dj_res["hashes"], hashes)):
            if dj_h is not None and st_h is not None and int(dj_h) == st_h:
                agree += 1
                continue
            if i in dj_errors or i in errs:
                categories[f"error: DJ {dj_errors.get(i, 'ok')} / Steel {errs.get(i, 'ok')}"].append(
                    {"doc": i, "input": _clip(inp, 0, 120)})
                continue
            key = "DJ 0 / Steel nonzero" if int(dj_h) == 0 else "Steel 0 / DJ nonzero" if st_h == 0 else "hash differs"
            categories[key].append({"doc": i, "input": _clip(inp, 0, 160), "dj": dj_h, "steel": str(st_h)})
        st_surv = steel_dedup_survivors(hashes, dj_res.get("subset"), params)
        dj_surv = dj_res["survivors"]
        only_dj, only_st = sorted(set(dj_surv) - set(st_surv)), sorted(set(st_surv) - set(dj_surv))
        row["dedup"] = {
            "input_docs": len(dj_res["subset"]) if dj_res.get("subset") is not None else len(inputs),
            "dj_survivors": len(dj_surv), "steel_survivors": len(st_surv),
            "only_dj": len(only_dj), "only_steel": len(only_st), "equal": dj_surv == st_surv,
            "zero_hash_docs_dj": sum(1 for h in dj_res["hashes"] if h == "0"),
            "examples_only_dj": [{"doc": i, "input": _clip(inputs[i], 0, 120)} for i in only_dj[:n_examples]],
            "examples_only_steel": [{"doc": i, "input": _clip(inputs[i], 0, 120)} for i in only_st[:n_examples]],
        }

    row["agree"] = agree
    row["pct"] = 100.0 * agree / len(inputs) if inputs else 100.0
    row["categories"] = [
        {"category": key, "count": len(items), "examples": items[:n_examples]}
        for key, items in sorted(categories.items(), key=lambda kv: -len(kv[1]))
    ]
    return row


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= STAT_TOLERANCE
    return a == b


def op_inputs(dj_run: dict, texts: list[str]) -> list[list[str]]:
    """The input each op saw on the Data-Juicer side (see dj_driver.run_ops)."""
    current, inputs = list(texts), []
    for res in dj_run["ops"]:
        inputs.append(current if dj_run["mode"] == "chain" else texts)
        if dj_run["mode"] == "chain" and res["kind"] == "mapper":
            current = [o if o is not None else s for o, s in zip(res["outputs"], current)]
    return inputs


# --------------------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------------------
def run_steel_e2e(name: str, recipe: list, dataset: Path, work: Path) -> tuple[list[str], float, float, str]:
    """Steel end to end: `steel run` (one worker, like np=1) when the CLI exists and succeeds, otherwise
    Steel's ops composed here (mappers in order, filters AND-ed, steel_data.dedup on the survivors)."""
    steel_cli = Path(sys.executable).with_name("steel")
    if (REPO / "steel_data" / "executor.py").exists() and steel_cli.exists():
        out_dir = work / f"steel_e2e_{name}"
        config = work / f"steel_recipe_{name}.yaml"
        config.write_text(yaml.safe_dump({"project_name": f"steel-parity-{name}", "text_keys": "text",
                                          "process": [{op: dict(p)} for op, p in recipe]}, allow_unicode=True))
        cmd = [str(steel_cli), "run", str(config), "-i", str(dataset), "-o", str(out_dir), "--workers", "1",
               "--format", "jsonl", "--overwrite", "--no-progress"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        seconds = time.perf_counter() - start
        if proc.returncode == 0:
            texts = []
            for part in sorted((out_dir / "data").glob("part-*")):
                texts += read_texts(part)
            inner = re.search(r" in ([\d.]+) s \(", proc.stdout)
            return texts, seconds, float(inner.group(1)) if inner else seconds, "steel run --workers 1"
        print(f"[steel] `steel run` failed (rc {proc.returncode}), composing ops instead:\n{proc.stderr[-1500:]}")
    return compose_steel(recipe, read_texts(dataset))


def compose_steel(recipe: list, texts: list[str]) -> tuple[list[str], float, float, str]:
    from operators.base import Deduplicator, Filter, Mapper
    from operators.doc import Doc

    start = time.perf_counter()
    ops = [steel_op(name, params) for name, params in recipe]
    for op in ops:
        if isinstance(op, Mapper):
            texts = op.map_texts(texts)
    docs = [Doc(t) for t in texts]
    for op in ops:
        if isinstance(op, Filter):
            docs = [d for d, v in zip(docs, op.compute_stats(docs)) if op.keeps(v)]
    texts = [d.text for d in docs]
    dedup = next((op for op in ops if isinstance(op, Deduplicator)), None)
    if dedup is not None:
        keep = set(steel_dedup_survivors(dedup.fingerprints(texts), None, dedup.params.model_dump()))
        texts = [t for i, t in enumerate(texts) if i in keep]
    seconds = time.perf_counter() - start
    return texts, seconds, seconds, "operators composed in bench/parity.py"


def compare_e2e(dj_out: list[str], steel_out: list[str], n_examples: int) -> dict:
    dj_set, st_set = Counter(dj_out), Counter(steel_out)
    only_dj = list((dj_set - st_set).elements())
    only_st = list((st_set - dj_set).elements())
    return {
        "dj_docs": len(dj_out), "steel_docs": len(steel_out), "same_sequence": dj_out == steel_out,
        "common": sum((dj_set & st_set).values()), "only_dj": len(only_dj), "only_steel": len(only_st),
        "examples_only_dj": [_clip(t, 0, 160) for t in only_dj[:n_examples]],
        "examples_only_steel": [_clip(t, 0, 160) for t in only_st[:n_examples]],
    }


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------
def print_op_table(recipe_name: str, mode: str, rows: list[dict]) -> None:
    print(f"\n=== {recipe_name} recipe, op by op ({mode} mode) ===")
    print("(changed: documents Data-Juicer's mapper changed; dropped: documents its filter dropped; keep=: same"
          " keep decision; seconds are wall time of the op alone)")
    print(f"{'op':<34} {'docs':>6} {'agree':>6} {'%':>8}  {'keep=':>6} {'changed':>7} {'dropped':>7}"
          f" {'DJ s':>6} {'Steel s':>7}  notes")
    for r in rows:
        keep = str(r.get("keep_agree", "")) if r["kind"] == "filter" else ""
        changed, dropped = r.get("dj_changed", ""), r.get("dj_dropped", "")
        notes = []
        if r["dj_errors"]:
            notes.append(f"{r['dj_errors']} DJ errors")
        if "dedup" in r:
            d = r["dedup"]
            notes.append(f"survivors DJ {d['dj_survivors']} / Steel {d['steel_survivors']} of {d['input_docs']}"
                         f" ({'equal' if d['equal'] else 'DIFFER'}); {d['zero_hash_docs_dj']} docs hash 0")
        print(f"{r['op']:<34} {r['n']:>6} {r['agree']:>6} {r['pct']:>7.3f}%  {keep:>6} {changed:>7} {dropped:>7}"
              f" {r['dj_seconds']:>6.2f} {r['steel_seconds']:>7.2f}  {'; '.join(notes)}")
    for r in rows:
        for cat in r["categories"]:
            print(f"\n  [{r['op']}] {cat['category']}  x{cat['count']}")
            for ex in cat["examples"]:
                print(f"    doc {ex['doc']}" + (f" @ {ex['pos']}" if "pos" in ex else ""))
                for key in ("input", "dj", "steel"):
                    if key in ex:
                        print(f"      {key:>5}: {ex[key]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", default="text,code", help="comma-separated: text, code")
    ap.add_argument("--mode", choices=["chain", "raw", "both"], default="chain", help="op-by-op input (see above)")
    ap.add_argument("--extra", action="store_true", help="add the other real corpora under shared/corpus")
    ap.add_argument("--extra-limit", type=int, default=500, help="documents per extra corpus file")
    ap.add_argument("--extra-chars", type=int, default=2_000_000, help="about this many characters per extra file")
    ap.add_argument("--cases", action="store_true", help="also compare on bench/corpus.py's hand-written edge cases")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N documents of each input")
    ap.add_argument("--examples", type=int, default=3, help="examples per disagreement category")
    ap.add_argument("--no-e2e", action="store_true", help="skip the end-to-end runs")
    ap.add_argument("--work", type=Path, default=CACHE / "parity", help="cache/work folder (outside the repo)")
    ap.add_argument("--json", type=Path, help="write all results here")
    args = ap.parse_args(argv)

    ensure_dj_venv()
    args.work.mkdir(parents=True, exist_ok=True)
    inputs = build_inputs(args.work, extra=args.extra, extra_limit=args.extra_limit, extra_chars=args.extra_chars)
    results: dict = {"recipes": {}, "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])])}
    modes = ["chain", "raw"] if args.mode == "both" else [args.mode]

    for recipe_name in args.recipes.split(","):
        recipe = RECIPES[recipe_name]
        dataset = inputs[recipe_name]
        if args.limit:
            limited = args.work / f"{dataset.stem}_first{args.limit}.jsonl"
            with open(dataset, encoding="utf-8") as src:
                limited.write_text("".join(line for _, line in zip(range(args.limit), src)), encoding="utf-8")
            dataset = limited
        texts = read_texts(dataset)
        out: dict = {"input": str(dataset), "docs": len(texts), "chars": sum(map(len, texts)), "ops": {}}
        print(f"\n##### {recipe_name} recipe: {len(texts)} documents, {out['chars']:,} characters ({dataset})")
        for mode in modes:
            t0 = time.perf_counter()
            dj_run = run_dj_ops(recipe, dataset, mode, args.work)
            print(f"[dj] op-by-op run ({mode}) took {time.perf_counter() - t0:.1f} s")
            rows = [compare_op(res, inp, args.examples) for res, inp in zip(dj_run["ops"], op_inputs(dj_run, texts))]
            out["ops"][mode] = rows
            print_op_table(recipe_name, mode, rows)
        if not args.no_e2e:
            dj_texts, dj_s, dj_inner = run_dj_process(recipe_name, recipe, dataset, args.work)
            st_texts, st_s, st_inner, how = run_steel_e2e(recipe_name, recipe, dataset, args.work)
            cmp = compare_e2e(dj_texts, st_texts, args.examples)
            cmp.update(dj_seconds=dj_s, steel_seconds=st_s, dj_executor_seconds=dj_inner,
                       steel_executor_seconds=st_inner, steel_how=how,
                       dj_docs_per_s=len(texts) / dj_s, steel_docs_per_s=len(texts) / st_s)
            out["e2e"] = cmp
            print(f"\n=== {recipe_name} recipe, end to end ===")
            print(f"{'':<28} {'Data-Juicer (dj-process, np=1)':>32} {'Steel (' + how + ')':>40}")
            print(f"{'output docs':<28} {cmp['dj_docs']:>32} {cmp['steel_docs']:>40}")
            print(f"{'wall seconds (command)':<28} {dj_s:>32.1f} {st_s:>40.1f}")
            print(f"{'input docs/s (command)':<28} {cmp['dj_docs_per_s']:>32.0f} {cmp['steel_docs_per_s']:>40.0f}")
            print(f"{'executor seconds':<28} {dj_inner:>32.1f} {st_inner:>40.1f}")
            print(f"{'input docs/s (executor)':<28} {len(texts) / dj_inner:>32.0f} {len(texts) / st_inner:>40.0f}")
            print(f"same output sequence: {cmp['same_sequence']}; common {cmp['common']}, "
                  f"only DJ {cmp['only_dj']}, only Steel {cmp['only_steel']}")
            for key in ("examples_only_dj", "examples_only_steel"):
                for ex in cmp[key]:
                    print(f"  {key[9:]}: {ex}")
        if args.cases:
            cases = write_edge_cases(args.work)
            dj_run = run_dj_ops(recipe, cases, "raw", args.work)
            case_inputs = op_inputs(dj_run, read_texts(cases))
            rows = [compare_op(res, inp, args.examples) for res, inp in zip(dj_run["ops"], case_inputs)]
            out["ops"]["edge_cases"] = rows
            print_op_table(recipe_name, "edge cases, raw", rows)
        results["recipes"][recipe_name] = out

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
        print(f"\nresults: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
