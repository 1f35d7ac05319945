"""Worker telemetry reaches the host over StreamTelemetry; the host steers it at run time."""

import os
import queue
import sys
import threading

from snakepit_bridge import serialization
from snakepit_bridge.proto import bridge_pb2 as pb

sys.path.insert(0, os.path.dirname(__file__))
from worker_proc import MD, call, result, worker  # noqa: E402


class Stream:
    def __init__(self, stub, first):
        self.controls = queue.Queue()
        self.controls.put(first)
        self.events = queue.Queue()
        self.call = stub.StreamTelemetry(iter(self.controls.get, None), metadata=MD)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for ev in self.call:
                self.events.put(ev)
        except Exception:
            pass

    def next(self, timeout=5.0):
        return self.events.get(timeout=timeout)

    def close(self):
        self.call.cancel()
        self.controls.put(None)


def test_events_filters_and_sampling():
    with worker("bridge_adapters:TelemetryAdapter") as (_, _, stub):
        s = Stream(stub, pb.TelemetryControl(enabled=True, sampling_rate=1.0))

        def names_until(last):
            seen = []
            while not seen or seen[-1] != last:
                seen.append(".".join(s.next().event))
            return seen

        def control(**kw):
            s.controls.put(pb.TelemetryControl(enabled=True, **kw))
            return names_until("telemetry.configured")   # applied from here on

        try:
            names_until("telemetry.configured")
            assert result(call(stub, "emit", {"name": "model.loaded"}, correlation_id="c-1"))
            ev = s.next()
            assert list(ev.event) == ["model", "loaded"] and ev.worker_id == "test-1"
            assert ev.correlation_id == "c-1"
            assert serialization.loads(ev.measurements_json) == {"i": 0}
            result(call(stub, "spanned"))
            assert names_until("work.unit.stop") == ["work.unit.start", "work.unit.stop"]
            control(sampling_rate=1.0, deny=["noisy"])      # at run time, no restart
            result(call(stub, "emit", {"name": "noisy.event", "n": 5}))
            result(call(stub, "emit", {"name": "after.deny"}))
            assert names_until("after.deny") == ["after.deny"]
            control(sampling_rate=1.0, allow=["only"])
            result(call(stub, "emit", {"name": "other"}))
            result(call(stub, "emit", {"name": "only.this"}))
            assert names_until("only.this") == ["only.this"]
            control(sampling_rate=0.0)
            result(call(stub, "emit", {"name": "sampled.out", "n": 20}))
            assert control(sampling_rate=1.0) == ["telemetry.configured"]   # none sampled
            result(call(stub, "emit", {"name": "back"}))
            assert names_until("back") == ["back"]
        finally:
            s.close()


def test_emit_rejects_bad_names():
    import pytest

    from snakepit_bridge import telemetry
    with pytest.raises(ValueError, match="128"):
        telemetry.emit("x" * 200)
    with pytest.raises(ValueError):
        telemetry.emit("")
