"""The event bus on its own."""

import pytest

from snakepit import errors
from snakepit.telemetry import TelemetryHub


def test_attach_execute_detach():
    hub, seen = TelemetryHub(), []
    hub.attach("a", ("x", "y"), lambda e, m, md, c: seen.append((e, m, md, c)), config=7)
    hub.attach_many("b", [("x", "y"), ("z",)], lambda e, m, md, c: seen.append(("b", e)))
    hub.execute(("x", "y"), {"n": 1}, {"k": "v"})
    hub.execute(("nobody",), {}, {})
    assert seen == [(("x", "y"), {"n": 1}, {"k": "v"}, 7), ("b", ("x", "y"))]
    with pytest.raises(errors.AlreadyRegistered):
        hub.attach("a", ("q",), print)
    assert hub.detach("a") and not hub.detach("a")
    assert hub.handlers() == {"b": [("x", "y"), ("z",)]}
    with pytest.raises(errors.InvalidArgumentsError):
        hub.attach("c", "x.y", print)


def test_a_handler_only_if_its_check_holds():
    hub, seen, on = TelemetryHub(), [], [False]
    hub.attach("otel", ("x",), lambda e, m, md, c: seen.append("otel"),
               only_if=lambda: on[0])
    assert not hub.listening(("x",))   # nobody wants the event: the emitter skips it
    hub.execute(("x",), {}, {})
    assert seen == []
    hub.attach("plain", ("x",), lambda e, m, md, c: seen.append("plain"))
    assert hub.listening(("x",))
    hub.execute(("x",), {}, {})
    assert seen == ["plain"]
    on[0] = True
    hub.detach("plain")
    assert hub.listening(("x",))
    hub.execute(("x",), {}, {})
    assert seen == ["plain", "otel"]
    with pytest.raises(errors.InvalidArgumentsError, match="only_if"):
        hub.attach("bad", ("x",), print, only_if=True)


def test_faulty_handler_is_detached_and_never_breaks_the_emitter(caplog):
    hub, seen = TelemetryHub(), []

    def bad(*args):
        raise RuntimeError("handler bug")

    hub.attach("bad", ("e",), bad)
    hub.attach("good", ("e",), lambda *a: seen.append(a[0]))
    hub.execute(("e",), {}, {})       # no exception here
    hub.execute(("e",), {}, {})
    assert seen == [("e",), ("e",)] and "bad" not in hub.handlers()
    assert sum("handler bug" in r.getMessage() or "bad" in r.getMessage()
               for r in caplog.records) == 1   # reported once


def test_span():
    hub, seen = TelemetryHub(), []
    hub.attach_many("s", [("op", "start"), ("op", "stop"), ("op", "exception")],
                    lambda e, m, md, c: seen.append((e[-1], sorted(m), md.get("kind"))))
    with hub.span(("op",), {"a": 1}):
        pass
    with pytest.raises(KeyError):
        with hub.span(("op",)):
            raise KeyError("x")
    assert seen == [("start", ["system_time"], None), ("stop", ["duration"], None),
                    ("start", ["system_time"], None), ("exception", ["duration"], "KeyError")]
