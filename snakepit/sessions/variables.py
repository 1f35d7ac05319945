"""Typed session variables: types, constraints and their validation.

    spec = VariableSpec.make("temperature", "float", 0.7, {"min": 0.0, "max": 2.0})
    spec.validate(3.0)    # InvalidVariable: rule 'max'

Types: ``float``, ``integer``, ``string``, ``boolean``, ``choice``, ``list``, ``tensor``,
``embedding``. Constraints: ``min`` / ``max`` (numbers), ``choices`` (choice), ``max_length``
(string, list, embedding), ``shape`` (tensor). Tensors and embeddings larger than
``BLOB_THRESHOLD`` bytes are kept as numpy arrays, so they travel and persist as binary blobs.
"""

from __future__ import annotations

from typing import Any

import attrs

from snakepit.errors import InvalidVariable
from snakepit_bridge import serialization

TYPES = ("float", "integer", "string", "boolean", "choice", "list", "tensor", "embedding")
CONSTRAINTS = {"min", "max", "choices", "max_length", "shape"}
BLOB_THRESHOLD = 10 * 1024


def _fail(name: str, rule: str, message: str, value: Any = None) -> InvalidVariable:
    return InvalidVariable(f"variable {name!r}: {message}",
                           details={"variable": name, "rule": rule, "value": repr(value)[:200]})


def _shape(value: Any) -> tuple[int, ...]:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return tuple(int(d) for d in shape)
    dims: list[int] = []
    while isinstance(value, list):
        dims.append(len(value))
        value = value[0] if value else None
    return tuple(dims)


def _numbers(value: Any) -> bool:
    try:
        import numpy as np
        if isinstance(value, np.ndarray):
            return bool(np.issubdtype(value.dtype, np.number))
    except ImportError:
        pass
    if isinstance(value, list):
        return all(_numbers(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _compact(value: Any) -> Any:
    """Large numeric arrays become numpy arrays (blobs on the wire and on disk)."""
    try:
        import numpy as np
    except ImportError:
        return value
    arr = np.asarray(value, dtype=float) if isinstance(value, list) else value
    if isinstance(arr, np.ndarray) and arr.nbytes > BLOB_THRESHOLD:
        return arr
    return value.tolist() if isinstance(value, np.ndarray) else value


@attrs.frozen
class VariableSpec:
    name: str
    type: str
    constraints: dict[str, Any]

    @classmethod
    def make(cls, name: Any, type_: Any, constraints: Any) -> "VariableSpec":
        if not isinstance(name, str) or not name or len(name) > 128:
            raise _fail(str(name), "name", "a variable name must be 1-128 characters", name)
        if type_ not in TYPES:
            raise _fail(name, "type", f"type must be one of {', '.join(TYPES)}", type_)
        constraints = dict(constraints or {})
        unknown = set(constraints) - CONSTRAINTS
        if unknown:
            raise _fail(name, "constraints", f"unknown constraint(s) {sorted(unknown)}; "
                        f"known: {sorted(CONSTRAINTS)}", constraints)
        if type_ == "choice" and not isinstance(constraints.get("choices"), list):
            raise _fail(name, "choices", "a choice variable needs constraints['choices'] "
                        "(a list)", constraints.get("choices"))
        return cls(name=name, type=type_, constraints=constraints)

    def validate(self, value: Any) -> Any:
        """The value to store (normalized) or :class:`InvalidVariable` naming the rule."""
        t, c, n = self.type, self.constraints, self.name
        if t == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _fail(n, "type", f"expects a float, got {type(value).__name__}", value)
            value = float(value)
        elif t == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise _fail(n, "type", f"expects an integer, got {type(value).__name__}", value)
        elif t == "string":
            if not isinstance(value, str):
                raise _fail(n, "type", f"expects a string, got {type(value).__name__}", value)
        elif t == "boolean":
            if not isinstance(value, bool):
                raise _fail(n, "type", f"expects a boolean, got {type(value).__name__}", value)
        elif t == "choice":
            if value not in c["choices"]:
                raise _fail(n, "choices", f"must be one of {c['choices']}", value)
        elif t == "list":
            if not isinstance(value, (list, tuple)):
                raise _fail(n, "type", f"expects a list, got {type(value).__name__}", value)
            value = list(value)
        elif t in ("tensor", "embedding"):
            if hasattr(value, "tolist") and not hasattr(value, "shape"):
                value = value.tolist()
            if not (isinstance(value, list) or hasattr(value, "shape")) or not _numbers(value):
                raise _fail(n, "type", f"expects a numeric {t} (nested list or array)", value)
            if t == "embedding" and len(_shape(value)) != 1:
                raise _fail(n, "shape", "an embedding is one-dimensional", _shape(value))
            value = _compact(value)
        if "min" in c and isinstance(value, (int, float)) and value < c["min"]:
            raise _fail(n, "min", f"must be >= {c['min']}", value)
        if "max" in c and isinstance(value, (int, float)) and value > c["max"]:
            raise _fail(n, "max", f"must be <= {c['max']}", value)
        if "max_length" in c and hasattr(value, "__len__") and len(value) > c["max_length"]:
            raise _fail(n, "max_length", f"must have at most {c['max_length']} items", value)
        if "shape" in c and t == "tensor" and _shape(value) != tuple(c["shape"]):
            raise _fail(n, "shape", f"must have shape {tuple(c['shape'])}, got "
                        f"{_shape(value)}", value)
        try:    # what is stored must reach workers (and the sqlite file) exactly: no NaN
            serialization.check(value, root=n)
        except serialization.Unserializable as exc:
            raise _fail(n, "encodable", f"has no exact wire form: {exc}", value) from None
        return value
