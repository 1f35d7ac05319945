"""Host tools called from real workers; sessions ending in workers; describe."""


import numpy as np
import pytest
import trio

import snakepit
from snakepit import errors



HOSTCALLS = "pool_adapters:HostCallsAdapter"


async def test_registration_rules(make_config):
    async with snakepit.start(make_config(size=1)) as app:
        app.tools.register("echo.v1", lambda **kw: kw, description="echo")
        with pytest.raises(errors.AlreadyRegistered):
            app.tools.register("echo.v1", lambda: None)
        app.tools.register("echo.v1", lambda: None, session_id="s1")   # another scope
        for bad in ["", "-x", "has space", "x" * 65, "ünï"]:
            with pytest.raises(errors.InvalidArgumentsError):
                app.tools.register(bad, lambda: None)
        assert [t["name"] for t in app.tools.list()] == ["echo.v1"]
        assert app.tools.unregister("echo.v1") and not app.tools.unregister("echo.v1")


async def test_worker_calls_host_tool_with_each_type(make_config):
    async with snakepit.start(make_config(size=1, adapter=HOSTCALLS)) as app:
        seen = []

        def echo(**kwargs):
            seen.append(kwargs)
            return kwargs

        async def aecho(text: str, n: int = 1) -> str:
            await trio.sleep(0)
            return text * n

        app.tools.register("echo", echo)
        app.tools.register("aecho", aecho)
        args = {"s": "a string", "i": 7, "f": 2.5, "l": [1, "two"], "d": {"k": [True]},
                "b": b"\x00\xffbytes", "arr": np.arange(6, dtype=np.float32).reshape(2, 3)}
        out = await app.execute("try_host", {"name": "echo", "args": args})
        got = out["result"]
        np.testing.assert_array_equal(got.pop("arr"), args["arr"])
        assert got == {k: v for k, v in args.items() if k != "arr"}
        assert isinstance(seen[0]["arr"], np.ndarray) and seen[0]["b"] == b"\x00\xffbytes"
        assert await app.execute("async_host", {"name": "aecho",
                                                "args": {"text": "ab", "n": 2}}) == "abab"
        assert sorted(await app.execute("list_host")) == ["aecho", "echo"]


async def test_host_tool_errors_reach_the_worker(make_config):
    async with snakepit.start(make_config(size=1, adapter=HOSTCALLS)) as app:
        def deny(user: str):
            raise PermissionError(f"{user} may not")

        app.tools.register("deny", deny)
        out = await app.execute("try_host", {"name": "deny", "args": {"user": "bob"}})
        assert out == {"caught": "PermissionError", "category": "tool",
                       "message": "bob may not"}
        out = await app.execute("try_host", {"name": "missing"})
        assert out["category"] == "unknown_tool"
        out = await app.execute("try_host", {"name": "deny", "args": {"who": "x"}})
        assert out["category"] == "invalid_arguments"
        with pytest.raises(errors.ToolError) as info:   # uncaught in the worker tool
            await app.execute("async_host", {"name": "deny", "args": {"user": "eve"}})
        assert info.value.remote_type == "HostToolError" and "eve may not" in info.value.message


async def test_nested_host_worker_host_worker(make_config):
    async with snakepit.start(make_config(size=2, adapter=HOSTCALLS)) as app:
        async def fan_out(x: int) -> int:
            # host tool → app.execute on the other (free) worker → host tool again
            inner = await app.execute("try_host", {"name": "double", "args": {"x": x}})
            return inner["result"] + 1

        app.tools.register("double", lambda x: 2 * x)
        app.tools.register("fan_out", fan_out)
        with trio.fail_after(20):
            out = await app.execute("try_host", {"name": "fan_out", "args": {"x": 20}})
        assert out == {"result": 41}


async def test_session_scoped_tools_and_end_session(make_config):
    async with snakepit.start(make_config(size=1)) as app:
        assert await app.execute("session_counter", session_id="s") == 1
        assert await app.execute("session_counter", session_id="s") == 2
        assert await app.sessions.exists("s")        # created on first use
        app.tools.register("only_s", lambda: "mine", session_id="s")
        await app.sessions.delete("s")               # EndSession reaches the worker
        assert [t["name"] for t in app.tools.list("s")] == []
        assert await app.execute("session_counter", session_id="s") == 1


async def test_session_variables_from_a_worker(make_config):
    async with snakepit.start(make_config(size=1, adapter=HOSTCALLS)) as app:
        await app.sessions.create("v")
        await app.sessions.register_variable("v", "temp", "float", 0.5, {"max": 1.0})
        assert await app.execute("get_var", {"name": "temp"}, session_id="v") == 0.5
        out = await app.execute("set_var", {"name": "temp", "value": 0.9}, session_id="v")
        assert out == {"stored": 0.9}
        out = await app.execute("set_var", {"name": "temp", "value": 7}, session_id="v")
        assert out["caught"] == "InvalidVariable" and "<= 1.0" in out["message"]
        assert await app.sessions.get_variable("v", "temp") == 0.9
        out = await app.execute("set_var", {"name": "new", "value": "x", "type": "string"},
                                session_id="v")
        assert out == {"stored": "x"}


async def test_describe(make_config):
    async with snakepit.start(make_config(size=1)) as app:
        tools = {t["name"]: t for t in await app.describe()}
        assert tools["stream_progress"]["streaming"] and not tools["add"]["streaming"]
        params = {p["name"]: p for p in tools["process_text"]["parameters"]}
        assert params["text"]["required"] and params["operation"]["default"] == "upper"
        assert "Transform" in tools["process_text"]["description"]
