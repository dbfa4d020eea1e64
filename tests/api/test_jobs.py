"""Jobs over HTTP against a real uvicorn: life cycle, results, refusals, auth, traversal, concurrency."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from steel_data.cli import main as steel_main
from steel_data.client import SteelClient

from tests.api.conftest import TEST_RECIPE, TEXT_RECIPE, TOKEN, rows, submit, wait_state


def test_job_output_equals_steel_run(server, text_job):
    job, ref = text_job
    assert job["state"] == "succeeded", job
    out = server.root / "out" / "text"
    assert rows(out) == rows(ref) and len(rows(out)) == job["result"]["output_docs"] > 0
    assert job["result"]["balanced"]
    prog = job["progress"]
    assert prog["phase"] == "done" and prog["fraction"] == 1.0 and prog["shards_done"] == prog["shards_total"] == 4
    ref_stats = json.loads((ref / "stats.json").read_text())
    assert [(o["label"], o["docs_in"], o["docs_out"]) for o in prog["ops"]] == \
        [(o["label"], o["docs_in"], o["docs_out"]) for o in ref_stats["ops"]]


def test_stats_dropped_and_report(client, text_job):
    job, ref = text_job
    jid = job["id"]
    stats = client.get(f"/v1/jobs/{jid}/stats").json()
    ref_stats = json.loads((ref / "stats.json").read_text())
    assert stats["accounting"] == ref_stats["accounting"]
    words = next(o for o in stats["ops"] if o["label"] == "words_num_filter")
    assert words["distribution"]["histogram"]["counts"] and words["bounds"] == [10, 10000]
    r = client.get(f"/v1/jobs/{jid}/stats/words_num_filter/dropped", params={"limit": 5})
    assert r.status_code == 200
    d = r.json()
    assert d["dropped"] == words["dropped"] and 0 < len(d["examples"]) <= 5
    for ex in d["examples"]:
        assert ex["value"] < 10 and ex["reason"].startswith("num_words") and "< min 10" in ex["reason"]
    dedup = client.get(f"/v1/jobs/{jid}/stats/document_simhash_deduplicator/dropped").json()
    assert dedup["examples"] and all("near-duplicate of" in e["reason"] for e in dedup["examples"])
    assert client.get(f"/v1/jobs/{jid}/stats/no_such_op/dropped").status_code == 404
    html = client.get(f"/v1/jobs/{jid}/report")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in html.headers["content-security-policy"]
    assert html.text.count('class="histogram"') >= 8 and 'class="funnel"' in html.text
    assert "http://" not in html.text and "https://" not in html.text  # nothing to fetch: works offline


def test_events_stream_ends_with_the_final_state(server, text_job):
    job, _ = text_job
    events = list(SteelClient(server.url, TOKEN).events(job["id"], timeout=10))
    assert events[-1][0] == "end" and events[-1][1]["state"] == "succeeded"


def test_live_progress_and_events_of_a_running_job(client):
    jid = submit(client, inputs=["big"], output="out/live", shard_size=300, workers=1)
    seen = []
    with client.stream("GET", f"/v1/jobs/{jid}/events", timeout=120) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                seen.append((event, json.loads(line[5:])))
                if event == "end":
                    break
    assert seen[-1][0] == "end" and seen[-1][1]["state"] == "succeeded"
    states = [s["state"] for _, s in seen]
    assert "succeeded" in states
    fractions = [s["progress"]["fraction"] for _, s in seen if s.get("progress")]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_list_and_get(client, text_job):
    job, _ = text_job
    listed = client.get("/v1/jobs", params={"limit": 500}).json()
    assert job["id"] in [j["id"] for j in listed["jobs"]] and listed["total"] >= 1
    only = client.get("/v1/jobs", params={"state": "succeeded"}).json()["jobs"]
    assert all(j["state"] == "succeeded" for j in only)
    assert client.get("/v1/jobs/" + "0" * 32).status_code == 404
    assert client.get("/v1/jobs/not-an-id").status_code == 422


# -- refusals before any work -------------------------------------------------------------------------------------
def _post(client, **overrides):
    body = {"recipe": TEST_RECIPE, "inputs": ["input"], "output": "out/refused", **overrides}
    return client.post("/v1/jobs", json=body)


def test_recipe_errors_name_op_and_parameter(client):
    bad = {**TEST_RECIPE, "process": [{"text_length_filter": {"min_len": "ten"}}, {"no_such_mapper": {}},
                                      {"clean_links_mapper": {"bogus": 1}}]}
    r = _post(client, recipe=bad)
    assert r.status_code == 422
    errs = r.json()["detail"]
    by_op = {(e["op"], e["param"]) for e in errs}
    assert ("text_length_filter", "min_len") in by_op
    assert ("no_such_mapper", None) in by_op
    assert ("clean_links_mapper", "bogus") in by_op
    assert errs[0]["loc"][:4] == ["body", "recipe", "process", 0]
    # an unknown op in --set / --skip-op; dedup not last; a YAML recipe with an alias bomb
    assert _post(client, set={"nope_filter": {"x": 1}}).json()["detail"][0]["op"] == "nope_filter"
    wrong_order = {**TEST_RECIPE, "process": list(reversed(TEST_RECIPE["process"]))}
    r = _post(client, recipe=wrong_order)
    assert r.status_code == 422 and "last operator" in r.text
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nprocess: [*b]\n"
    r = _post(client, recipe=bomb)
    assert r.status_code == 422 and "aliases" in r.text
    r = _post(client, recipe="process:\n  - whitespace_normalization_mapper: {}\n")  # YAML text works
    assert r.status_code == 202
    wait_state(client, r.json()["id"])


def test_path_traversal_and_escapes_are_refused(client, server):
    for inputs in (["../etc/passwd"], ["/etc/passwd"], ["escape/passwd"], ["escape"], ["input/../../x"],
                   ["/etc/*"], ["input\x00x"]):
        r = _post(client, inputs=inputs)
        assert r.status_code == 422, (inputs, r.text)
        assert r.json()["detail"][0]["loc"][:2] == ["body", "inputs"]
    for output in ("../out", "/tmp/steel-evil", "escape/out", ".", str(server.root), ".steel-api/x", "input"):
        r = _post(client, output=output)
        assert r.status_code == 422, (output, r.text)
    # a symlink inside the root that stays inside is fine; model paths are confined like any path
    assert _post(client, inputs=["input-link"], output="out/link-ok").status_code == 202
    r = _post(client, set={"perplexity_filter": {"model_dir": "/etc"}},
              recipe={**TEST_RECIPE, "process": [{"perplexity_filter": {"lang": "zh"}}]})
    assert r.status_code == 422 and r.json()["detail"][0]["param"] == "model_dir"
    r = _post(client, recipe={**TEST_RECIPE, "tokenize": {"output": "/etc/x"}})
    assert r.status_code == 422 and r.json()["detail"][0]["param"] == "output"
    r = _post(client, recipe={**TEST_RECIPE, "tokenize": {"tokenizer": "../../tok.json"}})
    assert r.status_code == 422
    r = _post(client, text_template="{text.__class__}")
    assert r.status_code == 422
    r = _post(client, text_template="{text:>999999999}")
    assert r.status_code == 422


def test_malformed_requests(client, server):
    r = client.post("/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422)
    r = client.post("/v1/jobs", json={"recipe": TEST_RECIPE})
    assert r.status_code == 422
    r = client.post("/v1/jobs", json=[1, 2, 3])
    assert r.status_code == 422
    r = _post(client, shard_size=0)
    assert r.status_code == 422
    r = _post(client, unknown_field=1)
    assert r.status_code == 422
    big = b'{"recipe": "' + b"x" * (2 << 20) + b'"}'
    r = client.post("/v1/jobs", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    deep = b"[" * 100000 + b"]" * 100000
    r = client.post("/v1/jobs", content=deep, headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500
    # chunked upload without Content-Length is counted as it arrives
    def chunks():
        for _ in range(40):
            yield b"x" * 65536
    r = client.post("/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert client.get("/v1/jobs", params={"limit": 0}).status_code == 422
    assert client.put("/v1/jobs").status_code == 405
    assert client.get("/healthz").json()["status"] == "ok"


def test_auth(server):
    body = {"recipe": TEST_RECIPE, "inputs": ["input"], "output": "out/auth"}
    with server.client(token=None) as anon, server.client(token="wrong") as wrong:
        assert anon.post("/v1/jobs", json=body).status_code == 401
        assert wrong.post("/v1/jobs", json=body).status_code == 401
        r = anon.post("/v1/jobs/" + "0" * 32 + "/cancel")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert anon.get("/v1/jobs").status_code == 200  # reads are open unless STEEL_AUTH_READS=1
    spec = httpx.get(server.url + "/openapi.json").json()
    assert spec["paths"]["/v1/jobs"]["post"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in spec["paths"]["/v1/jobs"]["get"]


def test_concurrent_submissions(client, server):
    results: list = [None] * 6
    def go(i):
        with server.client() as c:
            results[i] = c.post("/v1/jobs", json={"recipe": TEST_RECIPE, "inputs": ["input"],
                                                  "output": f"out/concurrent-{i}", "name": f"c{i}"})
    threads = [threading.Thread(target=go, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [r.json()["id"] for r in results if r.status_code == 202]
    assert len(set(ids)) == 6
    finals = [wait_state(client, i, timeout=120) for i in ids]
    assert all(f["state"] == "succeeded" for f in finals), finals
    counts = {f["result"]["output_docs"] for f in finals}
    assert len(counts) == 1  # the same job six times: the same result


def test_two_jobs_cannot_share_an_output(client):
    first = submit(client, inputs=["big"], output="out/shared", shard_size=300)
    r = _post(client, output="out/shared/inner")
    assert r.status_code == 409
    wait_state(client, first, until=lambda j: (j.get("progress") or {}).get("shards_done", 0) >= 1)
    client.post(f"/v1/jobs/{first}/cancel")
    wait_state(client, first)
    # a folder holding a different job is refused; overwrite replaces it
    r = _post(client, output="out/shared", inputs=["input"])
    assert r.status_code == 409 and "different job" in r.text
    r = _post(client, output="out/shared", inputs=["input"], overwrite=True)
    assert r.status_code == 202
    assert wait_state(client, r.json()["id"])["state"] == "succeeded"


def test_ops_and_health(client):
    ops = client.get("/v1/ops").json()["ops"]
    names = {o["name"] for o in ops}
    assert {"text_length_filter", "document_simhash_deduplicator", "clean_html_mapper"} <= names
    tl = client.get("/v1/ops/text_length_filter").json()
    assert tl["kind"] == "filter" and "min_len" in tl["params_schema"]["properties"]
    assert client.get("/v1/ops/nope").status_code == 404
    h = client.get("/healthz").json()
    assert h["runner"] and h["database"] == "sqlite"


def test_cli_verbs(server, text_job, capsys):
    job, _ = text_job
    args = ["--url", server.url, "--token", TOKEN]
    assert steel_main(["status", *args]) == 0
    assert job["id"] in capsys.readouterr().out
    assert steel_main(["status", job["id"], *args]) == 0
    assert "words_num_filter" in capsys.readouterr().out
    assert steel_main(["stats", "--job", job["id"], *args]) == 0
    assert "balanced True" in capsys.readouterr().out
    assert steel_main(["submit", str(TEXT_RECIPE), "-i", "input", "-o", "out/cli", "--skip-op", "perplexity_filter",
                       "--wait", *args]) == 0
    assert steel_main(["stats", "--job", "0" * 32, *args]) == 2


@pytest.mark.corpus
def test_corpus_job_over_http_equals_steel_run(server, client, corpus, tmp_path):
    """The shared corpus (a second, read-only data root): the text recipe over Chinese Wikipedia over HTTP."""
    src = corpus / "steel" / "wiki_cn_wikipedia-cn-20230720-filtered_sample.json"
    jid = submit(client, recipe=TEXT_RECIPE.read_text(), inputs=[str(src)], output="out/corpus-wiki",
                 text_key="completion", skip_ops=["perplexity_filter"], shard_size=100, workers=2)
    ref = tmp_path / "ref"
    assert steel_main(["run", str(TEXT_RECIPE), "-i", str(src), "-o", str(ref), "--text-key", "completion",
                       "--skip-op", "perplexity_filter", "--shard-size", "100", "--no-progress"]) == 0
    job = wait_state(client, jid, timeout=120)
    assert job["state"] == "succeeded", job
    assert rows(server.root / "out" / "corpus-wiki") == rows(ref) and job["result"]["output_docs"] > 0
    stats = client.get(f"/v1/jobs/{jid}/stats").json()
    assert stats["accounting"] == json.loads((ref / "stats.json").read_text())["accounting"]
    dropped = [o for o in stats["ops"] if o["dropped"]]
    assert dropped
    for op in dropped:
        ex = client.get(f"/v1/jobs/{jid}/stats/{op['label']}/dropped").json()
        assert ex["dropped"] == op["dropped"] and ex["examples"]
    assert client.get(f"/v1/jobs/{jid}/report").status_code == 200
