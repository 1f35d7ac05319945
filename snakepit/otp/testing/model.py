"""OTP's restart rules as a plain reference model: no trio, no time but the one it is given.

    model = testing.Model(["a", "b", "c"], strategy="rest_for_one",
                          max_restarts=3, max_seconds=5.0)
    model.apply("b", "crash", now=1.0)      # True: b was running, the fault applied
    model.incarnations()                    # {"a": 1, "b": 2, "c": 2}
    model.events                            # [("stop", "c"), ("start", "b"), ("start", "c")]
    model.alive                             # False once more than max_restarts in max_seconds

``children`` is a list of ids (all permanent) or a mapping id -> restart type
(``"permanent" | "transient" | "temporary"``) or id -> a nested ``Model`` (a permanent nested
supervisor). Written independently of the supervisor's own policy code on purpose: it is
what the supervisor is checked against.
"""

from __future__ import annotations

from typing import Any, Hashable, Iterable, Mapping

from snakepit.otp.spec import Restart, Strategy, parse_enum

Event = tuple[str, Hashable]


class Model:
    def __init__(self, children: Iterable[Hashable] | Mapping[Hashable, Any], *,
                 strategy: str | Strategy = "one_for_one", max_restarts: int = 3,
                 max_seconds: float = 5.0) -> None:
        if isinstance(children, Mapping):
            specs = {c: _spec(c, kind) for c, kind in children.items()}
        elif isinstance(children, (str, bytes)):
            raise TypeError(f"Model children must be a list of ids or a mapping, "
                            f"got {children!r}")
        else:
            ids = list(children)
            if len(set(ids)) != len(ids):
                raise ValueError(f"Model children ids must be unique, got {ids!r}")
            specs = {c: Restart.PERMANENT for c in ids}
        self._initial: dict[Hashable, Restart | Model] = specs
        self.specs = dict(specs)
        self.strategy: Strategy = parse_enum(Strategy, strategy, "Model strategy")
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) \
                or max_restarts < 0:
            raise ValueError(f"Model max_restarts must be an int >= 0, got {max_restarts!r}")
        if isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float)) \
                or not max_seconds > 0:
            raise ValueError(f"Model max_seconds must be a number > 0, got {max_seconds!r}")
        self.max_restarts, self.max_seconds = max_restarts, float(max_seconds)
        leaves = self.leaves()
        if len(set(leaves)) != len(leaves):
            raise ValueError(f"Model leaf ids must be unique across the tree, got {leaves!r}")
        self._inc: dict[Hashable, int] = {}
        self.events: list[Event] = []
        self.reset()

    # -- state ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to a freshly started tree: every child running its first incarnation."""
        self.specs = dict(self._initial)   # forget children added by start_child
        self._inc = {leaf: 0 for leaf in self.leaves()}
        self.events = []
        self._start_fresh(self.events, self._inc)
        self.events.clear()

    def leaves(self) -> list[Hashable]:
        """Every probe id of the tree, in start order."""
        out: list[Hashable] = []
        for c, spec in self.specs.items():
            out.extend(spec.leaves() if isinstance(spec, Model) else [c])
        return out

    def incarnations(self) -> dict[Hashable, int]:
        """How many times each probe has been started."""
        return dict(self._inc)

    def is_running(self, leaf: Hashable) -> bool:
        owner = self._owner(leaf)
        return owner is not None and leaf in owner.running

    # -- faults --------------------------------------------------------------------------
    def apply(self, leaf: Hashable, kind: str, now: float) -> bool:
        """The probe ``leaf`` exits (``"crash" | "normal" | "shutdown"``) at ``now``; returns
        False (and changes nothing) when it is not running. ``events`` holds this step's
        stops and starts."""
        if kind not in ("crash", "normal", "shutdown"):
            raise ValueError(f"fault kind must be 'crash', 'normal' or 'shutdown', got {kind!r}")
        self.events = []
        path = self._path(leaf)
        if path is None or not self.alive or leaf not in path[-1].running:
            return False
        child, exit_kind = leaf, kind
        for model in reversed(path):           # a nested supervisor that gives up crashes
            if not model._exit(child, exit_kind, now, self.events, self._inc):
                break
            if model is self:
                break
            child, exit_kind = model._id_in(path[path.index(model) - 1]), "crash"
        return True

    # -- what a SupervisorHandle does (on the root's own children) ------------------------
    def terminate_child(self, c: Hashable) -> None:
        """``handle.terminate_child(c)``: stop it; a temporary child is forgotten."""
        self.events = []
        if c in self.running:
            self._stop(c, self.events)
        if self._restart_type(c) is Restart.TEMPORARY:
            self.order.remove(c)

    def restart_child(self, c: Hashable) -> None:
        """``handle.restart_child(c)`` of a terminated child: start it again."""
        self.events = []
        self._start(c, self.events, self._inc)

    def start_child(self, c: Hashable, restart: str | Restart = "permanent") -> None:
        """``handle.start_child(ChildSpec(id=c, ...))``: a new child at the end."""
        if c in self.specs:
            raise ValueError(f"Model already has a child {c!r}")
        self.specs[c] = _spec(c, restart)
        self._inc[c] = 0
        self.order.append(c)
        self.events = []
        self._start(c, self.events, self._inc)

    # -- the rules -----------------------------------------------------------------------
    def _exit(self, c: Hashable, kind: str, now: float, events: list[Event],
              inc: dict[Hashable, int]) -> bool:
        """Child ``c`` exited by itself; True when this supervisor gives up."""
        self.running.discard(c)
        restart = self._restart_type(c)
        restarted = restart is Restart.PERMANENT or (restart is Restart.TRANSIENT
                                                     and kind == "crash")
        if not restarted:
            if restart is Restart.TEMPORARY:
                self.order.remove(c)
            return False
        self.times.append(now)
        if any(sum(1 for u in self.times if s <= u <= s + self.max_seconds) > self.max_restarts
               for s in self.times):
            self.alive = False
            self._stop_all(events)
            return True
        pos = self.order.index(c)
        affected = {Strategy.ONE_FOR_ONE: [c], Strategy.ONE_FOR_ALL: list(self.order),
                    Strategy.REST_FOR_ONE: self.order[pos:]}[self.strategy]
        for d in reversed(self.order):
            if d in affected and d != c and d in self.running:
                self._stop(d, events)
        for d in list(self.order):
            if d in affected and d != c and self._restart_type(d) is Restart.TEMPORARY:
                self.order.remove(d)
        for d in list(self.order):
            if d in affected:
                self._start(d, events, inc)
        return False

    def _start_fresh(self, events: list[Event], inc: dict[Hashable, int]) -> None:
        self.order = list(self.specs)
        self.running: set[Hashable] = set()
        self.times: list[float] = []
        self.alive = True
        for c in self.order:
            self._start(c, events, inc)

    def _start(self, c: Hashable, events: list[Event], inc: dict[Hashable, int]) -> None:
        spec = self.specs[c]
        if isinstance(spec, Model):
            spec._start_fresh(events, inc)
        else:
            inc[c] += 1
            events.append(("start", c))
        self.running.add(c)

    def _stop(self, c: Hashable, events: list[Event]) -> None:
        spec = self.specs[c]
        if isinstance(spec, Model):
            spec._stop_all(events)
        else:
            events.append(("stop", c))
        self.running.discard(c)

    def _stop_all(self, events: list[Event]) -> None:
        for c in reversed(self.order):
            if c in self.running:
                self._stop(c, events)

    def _restart_type(self, c: Hashable) -> Restart:
        spec = self.specs[c]
        return Restart.PERMANENT if isinstance(spec, Model) else spec

    # -- where a probe lives -------------------------------------------------------------
    def _path(self, leaf: Hashable) -> list["Model"] | None:
        """The models from the root down to the one holding ``leaf``, all currently running
        their nested child; None when ``leaf`` is not in a running part of the tree."""
        if leaf in self.specs and not isinstance(self.specs[leaf], Model):
            return [self]
        for c, spec in self.specs.items():
            if isinstance(spec, Model) and c in self.running:
                sub = spec._path(leaf)
                if sub is not None:
                    return [self, *sub]
        return None

    def _owner(self, leaf: Hashable) -> "Model | None":
        path = self._path(leaf)
        return path[-1] if path else None

    def _id_in(self, parent: "Model") -> Hashable:
        return next(c for c, spec in parent.specs.items() if spec is self)

    def __repr__(self) -> str:
        kinds = {c: (s if isinstance(s, Model) else s.value) for c, s in self.specs.items()}
        return (f"Model({kinds!r}, strategy={self.strategy.value!r}, "
                f"max_restarts={self.max_restarts}, max_seconds={self.max_seconds})")


def _spec(c: Hashable, kind: Any) -> Restart | Model:
    if isinstance(kind, Model):
        return kind
    return parse_enum(Restart, kind, f"Model restart type of {c!r}")  # type: ignore[no-any-return]
