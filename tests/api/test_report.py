"""The report page's HTML, in-process: escaping, bounds on the charts, degenerate histograms, a live job."""

from __future__ import annotations

from api import report


def op(label="text_length_filter", edges=(0.0, 50.0, 100.0), counts=(3, 7), bounds=(10, 80), **kw):
    return {"label": label, "name": label, "kind": "filter", "stat_key": "text_len", "bounds": list(bounds),
            "docs_in": 10, "docs_out": 6, "dropped": 4, "modified": 0, "seconds": 0.1,
            "distribution": {"count": sum(counts), "quantiles": {"0.5": 40.0},
                             "histogram": {"edges": list(edges), "counts": list(counts)}}, **kw}


def stats(*ops):
    return {"accounting": {"input_records": 10, "output_docs": 6, "dropped_by_op": {"x": 4}, "quarantined": 0,
                           "balanced": True}, "output_docs": 6, "ops": list(ops), "recipe": "r"}


JOB = {"id": "a" * 32, "name": "<script>alert(1)</script>", "state": "succeeded", "error": None,
       "output_display": "out/x"}


def test_bounds_are_drawn_and_data_is_escaped():
    html = report.render(JOB, stats(op()), {"text_length_filter": [
        {"id": "d#1", "value": 3, "text": "<img src=x onerror=alert(1)>"}]}, live=False)
    assert html.count('class="bound"') == 2 and 'data-bound="min"' in html and 'data-bound="max"' in html
    assert "<script>" not in html and "<img" not in html and "&lt;img" in html
    assert "text_len 3 &lt; min 10" in html
    assert "http" not in html  # nothing to fetch


def test_bounds_outside_the_data_and_degenerate_histograms():
    html = report.render(JOB, stats(op(bounds=(0, 1000)), op(label="flat", edges=(0.0, 0.0), counts=(9,),
                                                              bounds=(0, 0.4))), {}, live=False)
    assert "max bound 1,000 lies above every observed value" in html
    assert html.count('class="histogram"') == 2
    assert "all 9 values = 0" in html  # one bar, on a range that shows the bounds


def test_a_running_job_shows_progress_and_refreshes():
    job = {**JOB, "state": "running", "progress": {"shards_done": 1, "shards_total": 4, "records_done": 10,
                                                   "records_total": 40, "ops": [op()]}}
    html = report.render(job, None, {}, live=True)
    assert 'http-equiv="refresh"' in html and 'class="funnel"' in html and "live progress" in html
