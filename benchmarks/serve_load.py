"""Load test of ``textsift serve`` on loopback: micro-batching vs one forward pass per request.

Usage: python benchmarks/serve_load.py [--minilm MODEL_DIR] [--seconds S] [--clients 1,8,32,64] [--no-write]

For each model (a bag model and a fine-tuned MiniLM, both on emotion) and runtime (torch, ONNX int8), a real
``textsift serve`` process (2 threads, 1 worker) is started twice: batched (the defaults: --max-batch-size 64,
--max-wait-ms 5) and one forward pass per request (--max-batch-size 1 --max-wait-ms 0). N closed-loop clients
(1, 8, 32, 64; each a keep-alive HTTP/1.1 connection sending one emotion test text per request and the next as
soon as the answer is read) run for a bounded time per level (after a 1 s warm-up that is not counted), and
stop by themselves. Reported: requests/s, p50/p99 latency, errors (any answer but 200, any broken
connection), mean texts per forward pass (from the server's /metrics). The clients run in this process on the
same 2 cores as the server: at the bag model's speed they, not the server, are the limit. Also from /metrics:
the mean time of one forward pass and the share of the wall time the batch thread spent in forward passes.

Models: the bag model is trained here on emotion train when missing (``textsift train --model bag``, seconds);
MiniLM: ``--minilm`` (default: /work/runs_shared/minilm_emotion/model, all-MiniLM-L6-v2 fine-tuned for 1 epoch
on all of emotion train), read where it is when it has its int8 graph, else copied to benchmarks/.work/serve_load/
and exported there (ONNX int8), so that the source directory is never written. Everything stays on 127.0.0.1.
Results: benchmarks/results/serve_load.json and the marked section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _markdown import write_section  # noqa: E402  (benchmarks/ is on sys.path when a script runs)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "emotion"
WORK = ROOT / "benchmarks" / ".work" / "serve_load"
THREADS = 2
MODES = {"batched": [], "per-request": ["--max-batch-size", "1", "--max-wait-ms", "0"]}
MAX_WAIT_MS = 5.0  # the server's default


def textsift(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "textsift", "-q", *args], check=True, cwd=ROOT)


def prepare_bag() -> Path:
    model = WORK / "bag-emotion" / "model"
    if not (model / "model.safetensors").is_file():
        textsift("train", "--train", str(DATA / "train.jsonl"), "--validation", str(DATA / "validation.jsonl"),
                 "--test", str(DATA / "test.jsonl"), "--model", "bag", "--output", str(WORK / "bag-emotion"), "--no-report")
    return model


def prepare_minilm(source: Path) -> Path:
    if (source / "model.int8.onnx").is_file():
        return source  # only read
    model = WORK / f"minilm-{source.parent.name}" / "model"
    if not (model / "model.safetensors").is_file():
        shutil.copytree(source, model, dirs_exist_ok=True)
    return model


def exported(model: Path) -> Path:
    if not (model / "model.int8.onnx").is_file():
        textsift("export", str(model), "--format", "onnx", "--quantize", "int8")
    return model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, model: Path, runtime: str, mode: str, log: Path) -> None:
        self.port = free_port()
        extra = shlex.split(os.environ.get("SERVE_LOAD_SERVER_ARGS", ""))  # e.g. --gil-switch-ms 5 (set by --server-args)
        env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "textsift", "serve", str(model), "--port", str(self.port), "--runtime", runtime,
             "--num-threads", str(THREADS), "--no-access-log", "--max-queue", "100000", *MODES[mode], *extra],
            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self.log = log

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()[-2000:]}")
            try:
                status, _ = asyncio.run(request_once(self.port, "GET", "/ready"))
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the server was not ready in time")

    def metrics(self) -> dict[str, float]:
        from prometheus_client.parser import text_string_to_metric_families

        _, body = asyncio.run(request_once(self.port, "GET", "/metrics"))
        return {s.name: s.value for f in text_string_to_metric_families(body.decode()) for s in f.samples if not s.labels}

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- a minimal keep-alive HTTP/1.1 client (little CPU: the 2 cores are the server's) ------------------------
async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


def request_bytes(method: str, path: str, body: bytes = b"") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def request_once(port: int, method: str, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request_bytes(method, path))
        await writer.drain()
        return await read_response(reader)
    finally:
        writer.close()


async def load(port: int, texts: list[str], clients: int, warmup: float, seconds: float) -> dict:
    """``clients`` closed loops for warmup + seconds; only answers to requests sent after the warm-up count."""
    bodies = [json.dumps({"texts": [t]}).encode() for t in texts]
    start = time.perf_counter()
    begin, end = start + warmup, start + warmup + seconds
    latencies: list[float] = []
    errors = 0

    async def client(k: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = k * 997
        try:
            while True:
                sent = time.perf_counter()
                if sent >= end:
                    return
                writer.write(request_bytes("POST", "/predict", bodies[i % len(bodies)]))
                i += 1
                try:
                    await writer.drain()
                    status, _ = await read_response(reader)
                except (OSError, asyncio.IncompleteReadError):
                    errors += sent >= begin
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                if sent >= begin:
                    if status == 200:
                        latencies.append(time.perf_counter() - sent)
                    else:
                        errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(client(k) for k in range(clients)))
    lat = np.array(latencies) * 1000
    return {"clients": clients, "seconds": seconds, "requests": len(latencies), "errors": errors,
            "requests_per_s": len(latencies) / seconds,
            "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
            "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan")}


def offline(model: Path, runtime: str, texts: list[str]) -> dict:
    """The Predictor alone, in this process, same threads: texts/s one at a time and in batches of 32 (length-sorted),
    each timed on its second run over the same texts."""
    from textsift.inference import load as load_predictor

    predictor = load_predictor(model, runtime=runtime, num_threads=THREADS)
    ones, batched = texts[:300], texts[:1280]
    for text in ones:  # warm-up: the same calls once, untimed (first calls at a new shape are slower)
        predictor.predict([text])
    predictor.predict(batched, batch_size=32)
    start = time.perf_counter()
    for text in ones:
        predictor.predict([text])
    one = len(ones) / (time.perf_counter() - start)
    start = time.perf_counter()
    predictor.predict(batched, batch_size=32)
    return {"texts_per_s_batch_1": one, "texts_per_s_batch_32": len(batched) / (time.perf_counter() - start)}


def measure(models: dict[str, Path], runtimes: list[str], levels: list[int], seconds: float) -> tuple[list[dict], dict]:
    texts = [json.loads(line)["text"] for line in (DATA / "test.jsonl").open()]
    rows = []
    alone = {}
    for name, model in models.items():
        for runtime in runtimes:
            alone[f"{name}/{runtime}"] = offline(model, runtime, texts)
            print(f"{name:7s} {runtime:9s} without a server: {alone[f'{name}/{runtime}']}", flush=True)
    for name, model in models.items():
        for runtime in runtimes:
            for mode in MODES:
                server = Server(model, runtime, mode, WORK / f"server-{name}-{runtime}-{mode}.log")
                try:
                    server.wait_ready()
                    for clients in levels:
                        before = server.metrics()
                        row = asyncio.run(load(server.port, texts, clients, warmup=1.0, seconds=seconds))
                        after = server.metrics()
                        passes = after["textsift_batch_size_count"] - before.get("textsift_batch_size_count", 0)
                        summed = after["textsift_batch_size_sum"] - before.get("textsift_batch_size_sum", 0)
                        waits = after["textsift_queue_wait_seconds_count"] - before.get("textsift_queue_wait_seconds_count", 0)
                        waited = after["textsift_queue_wait_seconds_sum"] - before.get("textsift_queue_wait_seconds_sum", 0)
                        forward = after["textsift_forward_seconds_sum"] - before.get("textsift_forward_seconds_sum", 0)
                        row.update(model=name, runtime=runtime, mode=mode, mean_batch=summed / passes if passes else 0.0,
                                   mean_queue_wait_ms=1000 * waited / waits if waits else 0.0,
                                   mean_forward_ms=1000 * forward / passes if passes else 0.0,
                                   forward_share=forward / (seconds + 1.0))  # the level ran warm-up + seconds
                        rows.append(row)
                        print(f"{name:7s} {runtime:9s} {mode:11s} {clients:3d} clients: {row['requests_per_s']:8.1f} req/s "
                              f"p50 {row['p50_ms']:7.1f} ms p99 {row['p99_ms']:7.1f} ms errors {row['errors']} "
                              f"texts/pass {row['mean_batch']:.1f} forward {row['mean_forward_ms']:.1f} ms ({100 * row['forward_share']:.0f}% busy) "
                              f"queue wait {row['mean_queue_wait_ms']:.2f} ms", flush=True)
                finally:
                    server.stop()
    return rows, alone


def summary(rows: list[dict]) -> list[dict]:
    out = []
    keyed = {(r["model"], r["runtime"], r["mode"], r["clients"]): r for r in rows}
    for model, runtime in sorted({(r["model"], r["runtime"]) for r in rows}):
        b32, p32 = keyed.get((model, runtime, "batched", 32)), keyed.get((model, runtime, "per-request", 32))
        b1, p1 = keyed.get((model, runtime, "batched", 1)), keyed.get((model, runtime, "per-request", 1))
        out.append({"model": model, "runtime": runtime,
                    "speedup_at_32": b32["requests_per_s"] / p32["requests_per_s"] if b32 and p32 else None,
                    "lone_added_wait_ms": b1["p50_ms"] - p1["p50_ms"] if b1 and p1 else None,
                    "lone_queue_wait_ms": b1["mean_queue_wait_ms"] if b1 else None,
                    "errors": sum(r["errors"] for r in rows if r["model"] == model and r["runtime"] == runtime)})
    return out


def markdown(result: dict, command: str) -> str:
    lines = [
        "<!-- serve_load:start -->",
        "### Serving under load: micro-batching vs one forward pass per request (`textsift serve`, loopback)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, 2 cores shared by the server ({THREADS} threads, 1 worker) and the load generator "
        f"(one asyncio process, keep-alive HTTP/1.1); 1-minute load average {result['load']} at the start, {result['load_end']} at the end; "
        f"measured {result['date']}. Each level: {result['seconds']:.0f} s after a 1 s warm-up; each request one emotion test text. "
        f"Models: {result['models_note']}",
        "",
        "| model | runtime | mode | clients | req/s | p50 ms | p99 ms | errors | texts per forward pass | ms per forward pass | batch thread in forward passes | queue wait ms (mean) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        busy = f"{100 * r['forward_share']:.0f}%" if "forward_share" in r else "-"
        forward = f"{r['mean_forward_ms']:.1f}" if "mean_forward_ms" in r else "-"
        lines.append(f"| {r['model']} | {r['runtime']} | {r['mode']} | {r['clients']} | {r['requests_per_s']:.1f} | {r['p50_ms']:.1f} | "
                     f"{r['p99_ms']:.1f} | {r['errors']} | {r['mean_batch']:.1f} | {forward} | {busy} | {r['mean_queue_wait_ms']:.2f} |")
    lines += ["", "| model | runtime | batched / per-request req/s at 32 clients | lone request's added latency (p50 batched - p50 per-request, 1 client) | its wait in the server's queue (mean) | errors |",
              "|---|---|---|---|---|---|"]
    for s in result["summary"]:
        lines.append(f"| {s['model']} | {s['runtime']} | {s['speedup_at_32']:.2f}x | {s['lone_added_wait_ms']:+.2f} ms | "
                     f"{s['lone_queue_wait_ms']:.2f} ms | {s['errors']} |")
    offline = result.get("offline", {})
    if offline:
        lines += ["", "The same Predictor without a server, in the benchmark's process with the same 2 threads and no other load "
                  "from the benchmark (`predict` on 300 texts one at a time, then 1,280 in length-sorted batches of 32, each timed on "
                  "its second run over the same texts): what the model alone does on this machine.",
                  "", "| model | runtime | texts/s one at a time | texts/s in batches of 32 |", "|---|---|---|---|"]
        for key, o in offline.items():
            model, runtime = key.split("/")
            lines.append(f"| {model} | {runtime} | {o['texts_per_s_batch_1']:.1f} | {o['texts_per_s_batch_32']:.1f} |")
    minilm = [s for s in result["summary"] if s["model"] == "minilm"]
    speed = []
    for s in sorted(minilm, key=lambda s: s["runtime"] != "torch"):
        o = offline.get(f"minilm/{s['runtime']}")
        gain = f", the model alone gaining {o['texts_per_s_batch_32'] / o['texts_per_s_batch_1']:.2f}x from batches of 32" if o else ""
        speed.append(f"{s['runtime']} {s['speedup_at_32']:.2f}x ({'met' if s['speedup_at_32'] >= 3 else 'NOT met'}{gain})")
    met_errors = all(s["errors"] == 0 for s in result["summary"])
    met_wait = all(s["lone_queue_wait_ms"] <= MAX_WAIT_MS for s in result["summary"])
    lines += ["", f"Targets (issue #14): MiniLM batched >= 3x per-request at 32 clients: {'; '.join(speed)}; "
              f"0 errors at every level: {'met' if met_errors else 'NOT met'}; a lone request's added wait <= --max-wait-ms "
              f"({MAX_WAIT_MS:g} ms, measured in the server: arrival to the start of its forward pass): {'met' if met_wait else 'NOT met'}; "
              f"end to end (measured by the client) a lone request's p50 grows by {max(s['lone_added_wait_ms'] for s in result['summary']):.2f} ms "
              "at most."]
    if result.get("notes"):  # written by hand after a run (what the figures show), kept by --rewrite
        lines += ["", result["notes"]]
    lines.append("<!-- serve_load:end -->")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minilm", type=Path, default=ROOT.parent / "runs_shared" / "minilm_emotion" / "model")
    parser.add_argument("--seconds", type=float, default=8.0, help="Measured seconds per level.")
    parser.add_argument("--clients", default="1,8,32,64")
    parser.add_argument("--runtimes", default="torch,onnx-int8")
    parser.add_argument("--models", default="bag,minilm")
    parser.add_argument("--server-args", default="", help="More options for every `textsift serve`, e.g. '--gil-switch-ms 5'.")
    parser.add_argument("--no-write", action="store_true", help="Print only; BENCHMARKS.md and results/ stay as they are.")
    parser.add_argument("--rewrite", action="store_true", help="Only rewrite the BENCHMARKS.md section from results/serve_load.json.")
    args = parser.parse_args()
    results = ROOT / "benchmarks" / "results" / "serve_load.json"
    if args.rewrite:
        result = json.loads(results.read_text())
        write_section("serve_load", markdown(result, result["command"]))
        return
    WORK.mkdir(parents=True, exist_ok=True)
    os.environ["SERVE_LOAD_SERVER_ARGS"] = args.server_args
    wanted = args.models.split(",")
    models = {}
    if "bag" in wanted:
        models["bag"] = exported(prepare_bag())
    if "minilm" in wanted:
        models["minilm"] = exported(prepare_minilm(args.minilm))
    load_start = round(os.getloadavg()[0], 2)
    rows, alone = measure(models, args.runtimes.split(","), [int(c) for c in args.clients.split(",")], args.seconds)
    result = {"offline": alone, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": load_start, "load_end": round(os.getloadavg()[0], 2),
              "seconds": args.seconds, "rows": rows, "summary": summary(rows),
              "models_note": "bag: `textsift train --model bag` on emotion train (16,000 texts); minilm: all-MiniLM-L6-v2 fine-tuned by "
                             f"textsift for 1 epoch on all of emotion train (16,000 texts, test accuracy 0.913, `{args.minilm}`), "
                             "max length 128; int8: `textsift export --format onnx --quantize int8`."}
    for s in result["summary"]:
        print(s)
    if not args.no_write:
        result["command"] = ("python benchmarks/serve_load.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])).strip()
        results.write_text(json.dumps(result, indent=1) + "\n")
        write_section("serve_load", markdown(result, result["command"]))


if __name__ == "__main__":
    main()
