"""The micro-batcher on its own: bounds, order, backpressure, dropped and failing jobs, a free event loop."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from textsift.serving.batcher import BatcherStopped, MicroBatcher, QueueFull, concat
from textsift.text.base import Ragged


def rows(*ids: list[int]) -> Ragged:
    return Ragged.from_rows([list(r) for r in ids])


class Recorder:
    """A fake network: the logits of a row are (sum of its ids, its length); it records every batch it ran."""

    def __init__(self, delay: float = 0.0, fail_on: int | None = None) -> None:
        self.batches: list[tuple[int, int]] = []  # (texts, padded tokens)
        self.seen: list[int] = []  # first id of every row run
        self.delay = delay
        self.fail_on = fail_on
        self.threads: set[str] = set()

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        ids, lengths = batch["ids"], batch["lengths"]
        if self.fail_on is not None and (ids == self.fail_on).any():
            raise RuntimeError("boom")
        time.sleep(self.delay)
        self.batches.append((len(ids), ids.shape[0] * ids.shape[1]))
        self.seen.extend(int(r[0]) for r in ids)
        return np.stack([ids.sum(1), lengths], axis=1).astype(np.float32)


def expected(r: Ragged) -> np.ndarray:
    return np.array([[r[i].sum(), len(r[i])] for i in range(len(r))], np.float32)


def test_concurrent_requests_get_their_own_rows_in_order_within_every_bound():
    async def main() -> tuple[Recorder, list]:
        fake = Recorder()
        batcher = MicroBatcher(fake, "padded", max_batch_size=8, max_batch_tokens=64, max_wait_ms=30)
        batcher.start()
        rng = np.random.default_rng(0)
        requests = [Ragged.from_rows([list(rng.integers(1, 1000, size=rng.integers(1, 12))) for _ in range(rng.integers(1, 6))])
                    for _ in range(40)]
        results = await asyncio.gather(*(batcher.logits(r) for r in requests))
        await batcher.stop()
        return fake, list(zip(requests, results))

    fake, pairs = asyncio.run(main())
    for request, result in pairs:
        np.testing.assert_array_equal(result, expected(request))  # its own rows, in its order
    assert all(texts <= 8 and tokens <= 64 for texts, tokens in fake.batches), fake.batches
    assert len(fake.batches) < sum(len(r) for r, _ in pairs)  # requests were batched together
    assert max(t for t, _ in fake.batches) > 1


def test_a_request_larger_than_a_batch_runs_in_parts_and_keeps_its_order():
    async def main() -> tuple[Recorder, np.ndarray, Ragged]:
        fake = Recorder()
        batcher = MicroBatcher(fake, "padded", max_batch_size=4, max_batch_tokens=1000, max_wait_ms=0)
        batcher.start()
        big = Ragged.from_rows([[i] * (1 + i % 5) for i in range(1, 19)])
        out = await batcher.logits(big)
        await batcher.stop()
        return fake, out, big

    fake, out, big = asyncio.run(main())
    np.testing.assert_array_equal(out, expected(big))
    assert [t for t, _ in fake.batches] == [4, 4, 4, 4, 2]


def test_a_full_batch_runs_without_waiting_for_max_wait():
    async def main() -> float:
        batcher = MicroBatcher(Recorder(), "padded", max_batch_size=4, max_wait_ms=60_000)
        batcher.start()
        start = time.perf_counter()
        await asyncio.gather(*(batcher.logits(rows([i])) for i in range(1, 5)))  # 4 texts fill the batch
        took = time.perf_counter() - start
        await batcher.stop()
        return took

    assert asyncio.run(main()) < 30  # far below the 60 s max wait: the size bound flushed it


def test_a_lone_request_waits_for_max_wait_then_runs():
    async def main() -> float:
        batcher = MicroBatcher(Recorder(), "padded", max_batch_size=64, max_wait_ms=300)
        batcher.start()
        start = time.perf_counter()
        await batcher.logits(rows([1, 2]))
        took = time.perf_counter() - start
        await batcher.stop()
        return took

    assert 0.29 <= asyncio.run(main())  # it waited for company (the upper bound is the benchmark's to measure)


def test_queue_full_refuses_and_bounds_memory_then_recovers():
    async def main() -> tuple[list, int, int]:
        fake = Recorder()
        batcher = MicroBatcher(fake, "padded", max_batch_size=64, max_wait_ms=200, max_queue=10)
        batcher.start()
        first = [asyncio.ensure_future(batcher.logits(rows([i], [i], [i]))) for i in range(1, 4)]  # 9 texts
        await asyncio.sleep(0)
        depth = batcher.depth
        with pytest.raises(QueueFull, match="bound of 10"):
            batcher.submit(rows([7], [7]))  # 11 > 10
        results = await asyncio.gather(*first)
        await asyncio.sleep(0)
        after = batcher.depth
        again = await batcher.logits(rows([5], [5]))  # room again
        await batcher.stop()
        return results + [again], depth, after

    results, depth, after = asyncio.run(main())
    assert depth == 9 and after == 0
    assert [r[0, 0] for r in results] == [1, 2, 3, 5]


def test_a_cancelled_request_is_dropped_and_the_batcher_goes_on():
    dropped: list[int] = []

    async def main() -> tuple[Recorder, np.ndarray]:
        from textsift.serving.batcher import BatchStats

        fake = Recorder()
        batcher = MicroBatcher(fake, "padded", max_batch_size=64, max_wait_ms=150, stats=BatchStats(on_dropped=dropped.append))
        batcher.start()
        gone = asyncio.ensure_future(batcher.logits(rows([111], [112])))
        kept = asyncio.ensure_future(batcher.logits(rows([5])))
        await asyncio.sleep(0.02)
        gone.cancel()  # the client went away while queued
        out = await kept
        await batcher.stop()
        return fake, out

    fake, out = asyncio.run(main())
    assert 111 not in fake.seen and 112 not in fake.seen  # never ran
    assert dropped == [2]
    np.testing.assert_array_equal(out, [[5, 1]])


def test_a_failing_batch_fails_its_requests_only_and_the_loop_survives():
    async def main() -> np.ndarray:
        batcher = MicroBatcher(Recorder(fail_on=13), "padded", max_batch_size=64, max_wait_ms=0)
        batcher.start()
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.logits(rows([13]))
        out = await batcher.logits(rows([4]))
        await batcher.stop()
        return out

    np.testing.assert_array_equal(asyncio.run(main()), [[4, 1]])


def test_the_event_loop_keeps_running_while_a_batch_computes():
    async def main() -> tuple[int, Recorder]:
        fake = Recorder(delay=0.5)
        batcher = MicroBatcher(fake, "padded", max_batch_size=8, max_wait_ms=0)
        batcher.start()
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick = asyncio.ensure_future(ticker())
        await batcher.logits(rows([1]))
        tick.cancel()
        await batcher.stop()
        return ticks, fake

    ticks, fake = asyncio.run(main())
    assert ticks >= 10  # 0.5 s of network time in the worker thread: the loop ticked on
    assert all(name.startswith("textsift-batch") for name in fake.threads)


def test_stop_finishes_accepted_work_and_refuses_new():
    async def main() -> list[np.ndarray]:
        batcher = MicroBatcher(Recorder(), "padded", max_batch_size=64, max_wait_ms=100)
        batcher.start()
        pending = [asyncio.ensure_future(batcher.logits(rows([i]))) for i in range(1, 6)]
        await asyncio.sleep(0)
        await batcher.stop()
        with pytest.raises(BatcherStopped):
            batcher.submit(rows([9]))
        return list(await asyncio.gather(*pending))  # answered, not cancelled

    assert [r[0, 0] for r in asyncio.run(main())] == [1, 2, 3, 4, 5]


def test_concat_keeps_rows_in_order():
    a, b = rows([1, 2], [3]), rows([4], [5, 6, 7])
    c = concat([a, b])
    assert [c[i].tolist() for i in range(len(c))] == [[1, 2], [3], [4], [5, 6, 7]]


def test_split_by_cost_cuts_where_padding_costs_more_than_a_pass():
    from textsift.serving.batcher import split_by_cost

    lengths = np.array([50, 5, 6, 48, 5, 52, 7, 49])
    one = split_by_cost(lengths, 64, 10_000, pass_cost=1e9)  # passes are dear: everything in one
    assert [sorted(p.tolist()) for p in one] == [list(range(8))]
    two = split_by_cost(lengths, 64, 10_000, pass_cost=40)  # short and long texts apart: 4*7 + 4*52 + 80 < 8*52 + 40
    assert [sorted(p.tolist()) for p in two] == [[1, 2, 4, 6], [0, 3, 5, 7]]
    free = split_by_cost(lengths, 64, 10_000, pass_cost=0)  # passes cost nothing: no padding at all
    assert all(len(set(lengths[p])) == 1 for p in free)
    bounded = split_by_cost(np.full(10, 3), 4, 10_000, pass_cost=1e9)  # max_batch_size still holds
    assert max(len(p) for p in bounded) <= 4 and sorted(np.concatenate(bounded).tolist()) == list(range(10))
    widths = np.array([10, 10, 10, 10, 500])
    tokens = split_by_cost(widths, 64, 100, pass_cost=1e9)  # the token budget holds too; a row over it runs alone
    assert sorted(len(p) * int(widths[p].max()) for p in tokens) == [40, 500]


def test_cost_split_keeps_every_request_exact_and_saves_padding():
    rng = np.random.default_rng(3)
    requests = [Ragged.from_rows([list(rng.integers(1, 100, size=n)) for n in sizes]) for sizes in ([3, 60], [4], [58, 2, 61], [5, 5])]

    async def main(pass_cost: float | None) -> tuple[Recorder, list]:
        fake = Recorder()
        batcher = MicroBatcher(fake, "padded", max_batch_size=64, max_wait_ms=50, pass_cost=pass_cost)
        batcher.start()
        out = await asyncio.gather(*(batcher.logits(r) for r in requests))
        await batcher.stop()
        return fake, out

    plain, out_plain = asyncio.run(main(None))
    cut, out_cut = asyncio.run(main(30.0))
    for request, a, b in zip(requests, out_plain, out_cut):
        np.testing.assert_array_equal(a, expected(request))
        np.testing.assert_array_equal(b, expected(request))
    assert [t for t, _ in plain.batches] == [8] and len(cut.batches) == 2
    assert sum(tokens for _, tokens in cut.batches) < sum(tokens for _, tokens in plain.batches) / 2


def test_measure_pass_cost_fits_a_linear_cost_model():
    from textsift.serving.batcher import measure_pass_cost

    def fake(batch: dict[str, np.ndarray]) -> np.ndarray:  # 20 ms per pass + 0.01 ms per padded token
        time.sleep(0.02 + 0.00001 * batch["ids"].size)
        return np.zeros((len(batch["ids"]), 2), np.float32)

    cost = measure_pass_cost(fake, "padded", token=5)
    assert cost is not None and 800 < cost < 5000  # 0.02 / 0.00001 = 2000 tokens (sleep jitter: wide bounds)
    assert measure_pass_cost(fake, "bag", token=5) == 0.0

    def unpadded(batch: dict[str, np.ndarray]) -> np.ndarray:  # 20 ms per pass + 0.02 ms per real token
        time.sleep(0.02 + 0.00002 * int(batch["lengths"].sum()))
        return np.zeros((len(batch["ids"]), 2), np.float32)

    # a runtime that computes on real tokens only: padding is free, so a batch is never cut to save it
    assert measure_pass_cost(unpadded, "padded", token=5) is None


def test_payloads_are_encoded_together_in_the_batch_thread_and_an_encode_error_fails_only_its_request():
    calls: list[tuple[str, int]] = []

    def encode(payloads: list) -> list:  # a payload: the rows of one request; a row [-1] is "too long" for that request
        calls.append((threading.current_thread().name, len(payloads)))
        return [ValueError(f"request {p[0][0]} is bad") if [-1] in p else (Ragged.from_rows(p), f"extra {p[0][0]}")
                for p in payloads]

    async def main() -> tuple[Recorder, list]:
        fake = Recorder()
        batcher = MicroBatcher(fake, "padded", max_batch_size=64, max_wait_ms=50, encode=encode)
        batcher.start()
        payloads = [[[1, 2], [3]], [[10], [-1]], [[20, 21, 22]], [[30]]]
        out = await asyncio.gather(*(batcher.encoded_logits(p, len(p)) for p in payloads), return_exceptions=True)
        mixed = await batcher.logits(rows([7, 7]))  # requests already encoded still work beside them
        await batcher.stop()
        return fake, [*out, mixed]

    fake, out = asyncio.run(main())
    assert calls == [("textsift-batch_0", 4)]  # one call for the whole batch, in the batch thread
    (a, extra_a), bad, (c, extra_c), (d, _), mixed = out
    np.testing.assert_array_equal(a, expected(rows([1, 2], [3])))
    np.testing.assert_array_equal(c, expected(rows([20, 21, 22])))
    np.testing.assert_array_equal(d, expected(rows([30])))
    np.testing.assert_array_equal(mixed, expected(rows([7, 7])))
    assert (extra_a, extra_c) == ("extra 1", "extra 20")
    assert isinstance(bad, ValueError) and str(bad) == "request 10 is bad"
    assert sorted(fake.seen) == [1, 3, 7, 20, 30]  # the failed request's rows never ran
