"""The host's answers to workers: host tools and session data, as HostService messages."""

from __future__ import annotations

import traceback
from typing import Any

from snakepit.errors import SnakepitError
from snakepit_bridge import serialization
from snakepit_bridge.proto import bridge_pb2 as pb


def _error_info(exc: BaseException) -> pb.ErrorInfo:
    if isinstance(exc, SnakepitError):
        return pb.ErrorInfo(category=exc.category, type=exc.remote_type or type(exc).__name__,
                            message=exc.message, details_json=serialization.dumps(exc.details),
                            traceback=exc.remote_traceback or "")
    return pb.ErrorInfo(category="host", type=type(exc).__name__, message=str(exc),
                        traceback="".join(traceback.format_exception(exc)))


class HostServices:
    def __init__(self, tools: Any, sessions: Any) -> None:
        self.tools, self.sessions = tools, sessions

    async def call_host_tool(self, request: Any) -> Any:
        try:
            args = serialization.decode(request.args_json, request.blobs) \
                if request.args_json else {}
            value = await self.tools.call(request.tool, args, request.session_id or None)
            data, blobs = serialization.encode(value)
        except Exception as exc:
            return pb.ExecuteResponse(success=False, error=_error_info(exc))
        return pb.ExecuteResponse(success=True, result_json=data, blobs=blobs)

    async def list_host_tools(self, request: Any) -> Any:
        specs = []
        for t in self.tools.list(request.session_id or None):
            specs.append(pb.ToolSpec(name=t["name"], description=t["description"], parameters=[
                pb.ParameterSpec(name=p["name"], type=p.get("type", "any"),
                                 required=bool(p.get("required", False)))
                for p in t["parameters"]]))
        return pb.ListHostToolsResponse(tools=specs)

    async def get_variable(self, request: Any) -> Any:
        try:
            value = await self.sessions.get_variable(request.session_id, request.name)
            data, blobs = serialization.encode(value)
        except Exception as exc:
            return pb.VariableResponse(success=False, name=request.name,
                                       error=_error_info(exc))
        return pb.VariableResponse(success=True, name=request.name, value_json=data, blobs=blobs,
                                   type=self.sessions.variable_type(request.session_id,
                                                                    request.name) or "")

    async def set_variable(self, request: Any) -> Any:
        try:
            value = serialization.decode(request.value_json, request.blobs)
            if self.sessions.variable_type(request.session_id, request.name) is None:
                if not request.type:
                    raise ValueError(f"variable {request.name!r} does not exist; give its type "
                                     f"to register it")
                constraints = serialization.loads(request.constraints_json) or None
                stored = await self.sessions.register_variable(
                    request.session_id, request.name, request.type, value, constraints)
            else:
                stored = await self.sessions.update_variable(request.session_id, request.name,
                                                             value)
            data, blobs = serialization.encode(stored)
        except Exception as exc:
            return pb.VariableResponse(success=False, name=request.name,
                                       error=_error_info(exc))
        return pb.VariableResponse(success=True, name=request.name, value_json=data, blobs=blobs,
                                   type=self.sessions.variable_type(request.session_id,
                                                                    request.name) or "")

    async def get_program(self, request: Any) -> Any:
        try:
            if request.session_id:
                data = await self.sessions.get_program(request.session_id, request.program_id)
            else:
                data = await self.sessions.get_global_program(request.program_id)
        except Exception as exc:
            return pb.ProgramResponse(success=False, error=_error_info(exc))
        return pb.ProgramResponse(success=True, data_json=serialization.dumps(data))

    async def store_program(self, request: Any) -> Any:
        try:
            data = serialization.loads(request.data_json)
            if request.session_id:
                await self.sessions.store_program(request.session_id, request.program_id, data)
            else:
                await self.sessions.store_global_program(request.program_id, data)
        except Exception as exc:
            return pb.ProgramResponse(success=False, error=_error_info(exc))
        return pb.ProgramResponse(success=True)


