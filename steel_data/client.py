"""A Python client for Steel's HTTP API (standard library only; what `steel submit/status/stats --job` use).

    c = SteelClient("http://127.0.0.1:8000", token="...")
    job = c.submit(recipe="recipes/steel-text.yaml", inputs=["corpus/zh"], output="out/zh")
    c.wait(job["id"])                       # or: for event, data in c.events(job["id"]): ...
    c.stats(job["id"]); c.dropped(job["id"], "words_num_filter")

The URL and token default to $STEEL_API_URL (else http://127.0.0.1:8000) and $STEEL_API_TOKEN.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, urlencode

import orjson
import yaml

DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL = ("succeeded", "failed", "cancelled")


class ApiError(RuntimeError):
    def __init__(self, status: int, detail: Any):
        self.status = status
        self.detail = detail
        super().__init__(f"HTTP {status}: {format_detail(detail)}")


def format_detail(detail: Any) -> str:
    if isinstance(detail, list):
        parts = []
        for d in detail:
            if isinstance(d, dict):
                loc = ".".join(str(x) for x in d.get("loc", []) if x != "body")
                parts.append(f"{loc}: {d.get('msg')}" if loc else str(d.get("msg")))
            else:
                parts.append(str(d))
        return "; ".join(parts)
    return str(detail)


class SteelClient:
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 60.0):
        self.url = (url or os.environ.get("STEEL_API_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("STEEL_API_TOKEN")
        self.timeout = timeout

    def _request(self, method: str, path: str, body: Any = None, query: dict | None = None,
                 raw: bool = False, timeout: float | None = None):
        url = self.url + path + ("?" + urlencode({k: v for k, v in query.items() if v is not None}) if query else "")
        data = orjson.dumps(body) if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        import urllib.error  # here, not at the top: every `steel` command imports this module for its verbs
        import urllib.request

        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            resp = urllib.request.urlopen(req, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            try:
                detail = orjson.loads(payload).get("detail", payload.decode(errors="replace"))
            except (orjson.JSONDecodeError, AttributeError):
                detail = payload.decode(errors="replace")
            raise ApiError(exc.code, detail) from None
        if raw:
            return resp
        with resp:
            return orjson.loads(resp.read())

    # -- jobs -----------------------------------------------------------------------------------------------------
    def submit(self, recipe: str | Path | dict, inputs: list[str], output: str, **options) -> dict:
        """Queue a job. `recipe`: a mapping, or a local YAML file (sent as data). Options as in JobRequest:
        name, text_key, text_template, set, skip_ops, shard_size, format, workers, overwrite."""
        if not isinstance(recipe, dict):
            recipe = yaml.safe_load(Path(recipe).read_text(encoding="utf-8"))
        body = {"recipe": recipe, "inputs": list(inputs), "output": output,
                **{k: v for k, v in options.items() if v is not None}}
        return self._request("POST", "/v1/jobs", body)

    def job(self, job_id: str) -> dict:
        return self._request("GET", f"/v1/jobs/{quote(job_id)}")

    def jobs(self, state: str | None = None, limit: int = 50, offset: int = 0) -> dict:
        return self._request("GET", "/v1/jobs", query={"state": state, "limit": limit, "offset": offset})

    def cancel(self, job_id: str) -> dict:
        return self._request("POST", f"/v1/jobs/{quote(job_id)}/cancel")

    def stats(self, job_id: str) -> dict:
        return self._request("GET", f"/v1/jobs/{quote(job_id)}/stats")

    def dropped(self, job_id: str, op: str, offset: int = 0, limit: int = 20) -> dict:
        return self._request("GET", f"/v1/jobs/{quote(job_id)}/stats/{quote(op, safe='')}/dropped",
                             query={"offset": offset, "limit": limit})

    def report(self, job_id: str) -> str:
        with self._request("GET", f"/v1/jobs/{quote(job_id)}/report", raw=True) as resp:
            return resp.read().decode()

    def events(self, job_id: str, timeout: float = 3600.0) -> Iterator[tuple[str, dict]]:
        """Server-sent events: ("progress", job) while the job changes, then ("end", job)."""
        with self._request("GET", f"/v1/jobs/{quote(job_id)}/events", raw=True, timeout=timeout) as resp:
            event, data = "message", []
            for line in resp:
                line = line.decode().rstrip("\r\n")
                if not line:
                    if data:
                        yield event, orjson.loads("\n".join(data))
                        if event == "end":
                            return
                    event, data = "message", []
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())

    def wait(self, job_id: str, timeout: float = 3600.0, poll: float = 0.5) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout} s")
            time.sleep(poll)

    # -- the rest -------------------------------------------------------------------------------------------------
    def ops(self) -> list[dict]:
        return self._request("GET", "/v1/ops")["ops"]

    def datasets(self) -> list[dict]:
        return self._request("GET", "/v1/datasets")["datasets"]

    def health(self) -> dict:
        return self._request("GET", "/healthz")
