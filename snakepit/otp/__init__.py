"""snakepit.otp — OTP-style supervision for trio. Imports nothing else from snakepit.

    from snakepit import otp

    async def db(*, task_status=trio.TASK_STATUS_IGNORED):
        conn = await connect()
        task_status.started(conn)
        await serve(conn)

    sup = otp.Supervisor([otp.ChildSpec(id="db", start=db, shutdown=5.0)],
                         strategy="one_for_all", max_restarts=3, max_seconds=5.0)
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(sup.run)

A stateful server is a :class:`GenServer`; ``snakepit.otp.testing`` property-tests a tree.
The guide is docs/otp.md; ADR/0001-supervision-on-trio.md says how OTP's semantics map onto
trio and ADR/0004-genserver-and-otp-testing.md what GenServer and the testing kit decided.
"""

from snakepit.otp.application import Application
from snakepit.otp.child import shielded_cleanup, shutdown_grace
from snakepit.otp.decisions import ExitKind, RestartPlan, RestartWindow, restart_plan, \
    should_restart
from snakepit.otp.errors import (AlreadyRegistered, CallTimeout, ChildNotFound, ChildRunning,
                                 MaxChildrenReached, MaxRestartsExceeded, NotRunning, OTPError,
                                 ServerCrashed, Shutdown, StartError)
from snakepit.otp.genserver import GenServer, ServerRef, call, cast
from snakepit.otp.events import Observer, SupervisorEvent, current_observer
from snakepit.otp.running import running, unwrap_group
from snakepit.otp.registry import Registration, Registry, Via
from snakepit.otp.spec import INFINITY, ChildSpec, ChildType, Restart, Strategy
from snakepit.otp.supervisor import ChildInfo, DynamicSupervisor, Supervisor, SupervisorHandle

__all__ = [
    "AlreadyRegistered", "Application", "CallTimeout", "ChildInfo", "ChildNotFound",
    "ChildRunning", "ChildSpec", "ChildType", "DynamicSupervisor", "ExitKind", "GenServer",
    "INFINITY", "MaxChildrenReached", "MaxRestartsExceeded", "NotRunning", "OTPError", "Observer",
    "Registration", "Registry", "Restart", "RestartPlan", "RestartWindow", "ServerCrashed",
    "ServerRef", "Shutdown", "StartError", "Strategy", "Supervisor", "SupervisorEvent",
    "SupervisorHandle", "Via", "call", "cast", "current_observer", "restart_plan", "running",
    "should_restart", "shielded_cleanup", "shutdown_grace", "unwrap_group",
]
