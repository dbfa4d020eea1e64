"""The samples fast path (`api.routers.datasets.SamplesFastPath`) against the FastAPI route it stands in for: two
real servers on one data root, one with the fast path and one without (STEEL_FAST_SAMPLES=0), must answer every
request alike (status, body, headers), whether the fast path serves it or hands it on."""

from __future__ import annotations

import httpx
import pytest

from api.routers.datasets import SAMPLES_QUERY, parse_samples_query

from tests.api.conftest import TOKEN, Server, server_env

MAX_BYTES = 32 * 32 * 4  # STEEL_MAX_SAMPLES_BYTES of both servers: 32 samples of the tiny set's 32 tokens


@pytest.fixture(scope="module")
def pair(api_root):
    """(fast, reference) servers, reads needing the token, small response limit."""
    env = dict(STEEL_AUTH_READS="1", STEEL_MAX_SAMPLES_BYTES=str(MAX_BYTES))
    fast = Server(api_root, server_env(api_root, **env)).start()
    ref = Server(api_root, server_env(api_root, STEEL_FAST_SAMPLES="0", **env)).start()
    yield fast, ref
    fast.stop()
    ref.stop()


AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUERIES = [
    # plain and valid: the fast path serves these
    "count=16&seed=7&epoch=2&start=100", "seed=7&start=3&count=10&stride=5", "count=1", "count=32&start=0",
    "start=0&count=1&seed=9223372036854775807&epoch=2147483648",
    # refused by bounds, size or the epoch's end
    "count=0", "count=65537", "count=33", "seed=-1&count=2", "count=2&stride=0", "count=2&stride=1048577",
    "count=2&epoch=2147483649", "count=2&seed=9223372036854775808", "start=99999999&count=1", "", "seed=1",
    # unusual spellings: handed on to the route, which decides
    "count=016", "count=%31%36", "count=+16", "count=16&count=8", "count=16&extra=1", "count=%2016",
    "count=16&seed", "count=16&", "&count=16", "count=1e1", "count=16.0", "COUNT=16", "count=abc",
    "count=99999999999999999999999", "count=16&seed=%00",
]


def _answer(client: httpx.Client, method: str, url: str, headers: dict) -> tuple:
    r = client.request(method, url, headers=headers)
    base = str(client.base_url).rstrip("/")  # a redirect names its own server
    kept = {k: v.replace(base, "BASE") for k, v in r.headers.items() if k not in ("date", "server")}
    return r.status_code, kept, r.content


def _both(pair, method: str, url: str, headers: dict) -> tuple:
    fast, ref = pair
    with httpx.Client(base_url=fast.url, timeout=30) as a, httpx.Client(base_url=ref.url, timeout=30) as b:
        one, other = _answer(a, method, url, headers), _answer(b, method, url, headers)
    assert one == other, (method, url, headers, one[:2], other[:2])
    return one


def test_every_query_is_answered_as_the_route_answers(pair):
    statuses = {q: _both(pair, "GET", f"/v1/datasets/tiny/samples?{q}", AUTH)[0] for q in QUERIES}
    assert statuses["count=16&seed=7&epoch=2&start=100"] == 200 and statuses["count=33"] == 413
    assert statuses["start=99999999&count=1"] == 416 and statuses["count=0"] == 422
    assert sum(s == 200 for s in statuses.values()) >= 8  # the plain ones, and spellings the route accepts


@pytest.mark.parametrize("headers,status", [
    ({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": f"Basic {TOKEN}"}, 401),
    ({"Authorization": f"bearer {TOKEN}"}, 200), ({"Authorization": f"Bearer  {TOKEN}"}, 200), (AUTH, 200),
    ({"Authorization": f"BEARER {TOKEN}"}, 200), ({"Authorization": "Bearer"}, 401), ({"Authorization": TOKEN}, 401),
    ({"Authorization": f"Bearer {TOKEN}x"}, 401),
])
def test_auth_is_decided_alike(pair, headers, status):
    assert _both(pair, "GET", "/v1/datasets/tiny/samples?count=4&start=7", headers)[0] == status


@pytest.mark.parametrize("method,path", [
    ("GET", "/v1/datasets/nope/samples?count=1"), ("GET", "/v1/datasets/tiny/samples/?count=1"),
    ("GET", "/v1/datasets/ti%6Ey/samples?count=3"), ("GET", "/v1/datasets/..%2Ftiny/samples?count=1"),
    ("HEAD", "/v1/datasets/tiny/samples?count=1"), ("POST", "/v1/datasets/tiny/samples?count=1"),
])
def test_other_paths_and_methods_alike(pair, method, path):
    _both(pair, method, path, AUTH)


def test_a_request_with_a_body_is_handed_on(pair):
    fast, ref = pair
    answers = []
    for srv in pair:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            r = c.request("GET", "/v1/datasets/tiny/samples?count=2", headers=AUTH, content=b"x" * 10)
            answers.append((r.status_code, r.content))
    assert answers[0] == answers[1]


def test_plain_queries_are_taken_and_others_handed_on():
    """What the fast path serves itself (the rest goes to the route): the parse is exact, never lenient."""
    assert parse_samples_query(b"count=16&seed=7&epoch=2&start=100") == \
        {"count": 16, "seed": 7, "epoch": 2, "start": 100, "stride": 1}
    assert parse_samples_query(b"stride=8&count=1") == {"count": 1, "seed": 0, "epoch": 0, "start": 0, "stride": 8}
    top = {k: hi for k, (lo, hi, _) in SAMPLES_QUERY.items()}
    assert parse_samples_query("&".join(f"{k}={v}" for k, v in top.items()).encode()) == top
    for q in ["count=0", "count=65537", "seed=-1&count=2", "count=2&stride=0", "count=2&epoch=2147483649",
              "count=2&seed=9223372036854775808", "", "seed=1", "count=016", "count=%31%36", "count=+16",
              "count=16&count=8", "count=16&extra=1", "count=%2016", "count=16&seed", "count=16&", "&count=16",
              "count=1e1", "count=16.0", "COUNT=16", "count=abc", "count=\u0661"]:
        assert parse_samples_query(q.encode()) is None, q
