"""app.map / Client.map: order, laziness, errors with their index, early exit, fairness."""

import itertools

import pytest
import trio

import snakepit
from snakepit import errors


async def test_ordered_and_unordered_results(make_config):
    async with snakepit.start(make_config(size=2)) as app:
        async with app.map("add", ({"a": i, "b": 1} for i in range(200))) as results:
            assert [v async for v in results] == [i + 1 for i in range(200)]

        async def agen():
            for i in range(50):
                yield {"a": i, "b": 0}
        async with app.map("add", agen(), ordered=False) as results:
            assert sorted([v async for v in results]) == list(range(50))
        async with app.map("add", []) as results:
            assert [v async for v in results] == []
        assert app.stats()["requests"] == 250


async def test_input_is_consumed_lazily(make_config):
    taken = []

    def source():
        for i in itertools.count():
            taken.append(i)
            yield {"a": i, "b": 0}

    async with snakepit.start(make_config(size=1)) as app:
        async with app.map("add", source(), window=8) as results:
            got = []
            async for v in results:
                got.append(v)
                if len(got) == 20:
                    break
        # at most `window` items beyond what the consumer took
        assert len(taken) <= 20 + 8 + 1
        assert got == list(range(20))


async def test_a_failing_item_raises_with_its_index_after_earlier_results(make_config):
    async with snakepit.start(make_config(size=2)) as app:
        args = [{"a": 1, "b": 1}] * 5 + [{"a": "x"}] + [{"a": 2, "b": 2}] * 5
        got = []
        with pytest.raises(errors.SnakepitError) as info:
            async with app.map("add", args) as results:
                async for v in results:
                    got.append(v)
        assert got == [2] * 5
        assert info.value.details["index"] == 5
        assert app.stats()["workers"] == 2 and await app.execute("add", {"a": 1, "b": 2}) == 3


async def test_leaving_early_cancels_in_flight_items(make_config):
    async with snakepit.start(make_config(size=2, cancel_grace=10.0)) as app:
        async with app.map("sleep", ({"seconds": 30} for _ in range(100))) as results:
            pass                                  # nothing consumed: two items in flight
        # the sleep tool honours cancellation: both workers confirm and come back
        with trio.fail_after(20):
            while app.stats()["available"] != 2:
                await trio.sleep(0.02)
        assert app.stats()["requests"] <= 2 + 16


async def test_other_callers_are_not_starved(make_config):
    async with snakepit.start(make_config(size=1)) as app:
        async with app.map("sleep", ({"seconds": 0.05} for _ in range(1000))) as results:
            first = await results.__anext__()
            assert first["slept"] >= 0
            # a plain call queues behind at most the map's window, not behind all 1000
            with trio.fail_after(10):
                assert await app.execute("add", {"a": 1, "b": 1}) == 2


async def test_bad_input_is_refused_by_name(make_config):
    async with snakepit.start(make_config(size=1)) as app:
        with pytest.raises(errors.InvalidArgumentsError, match="args_iterable"):
            async with app.map("add", {"a": 1}):
                pass
        with pytest.raises(errors.InvalidArgumentsError, match="window"):
            async with app.map("add", [], window=0):
                pass


def test_client_map(make_config):
    with snakepit.Client(make_config(size=2)) as client:
        assert list(client.map("add", ({"a": i, "b": i} for i in range(30)))) == \
            [2 * i for i in range(30)]
        with client.map("add", [{"a": 1, "b": 1}, {"a": "x"}]) as results:
            assert next(results) == 2
            with pytest.raises(errors.SnakepitError) as info:
                next(results)
            assert info.value.details["index"] == 1


async def test_fast_items_go_several_to_a_frame_on_the_pipe(make_config):
    """Batches grow while items are short: the pool's execute events say how many items each
    carried (a batch is one event), and every item is in exactly one."""
    from snakepit import telemetry
    items = []
    telemetry.attach("map-batches", ("snakepit", "request", "execute", "stop"),
                     lambda event, m, md, config: items.append(md.get("items", 1)))
    try:
        async with snakepit.start(make_config(size=2, transport="pipe")) as app:
            async with app.map("add", ({"a": i, "b": 1} for i in range(3000))) as results:
                assert [v async for v in results] == [i + 1 for i in range(3000)]
    finally:
        telemetry.detach("map-batches")
    assert sum(items) == 3000
    assert max(items) > 1 and len(items) < 3000


async def test_a_batch_is_formed_when_it_can_be_sent(autojump_clock):
    """The items taken while the first batches are out wait for the next batch instead of
    going one by one (they used to: a window's worth of one-item batches). MockClock: each
    item takes 10 µs, so batches double up to their bound."""
    from snakepit.pool.mapping import open_map
    sizes = []

    async def execute_batch(args_list):
        sizes.append(len(args_list))
        await trio.sleep(0.00001 * len(args_list))
        return [a["x"] for a in args_list]

    async def execute(args):
        raise AssertionError("every item goes in a batch")

    async with open_map(execute, ({"x": i} for i in range(2000)), window=512,
                        execute_batch=execute_batch, batch_size=64, batches=2) as results:
        assert [v async for v in results] == list(range(2000))
    assert sum(sizes) == 2000
    assert sizes[:2] == [1, 1] and 1 not in sizes[2:-1], sizes   # the first two (and a last)
    assert max(sizes) == 64


async def test_a_batch_answered_with_no_outcome_fails_the_map(autojump_clock):
    """Not sent again and again: the map raises a TransportError for the batch's first item."""
    from snakepit.pool.mapping import open_map
    calls = []

    async def execute_batch(args_list):
        calls.append(len(args_list))
        await trio.sleep(0.001)
        return []

    async def execute(args):
        raise AssertionError("every item goes in a batch")

    with pytest.raises(errors.TransportError) as info:
        async with open_map(execute, ({"x": i} for i in range(10)), window=16,
                            execute_batch=execute_batch, batch_size=4, batches=1) as results:
            async for _ in results:
                pass
    assert info.value.details["index"] == 0 and len(calls) <= 10


async def test_an_item_timing_out_in_its_batch_fails_with_its_index(make_config):
    """Items before it (in its batch too) are delivered; it fails with its own index."""
    args = [{"seconds": 0.001}] * 150 + [{"seconds": 30}] + [{"seconds": 0.001}] * 50
    got = []
    async with snakepit.start(make_config(size=1, transport="pipe", cancel_grace=30.0)) as app:
        with pytest.raises(errors.RequestTimeout) as info:
            async with app.map("sleep", args, timeout=1.0) as results:
                async for v in results:
                    got.append(v)
        assert len(got) == 150 and info.value.details["index"] == 150
        assert await app.execute("add", {"a": 1, "b": 2}) == 3


async def test_items_with_bytes_nones_and_plain_values_come_back_exactly(make_config):
    # plain items travel as one JSON array each way (the pipe's packed batches); an item with
    # bytes (a blob) or a None (null) goes as a request of its own: the results are the same
    items = [{"x": 1}, {"x": b"\x00\xff" * 3}, {"x": None}, {"x": [1.5, "s"]}, {"x": {}}] * 8
    async with snakepit.start(make_config(size=2)) as app:
        async with app.map("echo", iter(items)) as results:
            got = [value async for value in results]
        assert got == [{"x": item["x"]} for item in items]
        async with app.map("echo", iter([{"x": i} for i in range(300)])) as results:
            assert [value async for value in results] == [{"x": i} for i in range(300)]
