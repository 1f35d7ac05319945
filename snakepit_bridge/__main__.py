"""``python -m snakepit_bridge --adapter module:Class ...``: run one worker process.

Exit codes: 0 stopped by SIGTERM/SIGINT, 2 bad usage, 3 the adapter failed to load or
initialize, 4 the host is gone (stdin EOF or heartbeats lost while dependent).
"""

from __future__ import annotations

import gc
import logging
import os
import sys

from snakepit_bridge.protocol import (BIND_HOST_ENV, EXIT_INIT, EXIT_USAGE,
                                      GRPC_FORK_SUPPORT_ENV, SECRET_ENV, THREAD_LIMIT_VARS)
from snakepit_bridge.worker_args import parse_args


def main(argv: list[str] | None = None) -> int:
    # The collector stays off while the worker imports its code and creates its adapter:
    # those imports make objects that live as long as the worker, and the passes over them
    # cost 5-10 ms of the ~180 ms of CPU of the imports (interleaved A/B of 50 pairs, wait4).
    # On again before the adapter initializes and the worker serves.
    gc.disable()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    args.worker_id = args.worker_id or f"worker-{os.getpid()}"
    if args.max_concurrency < 1:
        print(f"--max-concurrency must be >= 1, got {args.max_concurrency}", file=sys.stderr)
        return EXIT_USAGE
    # Before any user code (numpy & co read these once, at import).
    for var in THREAD_LIMIT_VARS:
        os.environ.setdefault(var, "1")
    os.environ[GRPC_FORK_SUPPORT_ENV] = "false"
    secret = os.environ.pop(SECRET_ENV, "")
    if not secret:
        print(f"{SECRET_ENV} is not set: a worker needs the host's per-run secret in its "
              "environment", file=sys.stderr)
        return EXIT_USAGE
    from snakepit_bridge.tls import Tls
    try:
        tls = Tls.pop_env(os.environ)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    bind_host = os.environ.pop(BIND_HOST_ENV, "") or "127.0.0.1"
    if bind_host != "127.0.0.1" and tls is None:
        print(f"{BIND_HOST_ENV}={bind_host!r} needs TLS material in the environment: a worker "
              "serves plaintext on 127.0.0.1 only", file=sys.stderr)
        return EXIT_USAGE
    level = logging.CRITICAL + 1 if args.log_level == "none" else args.log_level.upper()
    logging.basicConfig(level=level, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s [{args.worker_id}] %(name)s: "
                               f"%(message)s%(correlation)s")
    from snakepit_bridge.telemetry import CorrelationFilter
    for handler in logging.getLogger().handlers:
        handler.addFilter(CorrelationFilter())

    module_name, _, class_name = args.adapter.partition(":")
    if not module_name or not class_name:
        print(f"--adapter must be module.path:ClassName, got {args.adapter!r}", file=sys.stderr)
        return EXIT_USAGE
    # Before the adapter's code, which may import asyncio: ssl is imported when TLS is used.
    from snakepit_bridge.lazy_ssl import import_asyncio
    asyncio = import_asyncio()
    from snakepit_bridge.adapter_loading import AdapterNotFound, load_adapter_class
    try:
        adapter_cls = load_adapter_class(args.adapter)
    except AdapterNotFound as exc:   # where it looked says it all; no traceback
        print(f"cannot load adapter {args.adapter!r}: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:
        import traceback
        traceback.print_exc()
        print(f"cannot load adapter {args.adapter!r}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return EXIT_INIT
    if args.max_concurrency > 1 and not getattr(adapter_cls, "thread_safe", False):
        print(f"adapter {args.adapter} is not declared thread-safe, so it cannot serve "
              f"--max-concurrency {args.max_concurrency}: subclass "
              f"snakepit_bridge.ThreadSafeAdapter (or set thread_safe = True) once its tools "
              f"may run concurrently, or use the process profile", file=sys.stderr)
        return EXIT_USAGE
    try:
        adapter = adapter_cls()
    except Exception as exc:
        import traceback
        traceback.print_exc()
        print(f"cannot create adapter {args.adapter!r}: {exc}", file=sys.stderr)
        return EXIT_INIT

    from snakepit_bridge.worker import Options, serve
    opts = Options(worker_id=args.worker_id, ready_fd=args.ready_fd,
                   host_address=args.host_address, max_concurrency=args.max_concurrency,
                   heartbeat_interval=args.heartbeat_interval,
                   heartbeat_timeout=args.heartbeat_timeout, dependent=not args.no_dependent,
                   shutdown_grace=args.shutdown_grace, secret=secret, pipe_fd=args.pipe_fd,
                   tls=tls, bind_host=bind_host)
    from snakepit_bridge.lifetime import own_process, take_group_down
    own_process()
    gc.enable()
    code = asyncio.run(serve(adapter, opts))
    take_group_down()   # a tool's children go with the worker (ADR 0002, "Grandchildren")
    sys.stdout.flush()
    sys.stderr.flush()
    # Tool threads that ignore cancellation must not keep a stopped worker alive.
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
