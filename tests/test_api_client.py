"""The one HTTP client of the API, on an injected transport: both calling styles over one request path."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from fadewatch.api_client import ApiClient, Reply
from fadewatch.errors import FadewatchError, NotFoundError, ServerError, Unauthorized, Unavailable
from fadewatch.protocol.limits import MAX_KEYS_PER_REQUEST


class Recorder:
    """A transport answering with ``answer(request)`` and keeping every request."""

    def __init__(self, answer):
        self.answer, self.requests = answer, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


def client(answer, **kw) -> tuple[ApiClient, Recorder]:
    rec = Recorder(answer)
    return ApiClient("http://server:8700/", kw.pop("token", "fw_t"), transport=httpx.MockTransport(rec), **kw), rec


def test_writes_go_under_the_api_with_token_and_gzip():
    api, rec = client(lambda r: httpx.Response(200, json={"stored": 2, "duplicates": 0}))
    reply = api.post_steps(7, [b'{"step":0}\n', b'{"step":1}'])
    assert reply == Reply(200, {"stored": 2, "duplicates": 0}) and reply.kind == "ok"
    req = rec.requests[0]
    assert req.url == "http://server:8700/api/v1/runs/7/steps"
    assert req.headers["authorization"] == "Bearer fw_t" and req.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(req.content)) == {"records": [{"step": 0}, {"step": 1}]}
    api.patch_run(7, "failed", "boom")
    assert json.loads(rec.requests[1].content) == {"status": "failed", "error": "boom"}
    assert rec.requests[1].method == "PATCH"


@pytest.mark.parametrize("status, headers, kind, delay", [
    (429, {"Retry-After": "7"}, "retry", 7.0),
    (503, {"Retry-After": "nan"}, "retry", None),
    (507, {"Retry-After": "-3"}, "retry", None),
    (500, {"Retry-After": "7"}, "retry", None),  # only 429, 503 and 507 ask for a wait
    (401, {}, "auth", None),
    (404, {}, "not_found", None),
    (413, {}, "too_large", None),
    (422, {}, "rejected", None),
])
def test_error_answers_become_a_reply_never_an_exception(status, headers, kind, delay):
    api, _ = client(lambda r: httpx.Response(status, headers=headers, json={"detail": "why\nnot"}))
    reply = api.create_run("p", "r")
    assert reply.kind == kind and reply.server_delay == delay
    assert reply.error == f"POST /runs: HTTP {status}: why not" and reply.detail == "why not"


@pytest.mark.parametrize("failure", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), RuntimeError("bug")])
def test_no_answer_is_a_retry_reply(failure):
    def fail(request):
        raise failure

    api, _ = client(fail)
    reply = api.post_steps(1, [b"{}"])
    assert reply.status is None and reply.kind == "retry" and str(failure) in reply.error
    with pytest.raises(Unavailable, match="http://server:8700 did not answer"):
        api.runs()


@pytest.mark.parametrize("status, error, text", [
    (401, Unauthorized, "needs an API token"),
    (403, ServerError, "read token"),
    (404, NotFoundError, "run 9 not found"),
    (422, ServerError, "query.limit: too big"),
    (502, Unavailable, "answered 502"),
])
def test_the_raising_style_maps_answers_to_the_one_hierarchy(status, error, text):
    details = {403: "a read token", 404: "run 9 not found", 502: "upstream",
               422: [{"loc": ["query", "limit"], "msg": "too big"}]}
    api, _ = client(lambda r: httpx.Response(status, json={"detail": details.get(status, "")}))
    with pytest.raises(error, match=text) as caught:
        api.run(9)
    assert isinstance(caught.value, FadewatchError) and caught.value.status_code == status


def test_a_non_json_error_says_its_status():
    api, _ = client(lambda r: httpx.Response(502, html="<html>proxy page</html>"))
    with pytest.raises(Unavailable, match="answered 502: 502 Bad Gateway"):
        api.run(1)
    api, _ = client(lambda r: httpx.Response(400, text="bad gzip data"))
    assert api.create_run("p", "r").detail == "bad gzip data"


def test_reads_drop_unset_params_and_decode_the_answer():
    api, rec = client(lambda r: httpx.Response(200, json={"alerts": [{"id": 1}]}))
    assert api.alerts(run_id=3, state=["firing", "resolved"], severity=None) == [{"id": 1}]
    assert str(rec.requests[0].url) == "http://server:8700/api/v1/alerts?run_id=3&state=firing&state=resolved"
    api, _ = client(lambda r: httpx.Response(204))
    assert api.request("DELETE", "/projects/p/rules/x") is None


def test_series_asks_in_chunks_the_server_accepts_and_merges_them():
    def answer(request):
        keys = request.url.params["keys"].split(",")
        assert len(keys) <= MAX_KEYS_PER_REQUEST
        return httpx.Response(200, json={"downsampled": keys[0] == "k100", "last_step": 9,
                                         "series": {k: {"steps": [9]} for k in keys}})

    api, rec = client(answer)
    keys = [f"k{i}" for i in range(MAX_KEYS_PER_REQUEST * 2 + 5)]
    out = api.series(1, keys + keys[:3], max_points=50)
    assert len(rec.requests) == 3 and list(out["series"]) == keys
    assert out["downsampled"] is True and out["last_step"] == 9
    assert rec.requests[0].url.params["max_points"] == "50" and "min_step" not in rec.requests[0].url.params


def test_readyz_is_outside_the_api_prefix():
    api, rec = client(lambda r: httpx.Response(200, json={"status": "ready", "database": "ok"}))
    assert api.readyz().body == {"status": "ready", "database": "ok"}
    assert rec.requests[0].url.path == "/readyz"
