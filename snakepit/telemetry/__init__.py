"""Telemetry: a process-wide event bus (like ``logging``'s handler table).

    snakepit.telemetry.attach("id", ("snakepit", "request", "execute", "stop"), handler)

The event catalog is in docs/telemetry.md.
"""

from snakepit.telemetry.hub import Event, Handler, TelemetryHub

hub = TelemetryHub()
attach = hub.attach
attach_many = hub.attach_many
detach = hub.detach
execute = hub.execute
span = hub.span
handlers = hub.handlers

__all__ = ["Event", "Handler", "TelemetryHub", "attach", "attach_many", "detach", "execute",
           "handlers", "hub", "span"]
