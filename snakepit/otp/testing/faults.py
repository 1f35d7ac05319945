"""Fault schedules: what to break, when. ``fault_schedules`` is a hypothesis strategy;
hypothesis is imported only when it is called (it is a test dependency, not a runtime one).

    @hypothesis.given(testing.fault_schedules(["a", "b", "c"], max_faults=8))
    def test_my_tree(schedule):          # e.g. [Fault(0.5, 'b', 'crash'), Fault(0.0, 'a', 'normal')]
        ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Hashable, Sequence

import attrs

from snakepit.otp.testing.probes import FAULT_KINDS

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


def _check_delay(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"Fault.delay must be a number of seconds >= 0, got {value!r}")


def _check_kind(instance: Any, attribute: Any, value: Any) -> None:
    if value not in FAULT_KINDS:
        raise ValueError(f"Fault.kind must be one of {FAULT_KINDS}, got {value!r}")


@attrs.frozen(repr=False)
class Fault:
    """``delay`` seconds after the previous fault was applied (and the tree settled), the
    running incarnation of probe ``child`` exits: ``"crash"`` (raises), ``"normal"`` (returns)
    or ``"shutdown"`` (raises ``otp.Shutdown``)."""

    delay: float = attrs.field(validator=_check_delay)
    child: Hashable
    kind: str = attrs.field(default="crash", validator=_check_kind)

    def __repr__(self) -> str:
        return f"Fault({self.delay!r}, {self.child!r}, {self.kind!r})"


def fault_schedules(ids: Sequence[Hashable], *, max_faults: int = 10, max_gap: float = 5.0,
                    kinds: Sequence[str] = ("crash", "normal")) -> "SearchStrategy[list[Fault]]":
    """Lists of up to ``max_faults`` faults on the probes ``ids``; each delay is one of 21
    steps from 0 to ``max_gap`` seconds, so that examples (and their shrinks: fewer faults,
    zero delays, the first id, the first kind) stay readable."""
    from hypothesis import strategies as st   # lazily: `import snakepit.otp` must not need it

    ids = list(ids)
    if not ids:
        raise ValueError("fault_schedules needs at least one probe id, got none")
    if isinstance(max_faults, bool) or not isinstance(max_faults, int) or max_faults < 0:
        raise ValueError(f"max_faults must be an int >= 0, got {max_faults!r}")
    if isinstance(max_gap, bool) or not isinstance(max_gap, (int, float)) or not max_gap >= 0:
        raise ValueError(f"max_gap must be a number of seconds >= 0, got {max_gap!r}")
    bad = [k for k in kinds if k not in FAULT_KINDS]
    if bad or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {FAULT_KINDS}, got {kinds!r}")
    delays = st.integers(0, 20).map(lambda step: round(step * max_gap / 20, 9))
    fault = st.builds(Fault, delay=delays, child=st.sampled_from(ids),
                      kind=st.sampled_from(list(kinds)))
    return st.lists(fault, max_size=max_faults)
