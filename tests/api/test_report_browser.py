"""The report page in headless Chromium (Debian's chromium, driven by Playwright): it renders its charts with
the recipe's bounds drawn on them, fetches nothing but itself, and logs no errors."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="needs Debian's chromium (.ci/run installs it: apt-get install chromium)")


def test_report_renders_in_chromium(server, text_job, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    job, _ = text_job
    url = f"{server.url}/v1/jobs/{job['id']}/report"
    requests, problems = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            response = page.goto(url, wait_until="load")
            assert response.status == 200
            stats = server.client().get(f"/v1/jobs/{job['id']}/stats").json()
            with_hist = [o for o in stats["ops"] if (o.get("distribution") or {}).get("histogram")]
            assert page.locator("svg.histogram").count() == len(with_hist) >= 8
            # bounds inside the observed range are drawn as lines, e.g. words_num_filter's min of 10
            words = page.locator('svg.histogram[data-op="words_num_filter"]')
            assert words.locator('line.bound[data-bound="min"]').count() == 1
            assert page.locator("line.bound").count() >= 4
            # the charts are laid out for real: bars and the funnel have size
            box = page.locator("svg.funnel").bounding_box()
            assert box["width"] > 600 and box["height"] > 200
            bars = page.locator("svg.histogram rect.bar")
            assert bars.count() > 50 and bars.first.bounding_box()["width"] > 1
            assert page.locator("svg.funnel rect.dropped").count() >= 4
            assert page.locator("svg.clusters").count() == 1  # dedup cluster sizes
            assert page.locator(".audit").count() >= 1  # the sample trips the empty-fingerprint audit
            reasons = page.locator(".ex").all_inner_texts()  # dropped examples with the bound each broke
            assert any("num_words" in r and "< min 10" in r for r in reasons)
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert requests == [url]  # self-contained: no CDN, no second request
    assert not problems, problems
    assert (tmp_path / "report.png").stat().st_size > 10_000
