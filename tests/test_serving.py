"""The HTTP server as users run it: ``textsift serve`` in a real process on a free loopback port, talked to over HTTP.

One server with 2 workers and an API key answers most tests (predictions, every limit and status code, metrics
summed across workers, schemathesis over its OpenAPI schema, the page in headless Chromium); a second one, with a
long max wait and a small queue, is shut down with SIGTERM under load.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from conftest import TINY, tiny_config, write_jsonl

KEY = "test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAX_LENGTH = 64  # the tokenizer's maximum: longer texts are cut (or refused with truncate: false)


def train_tiny_model(directory: Path) -> Path:
    """A bag model on the 16 tiny texts whose tokenizer keeps at most MAX_LENGTH ids per text."""
    import textsift

    data = write_jsonl(directory / "tiny.jsonl", [{"text": t, "label": l} for t, l in TINY])
    raw = tiny_config(data, tokenizer={"type": "hashed_ngrams", "max_length": MAX_LENGTH})
    raw["trainer"]["optimizer"] = {"lr": 0.3}
    result = textsift.train(raw, directory / "run")
    assert result.metrics["val/accuracy"] == 1.0
    return result.model_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``textsift serve MODEL --port P ARGS`` in a subprocess, its output in a log file."""

    def __init__(self, model_dir: Path, log: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "textsift", "serve", str(model_dir), "--port", str(self.port), "--no-access-log", *args],
            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, workers: int = 1, timeout: float = 90) -> None:
        """Until /metrics counts ``workers`` ready workers (each loaded and warmed up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited with {self.process.returncode}:\n{self.output()}")
            try:
                ready = httpx.get(f"{self.url}/ready", timeout=2)
                if ready.status_code == 200 and ready_workers(self.url) >= workers:
                    return
                if ready.status_code == 503 and ready.json()["status"] == "failed":
                    pytest.fail(f"the model failed to load: {ready.json()['detail']}\n{self.output()}")
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"the server was not ready within {timeout} s:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def metric_samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed by Prometheus' own text parser: (name, labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", headers=AUTH, timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(text) for s in family.samples}


def ready_workers(url: str) -> float:
    return metric_samples(url).get(("textsift_ready", ()), 0.0)


def predict_ok(url: str, texts: list[str], **options: object) -> dict:
    response = httpx.post(f"{url}/predict", json={"texts": texts, **options}, headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return train_tiny_model(tmp_path_factory.mktemp("serve_model"))


@pytest.fixture(scope="module")
def predictor(model_dir):
    import textsift

    return textsift.load(model_dir, runtime="torch")


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    directory = tmp_path_factory.mktemp("server")
    key_file = directory / "key.txt"
    key_file.write_text(KEY + "\n")
    srv = Server(model_dir, directory / "server.log", "--workers", "2", "--api-key-file", str(key_file), "--max-wait-ms", "10",
                 "--max-request-texts", "32", "--max-body-bytes", "20000", "--max-batch-size", "16")
    try:
        srv.wait_ready(workers=2)
        yield srv
    finally:
        srv.stop()


TEXTS = [t for t, _ in TINY] + ["a happy film", "a sad story", "great", "dull and boring", "what a lovely day"]


def test_predictions_match_the_predictor_for_concurrent_requests(server, predictor):
    rng = np.random.default_rng(0)
    requests = [[TEXTS[i] for i in rng.choice(len(TEXTS), size=rng.integers(1, 12))] for _ in range(30)]
    with ThreadPoolExecutor(16) as pool:  # concurrent: the batcher mixes them into shared forward passes
        answers = list(pool.map(lambda texts: predict_ok(server.url, texts), requests))
    for texts, answer in zip(requests, answers):
        expected = predictor.predict(texts)
        assert answer["label_names"] == expected.label_names
        assert [p["label"] for p in answer["predictions"]] == expected.labels  # its own rows, in its order
        got = np.array([[p["probabilities"][n] for n in expected.label_names] for p in answer["predictions"]])
        np.testing.assert_allclose(got, expected.probabilities, atol=1e-5)
    assert {p["label"] for t, l in TINY for p in predict_ok(server.url, [t])["predictions"]} == {"pos", "neg"}
    assert [p["label"] for p in predict_ok(server.url, [t for t, _ in TINY])["predictions"]] == [l for _, l in TINY]  # it learned

    one = predict_ok(server.url, ["a happy film", "an awful film"], top_k=1, raw_scores=True)["predictions"]
    expected = predictor.predict(["a happy film", "an awful film"])
    from textsift.data.loading import examples_from_texts

    logits = predictor.logits(examples_from_texts(["a happy film", "an awful film"]))
    for i, p in enumerate(one):
        assert p["top_k"] == [{"label": expected.labels[i], "probability": pytest.approx(float(expected.probabilities[i].max()), abs=1e-5)}]
        assert p["raw_scores"] == {n: pytest.approx(float(v), abs=1e-4) for n, v in zip(expected.label_names, logits[i])}
        assert "probabilities" not in p and p["truncated"] is False


def test_every_limit_gives_its_status_code_never_a_500(server):
    url = server.url
    post = lambda body, headers=AUTH, **kw: httpx.post(f"{url}/predict", content=body, headers=headers, timeout=30, **kw)  # noqa: E731
    # auth: every route but /health, /ready (and the page) needs the key; compared as a whole
    for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789"}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}):
        r = post(json.dumps({"texts": ["a"]}), headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text
    for path in ("/model", "/metrics", "/docs", "/openapi.json"):
        assert httpx.get(f"{url}{path}").status_code == 401
        assert httpx.get(f"{url}{path}", headers=AUTH).status_code == 200
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{url}/ready").json() == {"status": "ready"}
    # 413: too many texts, too large a body (declared, or streamed without a length)
    r = post(json.dumps({"texts": ["a text"] * 33}))
    assert r.status_code == 413 and "at most 32" in r.json()["detail"]
    r = post(json.dumps({"texts": ["x" * 30_000]}))
    assert r.status_code == 413 and "20000 bytes" in r.json()["detail"]
    r = post(iter([b'{"texts": ["', b"y" * 15_000, b"y" * 15_000, b'"]}']))  # chunked: no Content-Length
    assert r.status_code == 413
    # 422 names the field
    cases = {
        '{"texts": ["a"': ("json_invalid", None),
        '{"texts": [1, "b"]}': ("string_type", ["body", "texts", 0]),
        '{"texts": "one text"}': ("list_type", ["body", "texts"]),
        '{"text": ["a"]}': ("missing", ["body", "texts"]),
        '{"texts": ["a"], "topk": 2}': ("extra_forbidden", ["body", "topk"]),
        '{"texts": []}': ("too_short", ["body", "texts"]),
        '{"texts": ["a"], "top_k": 0}': ("greater_than_equal", ["body", "top_k"]),
        '{"texts": ["a"], "top_k": "2"}': ("int_type", ["body", "top_k"]),
        '{"texts": ["a"], "truncate": "no"}': ("bool_type", ["body", "truncate"]),
        '["a"]': ("model_type", ["body"]),
        '{"texts": ["fine", "  "]}': ("value_error", ["body", "texts", 1]),
        '{"texts": ["a"], "pairs": ["b"]}': ("value_error", ["body", "pairs"]),
    }
    for body, (kind, loc) in cases.items():
        r = post(body, {**AUTH, "content-type": "application/json"})
        assert r.status_code == 422, (body, r.text)
        error = r.json()["detail"][0]
        assert error["type"] == kind, (body, error)
        if loc is not None:
            assert error["loc"] == loc, (body, error)
        assert body not in json.dumps(r.json()) or len(body) < 5  # the input is not echoed back
    # a body sent without a JSON content type is still read as JSON (curl -d)
    assert post('{"texts": ["a happy film"]}', {**AUTH, "content-type": "application/x-www-form-urlencoded"}).status_code == 200
    # too long a text: cut (and flagged), or refused with truncate: false
    long_text = "what a happy day " * 40  # 160 words: over MAX_LENGTH ids
    answer = predict_ok(url, ["a sad story", long_text])
    assert [p["truncated"] for p in answer["predictions"]] == [False, True]
    r = post(json.dumps({"texts": ["a sad story", long_text], "truncate": False}))
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "texts", 1] and f"maximum of {MAX_LENGTH}" in r.json()["detail"][0]["msg"]
    exact = " ".join(["happy"] * 10)
    assert predict_ok(url, [exact], truncate=False)["predictions"][0]["truncated"] is False
    # routes and methods that do not exist
    assert httpx.get(f"{url}/predict", headers=AUTH).status_code == 405
    assert httpx.get(f"{url}/nothing-here", headers=AUTH).status_code == 404


def test_model_route_describes_the_model(server, model_dir):
    info = httpx.get(f"{server.url}/model", headers=AUTH).json()
    assert info["labels"] == ["neg", "pos"] and info["task"] == "single_label" and info["pairs"] is False
    assert info["model_type"] == "bag" and info["runtime"] == "torch"
    assert info["tokenizer"] == {"type": "hashed_ngrams", "max_length": MAX_LENGTH}
    assert info["metrics"]["val/accuracy"] == 1.0
    assert info["limits"]["max_request_texts"] == 32
    assert info["card"] == (model_dir / "README.md").read_text()


def test_metrics_parse_and_add_up_across_workers(server):
    before = metric_samples(server.url)
    assert before[("textsift_ready", ())] == 2.0  # both workers' gauges, summed
    key = ("textsift_requests_total", (("method", "POST"), ("route", "/predict"), ("status", "200")))
    with ThreadPoolExecutor(8) as pool:  # fresh connections: the requests spread over both workers
        list(pool.map(lambda i: predict_ok(server.url, ["a happy film"] * (1 + i % 3)), range(20)))
    httpx.get(f"{server.url}/no-such-route", headers=AUTH)
    after = metric_samples(server.url)
    assert after[key] - before.get(key, 0.0) == 20
    texts = ("textsift_predicted_texts_total", ())
    assert after[texts] - before.get(texts, 0.0) == sum(1 + i % 3 for i in range(20))
    assert after[("textsift_batch_size_count", ())] > before.get(("textsift_batch_size_count", ()), 0.0)
    assert after[("textsift_request_duration_seconds_count", (("route", "/predict"),))] >= 20
    assert after[("textsift_queue_depth", ())] == 0.0
    assert after[("textsift_requests_total", (("method", "GET"), ("route", "other"), ("status", "404")))] >= 1


def test_schemathesis_finds_no_server_error(server):
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", headers=AUTH)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {"POST /predict", "GET /health", "GET /ready", "GET /model", "GET /metrics"}
    client = httpx.Client(base_url=server.url, headers=AUTH, timeout=30)
    seen: dict[int, int] = {}
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if op.path == "/predict" else (GenerationMode.POSITIVE,):
            examples = 40 if op.path == "/predict" else 3

            @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(generation_mode=mode))
            def check(case) -> None:
                kwargs = case.as_transport_kwargs(base_url=server.url)
                response = client.request(kwargs["method"], kwargs["url"], json=kwargs.get("json"), content=kwargs.get("data"),
                                           params=kwargs.get("params"))
                seen[response.status_code] = seen.get(response.status_code, 0) + 1
                assert response.status_code < 500, (kwargs, response.text)

            check()
    assert 200 in seen and 422 in seen, seen  # valid and invalid bodies were both sent


def test_page_predicts_in_headless_chromium_with_the_api_key(server, predictor, tmp_path):
    from playwright.sync_api import sync_playwright

    from browser import FLAGS, ensure_chromium

    try:
        chromium = ensure_chromium()
    except RuntimeError as exc:
        pytest.fail(str(exc))  # a missing browser is a failure, never a skip
    assert "Authorization" not in httpx.get(server.url + "/").text.split("<script>")[0]  # the page holds no key
    csv_file = tmp_path / "texts.csv"
    csv_file.write_text('id,text\n1,"a happy, lovely film"\n2,an awful depressing movie\n3,"she said ""great"""\n')
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=FLAGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.goto(server.url + "/", wait_until="load")
            assert "needs an API key" in page.inner_text("#model")
            page.fill("#texts", "i love this great film")
            page.click("#predict")  # without the key: nothing predicted, the page says why
            page.wait_for_function("document.getElementById('status').textContent.includes('API key')")
            assert page.is_hidden("#results")
            no_key = page.evaluate("""async () => (await fetch('/predict', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                                   body: JSON.stringify({texts: ['i love this great film']})})).status""")
            assert no_key == 401  # the page loads without the key; the API behind it does not answer without it
            page.fill("#key", "wrong-key-0123456789")
            page.dispatch_event("#key", "change")
            page.wait_for_function("document.getElementById('model').textContent.includes('401')")
            assert all("401" in p for p in problems), problems  # the browser logs the refused calls, and only them
            problems.clear()
            page.fill("#key", KEY)
            page.dispatch_event("#key", "change")
            page.wait_for_function("document.getElementById('model').textContent.includes('2 labels')")
            page.fill("#texts", "i love this great film\nan awful depressing movie")
            page.click("#predict")
            page.wait_for_selector("#results tbody tr:nth-child(2)")
            chosen = page.eval_on_selector_all("#results tbody tr", "rows => rows.map(r => r.querySelector('.bar.chosen').dataset.label)")
            assert chosen == predictor.predict(["i love this great film", "an awful depressing movie"]).labels
            widths = page.eval_on_selector_all("#results tbody tr:first-child .fill", "bars => bars.map(b => parseFloat(b.style.width))")
            assert len(widths) == 2 and sum(widths) == pytest.approx(100, abs=0.5)  # every label's bar, summing to 100%
            page.set_input_files("#csv", str(csv_file))
            page.wait_for_function("document.getElementById('status').textContent.includes('3 texts predicted')")
            cells = page.eval_on_selector_all("#results tbody tr td:nth-child(2)", "cells => cells.map(c => c.textContent)")
            assert cells == ["a happy, lovely film", "an awful depressing movie", 'she said "great"']
        finally:
            browser.close()
    assert problems == []


@pytest.fixture
def slow_server(model_dir, tmp_path):
    """Requests wait up to 3 s for company: long enough to catch them in flight; at most 40 texts queued."""
    srv = Server(model_dir, tmp_path / "server.log", "--max-wait-ms", "3000", "--max-queue", "40", "--max-batch-size", "64")
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def test_disconnect_queue_full_and_sigterm_under_load_lose_nothing(slow_server, predictor):
    url = slow_server.url
    plain = lambda: metric_samples(url)  # noqa: E731 (no key on this server: the header is ignored)
    # a client that gives up: its texts are dropped before they run, and the batcher goes on
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/predict", json={"texts": ["a happy film"] * 3}, timeout=0.5)
    deadline = time.monotonic() + 10
    while plain().get(("textsift_dropped_texts_total", ()), 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert plain()[("textsift_dropped_texts_total", ())] == 3
    assert plain().get(("textsift_predicted_texts_total", ()), 0) == 0  # nothing of it ran
    # 10 requests of 4 texts fill the queue (40); the 11th is refused with 429, not stored
    requests = [[TEXTS[(i + j) % len(TEXTS)] for j in range(4)] for i in range(10)]
    answers: list[httpx.Response | Exception] = [None] * 10  # type: ignore[list-item]

    def send(i: int) -> None:
        try:
            answers[i] = httpx.post(f"{url}/predict", json={"texts": requests[i]}, timeout=60)
        except Exception as exc:  # noqa: BLE001 - a failed request is the finding
            answers[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while plain().get(("textsift_queue_depth", ()), 0) < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert plain()[("textsift_queue_depth", ())] == 40
    full = httpx.post(f"{url}/predict", json={"texts": ["one more"]}, timeout=10)
    assert full.status_code == 429 and full.headers["retry-after"] == "1"
    # SIGTERM with 40 texts in flight: it stops accepting, answers all of them, then exits
    slow_server.process.send_signal(signal.SIGTERM)
    refused, deadline = False, time.monotonic() + 5
    while not refused and time.monotonic() < deadline:  # it stops accepting new connections
        try:
            httpx.get(f"{url}/health", timeout=2)
            time.sleep(0.05)
        except httpx.TransportError:
            refused = True
    assert refused
    assert not any(answers), "the requests in flight were answered before the server had even stopped accepting"
    for t in threads:
        t.join(60)
    assert slow_server.process.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    for texts, answer in zip(requests, answers):
        assert isinstance(answer, httpx.Response) and answer.status_code == 200, answer
        assert [p["label"] for p in answer.json()["predictions"]] == predictor.predict(texts).labels
    assert "Finished server process" in slow_server.output()


def test_serve_refuses_a_bad_model_dir_or_key_file_in_one_line(tmp_path, model_dir):
    from typer.testing import CliRunner

    from textsift.cli.app import app
    from textsift.cli import commands  # noqa: F401

    runner = CliRunner()
    r = runner.invoke(app, ["serve", str(tmp_path / "missing")])
    assert r.exit_code == 1 and "error:" in r.output and "missing" in r.output
    r = runner.invoke(app, ["serve", str(model_dir), "--runtime", "onnx"])
    assert r.exit_code == 1 and "textsift export" in r.output
    empty = tmp_path / "key.txt"
    empty.write_text("\n")
    r = runner.invoke(app, ["serve", str(model_dir), "--api-key-file", str(empty)])
    assert r.exit_code == 1 and "is empty" in r.output
    r = runner.invoke(app, ["serve", str(model_dir), "--workers", "2", "--ray"])
    assert r.exit_code == 1 and "--replicas" in r.output


def test_only_loopback_counts_as_private():
    from textsift.cli.serve_cmd import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.4", "example.org"))


def test_cors_is_off_unless_an_origin_is_allowed(model_dir, predictor):
    from starlette.testclient import TestClient

    from textsift.serving.app import ServeSettings, create_app

    preflight = {"Origin": "http://app.example", "Access-Control-Request-Method": "POST"}
    for origins, allowed in (((), None), (("http://app.example",), "http://app.example")):
        app = create_app(ServeSettings(model_dir=model_dir, cors_origins=origins), predictor=predictor)
        with TestClient(app) as client:
            deadline = time.monotonic() + 30
            while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.05)
            r = client.post("/predict", json={"texts": ["a happy film"]}, headers={"Origin": "http://app.example"})
            assert r.status_code == 200 and r.headers.get("access-control-allow-origin") == allowed
            r = client.options("/predict", headers=preflight)
            assert r.headers.get("access-control-allow-origin") == allowed
            r = client.post("/predict", json={"texts": ["a"]}, headers={"Origin": "http://evil.example"})
            assert r.headers.get("access-control-allow-origin") is None


class _StubPredictor:
    """What check_request and render read of a Predictor: a pair model, or a multilabel one."""

    def __init__(self, pairs: bool = False, multilabel: bool = False) -> None:
        self.pairs, self.multilabel = pairs, multilabel
        self.label_names = ["a", "b", "c"]

    def probabilities(self, logits):
        return 1 / (1 + np.exp(-logits))

    def decide(self, probs):
        return [[n for n, p in zip(self.label_names, row) if p >= 0.5] for row in probs]


def test_pair_requests_need_one_second_text_per_text():
    from textsift.serving.app import RequestError, check_request
    from textsift.serving.schema import PredictRequest

    pair = _StubPredictor(pairs=True)
    cases = [
        ({"texts": ["q"]}, ["pairs"], "classifies text pairs"),
        ({"texts": ["q", "r"], "pairs": ["s"]}, ["pairs"], "1 pairs for 2 texts"),
        ({"texts": ["q", "r"], "pairs": ["s", " "]}, ["pairs", 1], r"pairs\[1\] is empty"),
    ]
    for body, loc, message in cases:
        with pytest.raises(RequestError, match=message) as caught:
            check_request(pair, PredictRequest(**body), 10)
        assert caught.value.status == 422 and caught.value.body()["detail"][0]["loc"] == ["body", *loc]
    examples = check_request(pair, PredictRequest(texts=["q", "r"], pairs=["s", "t"]), 10)
    assert [(e.text, e.text_pair, e.row) for e in examples] == [("q", "s", 1), ("r", "t", 2)]


def test_multilabel_predictions_give_label_sets():
    from textsift.serving.app import render
    from textsift.serving.schema import PredictRequest, PredictResponse

    logits = np.array([[2.0, -2.0, 1.0], [-3.0, -3.0, -3.0]], np.float32)
    out = render(_StubPredictor(multilabel=True), logits, [False, True], PredictRequest(texts=["x", "y"], top_k=2))
    assert out["multilabel"] is True
    assert [p["labels"] for p in out["predictions"]] == [["a", "c"], []]
    assert [q["label"] for q in out["predictions"][0]["top_k"]] == ["a", "c"]
    assert out["predictions"][1]["truncated"] is True
    PredictResponse.model_validate(out)  # the documented response schema


def test_serving_on_onnx_imports_no_torch_and_no_training(model_dir, tmp_path):
    """The server is an inference layer: on the onnx runtime it imports neither torch nor training, tuning or workflow."""
    import shutil

    from textsift.inference.export import export_model_dir

    exported = tmp_path / "model"
    shutil.copytree(model_dir, exported)
    export_model_dir(exported, format="onnx")
    script = f"""
import sys, time
from starlette.testclient import TestClient
from textsift.serving.app import ServeSettings, create_app
with TestClient(create_app(ServeSettings(model_dir={str(exported)!r}, runtime="onnx"))) as client:
    while client.get("/ready").status_code != 200:
        time.sleep(0.02)
    answer = client.post("/predict", json={{"texts": ["i love this great film", "an awful depressing movie"]}}).json()
print([p["label"] for p in answer["predictions"]], client.get("/model").json()["runtime"])
print(sorted({{m.split(".")[0] if m.startswith("torch") else m for m in sys.modules
              if m.split(".")[0] == "torch" or m.startswith(("textsift.training", "textsift.tuning", "textsift.workflow"))}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    labels, modules = out.stdout.strip().splitlines()
    assert labels == "['pos', 'neg'] onnx"
    assert modules == "[]"


def test_a_server_worker_sets_the_gil_switch_interval_it_is_given(model_dir, monkeypatch):
    from textsift.serving.app import SETTINGS_ENV, ServeSettings, app_from_environment

    before = sys.getswitchinterval()
    try:
        for given, expected in ((0.5, 0.0005), (2.0, 0.002), (None, before)):
            sys.setswitchinterval(before)
            monkeypatch.setenv(SETTINGS_ENV, ServeSettings(model_dir=model_dir, gil_switch_ms=given).model_dump_json())
            app_from_environment()  # builds the app (the model loads only when it starts serving)
            assert sys.getswitchinterval() == pytest.approx(expected)
    finally:
        sys.setswitchinterval(before)
