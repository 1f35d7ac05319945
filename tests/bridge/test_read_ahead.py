"""ReadAhead: a sync generator pulled on a thread, taken on the event loop."""

import asyncio
import concurrent.futures
import threading

from snakepit_bridge import read_ahead
from snakepit_bridge.read_ahead import END, Raised, ReadAhead


def drain(gen, stop=None, **kw):
    """Every item taken, and the number of thread steps it took."""
    stop = stop or threading.Event()

    async def main():
        loop = asyncio.get_running_loop()
        ahead, got, steps = ReadAhead(loop, **kw), [], 0
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            while True:
                items, running = ahead.take_nowait()
                got += items
                if not running and not items:
                    if ahead.ended or stop.is_set():
                        return got, steps
                    ahead.begin()
                    steps += 1
                    loop.run_in_executor(pool, ahead.run, gen, stop)
                elif not items:
                    await asyncio.wait_for(ahead.wait(), 10)
    return asyncio.run(main())


def test_items_arrive_in_order_a_step_holding_at_most_max_items():
    got, steps = drain(iter(range(150)))
    assert got == [*range(150), END]
    assert 150 // read_ahead.MAX_ITEMS <= steps <= 150


def test_a_step_stops_at_max_bytes():
    got, steps = drain(iter(["x" * 1000] * 10), size=len, convert=str)
    assert len(got) == 11 and steps >= 1
    got, steps = drain(iter([b"x"] * 10), size=lambda _: read_ahead.MAX_BYTES)
    assert steps >= 10   # every item fills a step on its own


def test_a_failing_generator_ends_with_its_exception():
    def gen():
        yield 1
        raise KeyError("boom")
    got, _ = drain(gen())
    assert got[0] == 1 and isinstance(got[1], Raised) and isinstance(got[1].exc, KeyError)


def test_the_last_item_stops_the_reading():
    advanced = []

    def gen():
        yield 1
        yield "last"
        advanced.append(True)
        yield 3
    got, _ = drain(gen(), last=lambda item: item == "last")
    assert got == [1, "last"] and advanced == []


def test_a_stopped_step_ends_and_wakes_the_waiting_loop():
    stop = threading.Event()

    def gen():
        yield 1
        stop.set()            # the stream is cancelled while the generator works
        yield 2               # pulled, then the step ends without reading further
        yield 3
    got, steps = drain(gen(), stop=stop)
    assert got == [1, 2] and steps == 1
