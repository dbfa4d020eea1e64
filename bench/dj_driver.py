"""Runs Data-Juicer 1.6.1 itself, inside its own virtualenv (`~/.cache/steel/dj-venv/bin/python`).

Executed by bench/parity.py, never imported by Steel (it imports data_juicer, which Steel's venv lacks).

Two sub-commands:

  ops JOB.json OUT.json     Op by op: run each op of the job's recipe through Data-Juicer's own op classes
                            (`process_batched` for mappers, `compute_stats_batched` + `process_batched` for
                            filters, `compute_hash` + `process` on a Hugging Face dataset for the SimHash
                            deduplicator) and write every per-document output, statistic and decision.
  process DJ-PROCESS-ARGS   `dj-process` (Data-Juicer's default executor) with the same safety patch.

Why the patch: Data-Juicer installs any module it finds missing at run time (`uv pip install`, falling back
to pip), which once pulled a 3 GB CUDA torch. There is no switch for it, so we replace the single entry
point that every install path goes through, `LazyLoader._install_package`, with one that raises.
"""

from __future__ import annotations

import os
import sys

# bench/ holds scripts named like standard-library modules (there was a bench/tokenize.py; it is now tokenize_bench.py); `python bench/dj_driver.py` puts
# it first on sys.path, where it would shadow them inside Data-Juicer's imports. This script needs none of
# its neighbours.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import json  # noqa: E402
import time  # noqa: E402


def forbid_auto_install() -> None:
    from data_juicer.utils.lazy_loader import LazyLoader

    def _refuse(cls, package_spec, pip_args=None):
        raise RuntimeError(
            f"Data-Juicer tried to install {package_spec!r} at run time; install it in the reference venv "
            "(bench/dj_env.py INSTALL_STEPS) instead"
        )

    LazyLoader._install_package = classmethod(_refuse)


BATCH = 1000  # Data-Juicer's default batch size


def _per_doc_fallback(fn, texts, start):
    """Data-Juicer drops a whole batch when an op raises; here we rerun the batch one document at a time to
    find which document(s) raise, so that only those are marked as errors."""
    outs, errors = [], {}
    for i, t in enumerate(texts):
        try:
            outs.append(fn([t])[0])
        except Exception as exc:  # noqa: BLE001
            errors[str(start + i)] = f"{type(exc).__name__}: {exc}"
            outs.append(None)
    return outs, errors


def run_mapper(op, texts):
    def fn(chunk):
        return list(op.process_batched({op.text_key: list(chunk)})[op.text_key])

    outs, errors = [], {}
    for start in range(0, len(texts), BATCH):
        chunk = texts[start : start + BATCH]
        try:
            outs.extend(fn(chunk))
        except Exception:  # noqa: BLE001
            o, e = _per_doc_fallback(fn, chunk, start)
            outs.extend(o)
            errors.update(e)
    return {"outputs": outs, "errors": errors}


def run_filter(op, texts):
    from data_juicer.utils.constant import Fields

    def fn(chunk):
        samples = {op.text_key: list(chunk), Fields.stats: [{} for _ in chunk]}
        samples = op.compute_stats_batched(samples)
        keep = list(op.process_batched(samples))
        return list(zip(samples[Fields.stats], keep))

    pairs, errors = [], {}
    for start in range(0, len(texts), BATCH):
        chunk = texts[start : start + BATCH]
        try:
            pairs.extend(fn(chunk))
        except Exception:  # noqa: BLE001
            o, e = _per_doc_fallback(fn, chunk, start)
            pairs.extend(o)
            errors.update(e)
    stats = [None if p is None else (list(p[0].values())[0] if len(p[0]) == 1 else p[0]) for p in pairs]
    keep = [None if p is None else bool(p[1]) for p in pairs]
    return {"stats": stats, "keep": keep, "errors": errors}


def run_dedup(op, texts, subset=None):
    """SimHash per document, and the survivors (indices) of Data-Juicer's clustering over `subset` (default:
    all documents), in input order."""
    import datasets
    from data_juicer.utils.constant import HashKeys

    datasets.disable_caching()
    hashes, errors = [], {}
    for i, t in enumerate(texts):
        try:
            hashes.append(int(op.compute_hash({op.text_key: t})[HashKeys.simhash]))
        except Exception as exc:  # noqa: BLE001
            errors[str(i)] = f"{type(exc).__name__}: {exc}"
            hashes.append(None)
    idx = [i for i in (range(len(texts)) if subset is None else subset) if hashes[i] is not None]
    ds = datasets.Dataset.from_dict(
        {op.text_key: [texts[i] for i in idx], HashKeys.simhash: [str(hashes[i]) for i in idx], "__row": idx}
    )
    out, _ = op.process(ds)
    survivors = list(out["__row"]) if len(idx) > 1 else idx
    return {"hashes": [None if h is None else str(h) for h in hashes], "survivors": survivors, "errors": errors}


def run_ops(job_path: str, out_path: str) -> None:
    """Job: {"input": jsonl, "ops": [[name, params], ...], "mode": "chain" | "raw"}.

    chain: each mapper gets the previous mapper's Data-Juicer output (so a disagreement never cascades into
    the next op's comparison); filters and the deduplicator get the last mapper's output; the dedup survivor
    set is computed over the documents every filter kept. raw: every op gets the unified input."""
    from data_juicer.ops import load_ops

    job = json.load(open(job_path, encoding="utf-8"))
    texts = [json.loads(line)["text"] for line in open(job["input"], encoding="utf-8") if line.strip()]
    current = list(texts)
    results, filter_keeps = [], []
    for name, params in job["ops"]:
        (op,) = load_ops([{name: params}])
        kind = "mapper" if name.endswith("_mapper") else "filter" if name.endswith("_filter") else "deduplicator"
        source = current if job["mode"] == "chain" else texts
        t0 = time.perf_counter()
        if kind == "mapper":
            res = run_mapper(op, source)
            if job["mode"] == "chain":
                current = [o if o is not None else s for o, s in zip(res["outputs"], source)]
        elif kind == "filter":
            res = run_filter(op, source)
            filter_keeps.append(res["keep"])
        else:
            subset = None
            if job["mode"] == "chain" and filter_keeps:
                subset = [i for i in range(len(source)) if all(k[i] for k in filter_keeps)]
            res = run_dedup(op, source, subset)
            res["subset"] = subset
        res.update(name=name, params=params, kind=kind, seconds=time.perf_counter() - t0)
        results.append(res)
        print(f"[dj] {name}: {res['seconds']:.2f}s, {len(res['errors'])} errors", file=sys.stderr, flush=True)
    json.dump({"mode": job["mode"], "n": len(texts), "ops": results}, open(out_path, "w", encoding="utf-8"),
              ensure_ascii=False)


def main(argv: list[str]) -> None:
    forbid_auto_install()
    if argv[:1] == ["ops"]:
        run_ops(argv[1], argv[2])
    elif argv[:1] == ["process"]:
        from tools.process_data import main as dj_process  # what the `dj-process` console script runs

        sys.argv = ["dj-process", *argv[1:]]
        dj_process()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
