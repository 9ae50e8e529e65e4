"""Scale-out on a local Ray with 2 CPUs: ``textsift serve --ray`` as users start it, the Ray Serve deployment, and
``predict --ray`` over Ray Data (rows in order).

The command runs first, in its own process with a Ray of its own (no --ray-address, no RAY_ADDRESS), stopped by SIGTERM
before the module's Ray starts (one start for the other tests: it is slow); the Serve test shuts Serve down before
predict --ray takes both CPUs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from test_serving import KEY, TEXTS, free_port, train_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return train_tiny_model(tmp_path_factory.mktemp("ray_model"))


def test_serve_ray_command_starts_answers_and_stops_on_sigterm(model_dir, tmp_path):
    """``textsift serve --ray``: a local Ray of 2 CPUs, one replica; answers a prediction like the Predictor, refuses a
    call without the key, and exits by itself on SIGTERM (Serve and Ray shut down), all in bounded time."""
    import textsift

    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY)
    port = free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a Ray of its own, whatever else runs here
    env["OMP_NUM_THREADS"] = "1"
    process = subprocess.Popen(
        [sys.executable, "-m", "textsift", "serve", str(model_dir), "--ray", "--port", str(port),
         "--api-key-file", str(key_file), "--max-wait-ms", "2", "--num-threads", "1"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {KEY}"}
    try:
        deadline, answer = time.monotonic() + 150, None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"textsift serve --ray exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                answer = httpx.post(f"{url}/predict", json={"texts": TEXTS[:5]}, headers=auth, timeout=30)
                if answer.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        assert answer is not None and answer.status_code == 200, (answer and answer.text, log.read_text(errors="replace")[-3000:])
        expected = textsift.load(model_dir, runtime="torch").predict(TEXTS[:5])
        assert [p["label"] for p in answer.json()["predictions"]] == expected.labels
        got = np.array([[p["probabilities"][n] for n in expected.label_names] for p in answer.json()["predictions"]])
        np.testing.assert_allclose(got, expected.probabilities, atol=1e-5)
        assert httpx.post(f"{url}/predict", json={"texts": ["a"]}, timeout=30).status_code == 401
        process.terminate()
        assert process.wait(60) == 0, log.read_text(errors="replace")[-3000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # the command and the Ray processes it started
            process.wait()


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_ray_serve_deployment_batches_and_answers_like_the_server(local_ray, model_dir, tmp_path):
    from ray import serve

    import textsift
    from textsift.serving.app import ServeSettings
    from textsift.serving.ray import deployment

    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY)
    port = free_port()
    settings = ServeSettings(model_dir=model_dir, max_batch_size=8, max_wait_ms=20, max_request_texts=16, api_key_file=key_file)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(deployment(settings, replicas=1, num_cpus=0.5), name="textsift", route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {KEY}"}
        rng = np.random.default_rng(1)
        requests = [[TEXTS[i] for i in rng.choice(len(TEXTS), size=rng.integers(1, 14))] for _ in range(12)]
        with ThreadPoolExecutor(6) as pool:  # concurrent calls: @serve.batch puts them together (requests over 8 texts in parts)
            answers = list(pool.map(lambda t: httpx.post(f"{url}/predict", json={"texts": t}, headers=auth, timeout=60), requests))
        predictor = textsift.load(model_dir, runtime="torch")
        for texts, answer in zip(requests, answers):
            assert answer.status_code == 200, answer.text
            expected = predictor.predict(texts)
            assert [p["label"] for p in answer.json()["predictions"]] == expected.labels
            got = np.array([[p["probabilities"][n] for n in expected.label_names] for p in answer.json()["predictions"]])
            np.testing.assert_allclose(got, expected.probabilities, atol=1e-5)
        assert httpx.post(f"{url}/predict", json={"texts": ["a"]}, timeout=30).status_code == 401
        assert httpx.post(f"{url}/predict", json={"texts": ["a"] * 17}, headers=auth, timeout=30).status_code == 413
        bad = httpx.post(f"{url}/predict", content='{"texts": ["a"], "extra": 1}', headers=auth, timeout=30)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "extra"]
        assert httpx.get(f"{url}/health", timeout=30).status_code == 200
        assert httpx.get(f"{url}/model", headers=auth, timeout=30).json()["labels"] == ["neg", "pos"]
        # texts are tokenized in the batch: a too-long text is cut and flagged, or refused with truncate: false,
        # named by its index in the request even when the request runs in two batch-sized parts (8 texts each)
        long_text = "what a happy day " * 40
        texts = ["a sad story"] * 10 + [long_text]
        cut = httpx.post(f"{url}/predict", json={"texts": texts}, headers=auth, timeout=60)
        assert cut.status_code == 200 and [p["truncated"] for p in cut.json()["predictions"]] == [False] * 10 + [True]
        refused = httpx.post(f"{url}/predict", json={"texts": texts, "truncate": False}, headers=auth, timeout=60)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"] == ["body", "texts", 10] and "texts[10]" in refused.json()["detail"][0]["msg"]
    finally:
        serve.shutdown()


def test_a_ray_batch_is_encoded_in_one_call_and_a_too_long_text_fails_only_its_request(model_dir):
    from textsift.inference import load
    from textsift.serving.app import Encoder, RequestError, ServeSettings
    from textsift.serving.ray import _forward_batch

    predictor = load(model_dir)
    encoder = Encoder(predictor)
    calls = []
    encode = predictor.encode
    predictor.encode = lambda examples, *a: calls.append(len(examples)) or encode(examples, *a)
    settings = ServeSettings(model_dir=model_dir, max_batch_size=8)
    from textsift.data.example import Example

    jobs = [([Example(text=t) for t in TEXTS[:3]], True, 0), ([Example(text="what a happy day " * 40)], False, 8),
            ([Example(text=TEXTS[5])], True, 0)]
    out = _forward_batch(encoder, predictor, settings, None, jobs)
    assert calls[0] == 5  # every job's texts in one tokenizer call (the too-long one re-measured after it)
    assert isinstance(out[1], RequestError) and out[1].status == 422 and out[1].loc == ("texts", 8)  # its index in its request
    expected = predictor.predict(TEXTS[:3] + [TEXTS[5]])
    np.testing.assert_allclose(predictor.probabilities(np.concatenate([out[0][0], out[2][0]])), expected.probabilities, atol=1e-5)
    assert out[0][1] == [False] * 3 and out[2][1] == [False]


def test_predict_ray_writes_the_same_rows_in_input_order(local_ray, model_dir, tmp_path):
    from typer.testing import CliRunner

    from textsift.cli import commands  # noqa: F401
    from textsift.cli.app import app

    rows = [(i, TEXTS[(7 * i) % len(TEXTS)]) for i in range(90)]
    rows[40] = (40, "")  # an empty text: skipped, at its place
    source = tmp_path / "input.csv"
    source.write_text("id,text\n" + "".join(f'{i},"{t}"\n' for i, t in rows))
    runner = CliRunner()
    local = runner.invoke(app, ["predict", str(model_dir), str(source), "-o", str(tmp_path / "local.jsonl"), "--keep-columns", "id",
                                "--on-empty", "skip"])
    assert local.exit_code == 0, local.output
    # 2 windows of 48 rows, 2 actors each: blocks may finish in any order; rows must come back in theirs
    on_ray = runner.invoke(app, ["predict", str(model_dir), str(source), "-o", str(tmp_path / "ray.jsonl"), "--keep-columns", "id",
                                 "--on-empty", "skip", "--ray", "--ray-actors", "2", "--chunk-size", "48"])
    assert on_ray.exit_code == 0, on_ray.output
    ours = [json.loads(line) for line in (tmp_path / "ray.jsonl").read_text().splitlines()]
    theirs = [json.loads(line) for line in (tmp_path / "local.jsonl").read_text().splitlines()]
    assert [r["id"] for r in ours] == [str(i) for i, _ in rows]
    assert [r["label"] for r in ours] == [r["label"] for r in theirs]
    assert ours[40] == {**theirs[40]} and ours[40]["skipped"] == "empty text"
    for a, b in zip(ours, theirs):
        if "probabilities" in b:
            assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)
