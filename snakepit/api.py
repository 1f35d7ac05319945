"""The public face: ``snakepit.start``, the ``App`` it yields, and the sync ``Client``.

    async with snakepit.start(config) as app:
        await app.execute("add", {"a": 2, "b": 3})          # -> 5
        async with app.stream("stream_progress", {"steps": 5}) as chunks:
            async for chunk in chunks: ...

    with snakepit.Client(config) as sp:                       # plain synchronous code
        sp.execute("ping")
"""

from __future__ import annotations

import contextvars
import queue
import threading
from contextlib import asynccontextmanager
from typing import Any, AsyncContextManager, AsyncIterable, AsyncIterator, Awaitable, \
    Callable, Iterable, TypeVar

import trio

from snakepit import otp
from snakepit.config import Config
from snakepit.errors import PoolNotFound, PoolNotReady, ShuttingDown, SnakepitError
from snakepit.pool.mapping import BATCH_SIZE, MAX_WINDOW, open_map
from snakepit.chunk import Chunk
from snakepit.pool.pool import Pool
from snakepit.sigterm import install_sync, sigterm_interrupts, uninstall_sync

T = TypeVar("T")

_current_app: contextvars.ContextVar["App | None"] = contextvars.ContextVar(
    "snakepit_current_app", default=None)


class App:
    """A running application: run tools, stream, look at pools. Reported by
    ``Application.run`` / yielded by :func:`start`."""

    def __init__(self, config: Config, host: Any) -> None:
        self.config = config
        self._host = host
        self.closed = False

    # -- pools ------------------------------------------------------------------------------
    @property
    def pools(self) -> list[str]:
        return [p.name for p in self.config.pools]

    def pool(self, name: str | None = None) -> Pool:
        if self.closed:
            raise ShuttingDown("the application is shutting down")
        if name is None:
            name = self.config.pools[0].name
        if name not in self.pools:
            raise PoolNotFound(f"no pool named {name!r}; pools: {self.pools}",
                               details={"pool": name, "pools": self.pools})
        pool: Pool | None = self._host.registry.whereis(("pool", name))
        if pool is None:
            raise PoolNotReady(f"pool {name!r} is not running (restarting or failed to start)",
                               details={"pool": name})
        return pool

    async def _target(self, name: str | None) -> Pool:
        """The pool, or its error after a checkpoint: every public call yields to trio, so a
        retry loop on a failing call cannot starve the event loop."""
        try:
            return self.pool(name)
        except SnakepitError:
            await trio.lowlevel.checkpoint()
            raise

    async def execute(self, tool: str, args: dict[str, Any] | None = None, *,
                      pool: str | None = None, session_id: str | None = None,
                      timeout: float | None = None, correlation_id: str | None = None) -> Any:
        """Run ``tool`` on a worker of ``pool`` and return its result."""
        target = await self._target(pool)
        if session_id is not None:
            await self.sessions.touch(session_id)
        return await target.execute(tool, args, session_id=session_id, timeout=timeout,
                                    correlation_id=correlation_id)

    @asynccontextmanager
    async def stream(self, tool: str, args: dict[str, Any] | None = None, *,
                     pool: str | None = None, session_id: str | None = None,
                     timeout: float | None = None, correlation_id: str | None = None
                     ) -> AsyncIterator[AsyncIterator[Chunk]]:
        """Run a streaming tool; iterate the chunks inside the block. Leaving the block
        early stops the producer in the worker and frees the worker."""
        target = await self._target(pool)
        if session_id is not None:
            await self.sessions.touch(session_id)
        async with target.stream(tool, args, session_id=session_id, timeout=timeout,
                                 correlation_id=correlation_id) as chunks:
            yield chunks

    @asynccontextmanager
    async def map(self, tool: str, args_iterable: Iterable[Any] | AsyncIterable[Any], *,
                  pool: str | None = None, ordered: bool = True, timeout: float | None = None,
                  session_id: str | None = None, window: int | None = None
                  ) -> AsyncIterator[AsyncIterator[Any]]:
        """Run ``tool`` once per item of ``args_iterable`` (argument dicts, a sync or async
        iterable consumed lazily); iterate the results inside the block, in input order with
        ``ordered=True``. ``timeout`` applies to each item. A failing item raises its error
        (``details["index"]``) in its turn; leaving the block cancels what is in flight. At
        most ``window`` items (default: four per worker slot, times the largest batch on the
        pipe transport) are taken ahead of the consumer.
        See :mod:`snakepit.pool.mapping`."""
        target = await self._target(pool)
        rt = target.runtime
        slots = rt.config.size * rt.capacity
        batch = BATCH_SIZE if target.batches else 1
        if window is None:
            window = min(MAX_WINDOW, max(16, 4 * slots * batch))
        # at least two batches per worker slot fit in the window: one runs, one waits
        batch = max(1, min(batch, window // (2 * slots)))

        def one(args: Any) -> Awaitable[Any]:
            return self.execute(tool, args, pool=target.name, timeout=timeout,
                                session_id=session_id)

        async def several(args_list: list[Any]) -> list[Any]:
            if session_id is not None:
                await self.sessions.touch(session_id)
            return await target.execute_batch(tool, args_list, session_id=session_id,
                                              timeout=timeout)

        async with open_map(one, args_iterable, ordered=ordered, window=window,
                            execute_batch=several, batch_size=batch,
                            batches=2 * slots) as results:
            yield results

    @property
    def sessions(self) -> Any:
        """The session store (:class:`snakepit.sessions.SessionStore`)."""
        return self._host.sessions

    @property
    def tools(self) -> Any:
        """Host tools workers may call (:class:`snakepit.tools.HostTools`)."""
        return self._host.tools

    async def describe(self, pool: str | None = None) -> list[dict[str, Any]]:
        """The pool's tools: name, description, parameters, whether they stream."""
        return await self.pool(pool).describe()

    def stats(self, pool: str | None = None) -> dict[str, Any]:
        return self.pool(pool).stats()

    def set_worker_telemetry(self, pool: str | None = None, *, enabled: bool = True,
                             sampling_rate: float = 1.0, allow: Any = (), deny: Any = ()
                             ) -> None:
        """Change the telemetry filters of every worker of ``pool`` at run time (event-name
        prefixes like ``"model.load"``); no restart needed."""
        self.pool(pool).runtime.set_worker_telemetry(enabled=enabled, sampling_rate=sampling_rate,
                                                     allow=allow, deny=deny)

    def workers(self, pool: str | None = None) -> list[dict[str, Any]]:
        return self.pool(pool).workers()


@asynccontextmanager
async def start(config: Config) -> AsyncIterator[App]:
    """Start the application; the block runs once every required pool is ready. Leaving it
    (normally, by exception, Ctrl-C or SIGTERM) stops everything and reaps every worker
    process. SIGTERM is handled as Ctrl-C only if nobody else handles it (snakepit.sigterm)."""
    from snakepit.application import Application

    async with sigterm_interrupts(), otp.running(Application(config).run) as app:
        token = _current_app.set(app)
        try:
            yield app
        finally:
            _current_app.reset(token)


def current_app() -> App:
    app = _current_app.get()
    if app is None:
        raise ShuttingDown("no snakepit application is running here "
                           "(use `async with snakepit.start(config)`)")
    return app


async def execute(tool: str, args: dict[str, Any] | None = None, **kw: Any) -> Any:
    """``await snakepit.execute(...)`` inside a ``snakepit.start`` block."""
    return await current_app().execute(tool, args, **kw)


class Client:
    """Blocking access for code that is not on trio: runs the application on a thread.

        with snakepit.Client(config) as sp:
            sp.execute("add", {"a": 1, "b": 2})
            for chunk in sp.stream("stream_progress", {"steps": 3}): ...
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._app: App | None = None
        self._nursery: trio.Nursery | None = None
        self._stop: trio.Event | None = None
        self._error: BaseException | None = None
        self._sigterm = False

    def __enter__(self) -> "Client":
        if self._thread is not None:
            raise RuntimeError("this Client is already running")
        # SIGTERM, like Ctrl-C, raises in the main thread so the `with` block is left through
        # its finally blocks (unless the program handles SIGTERM itself: snakepit.sigterm).
        self._sigterm = install_sync()
        ready: queue.Queue[BaseException | None] = queue.Queue()
        self._thread = threading.Thread(target=self._main, args=(ready,),
                                        name="snakepit-client", daemon=True)
        self._thread.start()
        error = ready.get()
        if error is not None:
            self._thread.join()
            self._thread = None
            uninstall_sync(self._sigterm)
            raise error
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the application and wait until every worker process is reaped."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            if self._token is not None and self._stop is not None:
                try:
                    trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
                except trio.RunFinishedError:
                    pass
            thread.join()
        finally:
            uninstall_sync(self._sigterm)

    def _main(self, ready: "queue.Queue[BaseException | None]") -> None:
        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            try:
                async with start(self.config) as app, trio.open_nursery() as nursery:
                    self._app, self._nursery = app, nursery
                    ready.put(None)
                    await self._stop.wait()
                    nursery.cancel_scope.cancel()
            except BaseException as exc:
                if self._app is None:
                    ready.put(otp.unwrap_group(exc))
                    return
                raise

        try:
            trio.run(main)
        except BaseException as exc:  # the application died; the next call reports it
            self._error = otp.unwrap_group(exc)
        finally:
            self._app = None

    def _call(self, fn: Callable[..., Any], *args: Any, sync: bool = False) -> Any:
        if self._token is None or self._app is None or self._thread is None:
            raise ShuttingDown("the Client is not running (use `with snakepit.Client(...)`)")
        try:
            if sync:
                return trio.from_thread.run_sync(fn, *args, trio_token=self._token)
            return trio.from_thread.run(fn, *args, trio_token=self._token)
        except trio.RunFinishedError:
            raise ShuttingDown("the snakepit application has stopped") from self._error

    def execute(self, tool: str, args: dict[str, Any] | None = None, **kw: Any) -> Any:
        """Like ``App.execute``, blocking."""
        return self._call(lambda: self._require().execute(tool, args, **kw))

    def stream(self, tool: str, args: dict[str, Any] | None = None, **kw: Any) -> "SyncStream":
        """Chunks as they arrive; ``close()`` (or leaving a ``with``) stops the stream early."""
        return SyncStream(self, lambda app: app.stream(tool, args, **kw))

    def map(self, tool: str, args_iterable: Iterable[Any], **kw: Any) -> "SyncStream":
        """Like ``App.map``, as an iterator of results; ``close()`` (or leaving a ``with``)
        cancels what is in flight. ``args_iterable`` is consumed on the client's thread."""
        return SyncStream(self, lambda app: app.map(tool, args_iterable, **kw))

    def stats(self, pool: str | None = None) -> dict[str, Any]:
        return self._call(lambda: self._require().stats(pool), sync=True)  # type: ignore[no-any-return]

    def workers(self, pool: str | None = None) -> list[dict[str, Any]]:
        return self._call(lambda: self._require().workers(pool), sync=True)  # type: ignore[no-any-return]

    def _require(self) -> App:
        if self._app is None:
            raise ShuttingDown("the snakepit application has stopped")
        return self._app


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


Opener = Callable[["App"], AsyncContextManager[AsyncIterator[Any]]]


class SyncStream:
    """Iterator over what an async ``with``-block yields (a stream's chunks, a map's results),
    run on the client's trio thread with a bounded buffer."""

    def __init__(self, client: Client, opener: Opener) -> None:
        self._client = client
        self._scope = trio.CancelScope()
        self._recv: trio.MemoryReceiveChannel[Any] | None = None
        self._done = False
        client._call(self._open, opener, sync=True)

    def _open(self, opener: Opener) -> None:
        send, self._recv = trio.open_memory_channel[Any](16)
        assert self._client._nursery is not None
        self._client._nursery.start_soon(self._pump, send, opener)

    async def _pump(self, send: trio.MemorySendChannel[Any], opener: Opener) -> None:
        async with send:
            with self._scope:
                try:
                    async with opener(self._client._require()) as items:
                        async for item in items:
                            await send.send(item)
                except Exception as exc:
                    await send.send(_Failed(exc))

    async def _next(self) -> Any:
        assert self._recv is not None
        try:
            return await self._recv.receive()
        except trio.EndOfChannel:
            return _END

    def __iter__(self) -> "SyncStream":
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        item = self._client._call(self._next)
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, _Failed):
            self._done = True
            raise item.error
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        if not self._done:
            self._done = True
            try:
                self._client._call(self._scope.cancel, sync=True)
            except ShuttingDown:
                pass

    def __enter__(self) -> "SyncStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not self._done and self._client._thread is not None:
            try:
                self.close()
            except Exception:
                pass


_END = object()


def run_as_script(fn: Callable[[Client], T], config: Config) -> T:
    """Run ``fn(client)`` with a running application and guarantee cleanup, even on Ctrl-C
    or SIGTERM (which raises :class:`snakepit.sigterm.Terminated`, a KeyboardInterrupt)."""
    with Client(config) as client:
        return fn(client)


__all__ = ["App", "Client", "current_app", "execute", "run_as_script", "start",
           "SnakepitError"]
