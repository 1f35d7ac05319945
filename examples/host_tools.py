"""Host tools: functions on the host that a worker's tool calls back into."""

import trio

import snakepit

CONFIG = snakepit.Config(pools=[snakepit.PoolConfig(name="default", size=2)])

INVENTORY = {"apples": 3, "pears": 0}


def stock(item: str) -> int:
    """How many of an item the host has."""
    if item not in INVENTORY:
        raise KeyError(f"unknown item {item!r}")
    return INVENTORY[item]


async def main() -> None:
    async with snakepit.start(CONFIG) as app:
        app.tools.register("stock", stock)

        async def slow_double(x: int) -> int:      # async host tools run on the trio loop
            await trio.sleep(0.01)
            return 2 * x

        app.tools.register("slow_double", slow_double)
        print("host tools:", [t["name"] for t in app.tools.list()])
        # The showcase's call_host_demo calls ctx.call_host_tool(tool_name, **args):
        print(await app.execute("call_host_demo", {"tool_name": "stock",
                                                   "args": {"item": "apples"}}))
        print(await app.execute("call_host_demo", {"tool_name": "slow_double",
                                                   "args": {"x": 21}}))
        try:
            await app.execute("call_host_demo", {"tool_name": "stock",
                                                 "args": {"item": "kiwis"}})
        except snakepit.ToolError as exc:
            print("the worker saw the host's error:", exc.remote_type, "-", exc.message)


if __name__ == "__main__":
    trio.run(main)
