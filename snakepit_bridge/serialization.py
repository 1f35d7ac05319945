"""JSON + named blobs: how values cross the wire (host and worker share this module).

    data, blobs = encode({"image": png_bytes, "x": np.arange(3)})
    decode(data, blobs)   # -> {"image": b"...", "x": array([0, 1, 2])}

Values are orjson-encoded. ``bytes`` and numpy arrays are not put in the JSON: each becomes a
``Blob`` (raw bytes + dtype + shape) in a side map, and the JSON holds ``{"__blob__": name}`` in
its place. With a sink for large blobs (``large=``, or the context's ``LARGE``: the pipe
transport's shared memory, ``snakepit_bridge.shm``), a buffer of ``large.threshold`` bytes or
more is handed to it as it is (no copy here) and its Blob carries only the name the sink
gives (``shm_name``, ``shm_size``). Nothing is ever pickled. numpy is optional, and imported only when an array blob is
decoded (encoding never imports it: an array exists only once numpy is loaded); without numpy,
array blobs decode to a dict ``{"dtype", "shape", "data"}``.

A value either arrives as it was sent or is refused by ``encode``, with the path of the part
that has no exact form (protos/README.md §3 lists the rules):

    encode({"x": [1, {"y": float("nan")}]}, root="args")
    # Unserializable: args["x"][1]["y"]: nan has no JSON form; send it inside a numpy ...

Non-finite floats, non-string dict keys, integers outside 64 bits, strings with lone
surrogates, a dict whose only key is ``"__blob__"``, structured numpy dtypes and object arrays
are refused. Finding the path walks the value in Python, so it is done only when the orjson
pass failed or its output hides a problem (orjson writes NaN and ±inf as ``null``: a value
whose JSON has a null is checked again by the standard library's C encoder, which refuses
them).
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime
import enum
import json
import math
import sys
import uuid
from typing import Any, Mapping, Protocol

import orjson

from snakepit_bridge.proto import bridge_pb2 as pb

BLOB_KEY = "__blob__"
JSONDecodeError = orjson.JSONDecodeError   # what decode raises for bytes that are not JSON
_BLOB_REF = b'"__blob__"'
_OPTS = orjson.OPT_NON_STR_KEYS   # dumps() only: details and metadata are for people to read
MAX_DEPTH = 254                    # orjson's nesting limit
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1


class LargeBlobs(Protocol):
    """Where buffers of ``threshold`` bytes or more go instead of ``Blob.data``."""

    threshold: int

    def put(self, source: Any, size: int) -> str:
        """Take ``source`` (bytes-like or a numpy array, any layout): the name for
        ``Blob.shm_name``."""

    def drop(self, name: str) -> None:
        """Forget what ``put`` made (its message will not be sent)."""


#: The sink ``encode`` uses when given none: set by the pipe worker for its own requests.
LARGE: contextvars.ContextVar[LargeBlobs | None] = contextvars.ContextVar(
    "snakepit_large_blobs", default=None)


def _numpy_loaded() -> Any:
    """numpy if this process has imported it, else None. A value can only be a numpy array or
    scalar once numpy is imported, so encoding never imports it (a worker that never sees an
    array never pays for numpy's import)."""
    return sys.modules.get("numpy")


def _numpy_for_decoding() -> Any:
    """numpy, imported now if need be (an array blob has arrived); None where it is absent."""
    np = sys.modules.get("numpy")
    if np is None:
        try:
            import numpy as np
        except ImportError:  # pragma: no cover - exercised where numpy is absent
            return None
    return np


class Unserializable(TypeError):
    """A value that has no exact JSON or blob form. ``type_name`` names its type, ``path``
    where it is in the encoded value (``args["x"][3]``, empty when not known), ``reason`` why
    it is refused."""

    def __init__(self, type_name: str, reason: str = "", path: str = "") -> None:
        self.type_name, self.path = type_name, path
        self.reason = reason or (f"values of type {type_name} cannot be sent (JSON values, "
                                 f"bytes, numpy arrays, dataclasses, attrs and pydantic models "
                                 f"can)")
        shown = path if len(path) <= 160 else f"{path[:100]}...{path[-50:]}"
        super().__init__(f"{shown}: {self.reason}" if path else self.reason)

    def at(self, path: str) -> "Unserializable":
        return Unserializable(self.type_name, self.reason, path)


def _array_problem(arr: Any) -> str | None:
    if arr.dtype.hasobject:
        return "a numpy object array has no wire form (nothing is pickled)"
    if arr.dtype.names is not None or arr.dtype.kind == "V":
        return (f"numpy dtype {arr.dtype} is structured or void: its field names have no wire "
                f"form; send each field as an array of its own")
    return None


def _convert(obj: Any) -> Any:
    """The JSON form of a value orjson does not know, other than a blob."""
    np = _numpy_loaded()
    if np is not None and isinstance(obj, np.generic):
        if isinstance(obj, np.void):
            raise Unserializable(type(obj).__qualname__, _array_problem(np.asarray(obj)) or "")
        return obj.item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (datetime.timedelta,)):
        return obj.total_seconds()
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if hasattr(obj, "__attrs_attrs__"):
        import attrs
        return attrs.asdict(obj, recurse=False)
    if hasattr(obj, "model_dump") and callable(obj.model_dump):  # pydantic v2
        return obj.model_dump()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    raise Unserializable(type(obj).__qualname__)


def _blob_default(blobs: dict[str, pb.Blob], large: LargeBlobs | None = None) -> Any:
    def default(obj: Any) -> Any:
        if isinstance(obj, (bytes, bytearray, memoryview)):
            name = f"b{len(blobs)}"
            size = obj.nbytes if isinstance(obj, memoryview) else len(obj)
            if large is not None and size >= large.threshold:
                blobs[name] = pb.Blob(shm_name=large.put(obj, size), shm_size=size)
            else:
                blobs[name] = pb.Blob(data=bytes(obj))
            return {BLOB_KEY: name}
        np = _numpy_loaded()
        if np is not None and isinstance(obj, np.ndarray):
            problem = _array_problem(obj)
            if problem:
                raise Unserializable("ndarray", problem)
            name = f"b{len(blobs)}"
            if large is not None and obj.nbytes >= large.threshold:   # any layout: C order
                blobs[name] = pb.Blob(shm_name=large.put(obj, obj.nbytes), shm_size=obj.nbytes,
                                      dtype=obj.dtype.str, shape=list(obj.shape))
                return {BLOB_KEY: name}
            # not ascontiguousarray: it turns a 0-d array into shape (1,)
            arr = obj if obj.flags.c_contiguous else np.ascontiguousarray(obj)
            blobs[name] = pb.Blob(data=arr.tobytes(), dtype=arr.dtype.str, shape=list(arr.shape))
            return {BLOB_KEY: name}
        return _convert(obj)
    return default


def _key(key: str) -> str:
    return "[" + orjson.dumps(key).decode() + "]"


def _locate(value: Any, path: str, depth: int = 0) -> Unserializable | None:
    """The first part of ``value`` that ``encode`` refuses, with its path; None if all is
    well. Mirrors what orjson and ``_blob_default`` do with each type."""
    if depth > MAX_DEPTH:
        return Unserializable(type(value).__qualname__,
                              f"nested deeper than {MAX_DEPTH} levels (or circular)", path)
    if value is None or isinstance(value, bool):
        return None
    np = _numpy_loaded()
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return Unserializable("str", "a string with a lone surrogate has no UTF-8 form",
                                  path)
        return None
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            return Unserializable("int", f"{value} is outside the 64-bit range JSON readers "
                                         f"share; send it as a string", path)
        return None
    if type(value) is float or (np is not None and isinstance(value, np.floating)):
        if not math.isfinite(value):
            return Unserializable(type(value).__qualname__, f"{value} has no JSON form; send "
                                  f"it inside a numpy array (a blob) or as a string", path)
        return None
    if isinstance(value, dict):
        if len(value) == 1 and BLOB_KEY in value:
            return Unserializable("dict", f"an object whose only key is {BLOB_KEY!r} is "
                                          f"reserved for blob references", path)
        for k, v in value.items():
            if not isinstance(k, str):
                return Unserializable(type(k).__qualname__, f"dict key {k!r} is not a "
                                      f"string (JSON object keys are)", path or "(root)")
            found = _locate(k, f"{path} key") or _locate(v, path + _key(k), depth + 1)
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _locate(v, f"{path}[{i}]", depth + 1)
            if found:
                return found
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return None
    if np is not None and isinstance(value, np.ndarray):
        problem = _array_problem(value)
        return Unserializable("ndarray", problem, path) if problem else None
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time, uuid.UUID)):
        return None
    try:
        converted = _convert(value)
    except Unserializable as exc:
        return exc.at(path)
    return _locate(converted, path, depth + 1)


def check(value: Any, *, root: str = "value") -> None:
    """Raise the :class:`Unserializable` that ``encode`` would, without encoding (a Python
    walk of ``value``: for values kept to be sent later, not for every message)."""
    found = _locate(value, root)
    if found is not None:
        raise found


def encode(value: Any, *, root: str = "value", large: LargeBlobs | None = None
           ) -> tuple[bytes, dict[str, pb.Blob]]:
    """``value`` as (JSON bytes, blobs). Raises :class:`Unserializable` naming the path of a
    part with no exact form, starting at ``root`` (``args["x"][3]``). Large buffers go to
    ``large`` (default: the context's ``LARGE``); what it took is dropped again if encoding
    fails."""
    data = encode_plain(value)
    if data is not None:
        return data, {}
    large = large if large is not None else LARGE.get()
    blobs: dict[str, pb.Blob] = {}
    try:
        return _encode(value, root, blobs, large)
    except BaseException:
        _drop(blobs, large)
        raise


def encode_plain(value: Any) -> bytes | None:
    """``value``'s JSON when it needs nothing but plain JSON (no blobs, no conversions, no
    null to check for NaN), as :func:`encode` would give it; None otherwise. Most values: no
    hook is made or called for them."""
    try:
        data = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return None
    # (count, not `in`: `in` costs twice as much on these short bytes, measured)
    if data.count(b"null") or data.count(_BLOB_REF):
        return None
    return data


def _drop(blobs: dict[str, pb.Blob], large: LargeBlobs | None) -> None:
    for blob in blobs.values():
        if large is not None and blob.shm_name:
            large.drop(blob.shm_name)
    blobs.clear()


def _encode(value: Any, root: str, blobs: dict[str, pb.Blob], large: LargeBlobs | None
            ) -> tuple[bytes, dict[str, pb.Blob]]:
    try:
        data = orjson.dumps(value, default=_blob_default(blobs, large))
    except orjson.JSONEncodeError as exc:
        cause = exc.__cause__
        if isinstance(cause, OSError):   # the sink could not take a blob (tmpfs full)
            # no reference cycle (orjson's error <-> it, this frame <-> it) may keep this
            # frame's value (arrays, mapped segments) alive until a garbage collection
            exc.__cause__ = exc.__context__ = None
            try:
                raise cause from None
            finally:
                cause = None
        found = _locate(value, root)
        if found is not None:
            raise found from None
        if "Dict key must be str" not in str(exc):
            if isinstance(cause, Unserializable):
                raise cause.at(root) from None
            raise Unserializable(type(value).__qualname__, str(exc), root) from None
        # every key is a str, some of a subclass (a str Enum): orjson wants the option for those
        _drop(blobs, large)
        data = orjson.dumps(value, default=_blob_default(blobs, large), option=_OPTS)
    # orjson writes NaN and +-inf as null: where there is a null, the C encoder of the standard
    # library (which can refuse them) checks at C speed, and only a value it refuses is walked
    # in Python for the path. A user's {"__blob__": ...} shows as one reference too many.
    suspect = data.count(_BLOB_REF) != len(blobs)
    if not suspect and b"null" in data:
        try:
            _FINITE.encode(value)
        except Exception:
            suspect = True
    if suspect:
        found = _locate(value, root)
        if found is not None:
            raise found
    return data, blobs


def _finite_default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview, datetime.date, datetime.time, uuid.UUID)):
        return None
    np = _numpy_loaded()
    if np is not None and isinstance(obj, np.ndarray):
        return None
    return _convert(obj)


_FINITE = json.JSONEncoder(allow_nan=False, check_circular=False, default=_finite_default)


def dumps(value: Any) -> bytes:
    """Plain JSON (no blobs) — for details, metadata and the like."""
    return orjson.dumps(value, default=_plain_default, option=_OPTS)


def _plain_default(obj: Any) -> Any:
    try:
        return _blob_default({})(obj)
    except Unserializable:
        return repr(obj)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data) if data else None


def blob_value(blob: pb.Blob) -> Any:
    if blob.shm_name.startswith("pending-"):   # never sent: decoded in the process it was made
        from snakepit_bridge import shm
        source = shm.claim_pending(blob)
        np = _numpy_for_decoding() if blob.dtype else None
        if np is not None and isinstance(source, np.ndarray):
            return source.copy(order="C")   # as it would have arrived
        data = source.tobytes() if isinstance(source, memoryview) else bytes(source)
    elif blob.shm_name:   # the pipe transport's shared memory (snakepit_bridge.shm)
        from snakepit_bridge import shm
        mapped = shm.take(blob.shm_name, blob.shm_size)
        np = _numpy_for_decoding() if blob.dtype else None
        if np is not None:   # a private mapping: writable, no copy
            return np.frombuffer(mapped, dtype=np.dtype(blob.dtype)).reshape(tuple(blob.shape))
        data = bytes(mapped)
        mapped.close()
    else:
        data = blob.data
    if not blob.dtype:
        return bytes(data)
    np = _numpy_for_decoding()
    if np is None:
        return {"dtype": blob.dtype, "shape": list(blob.shape), "data": bytes(data)}
    arr = np.frombuffer(data, dtype=np.dtype(blob.dtype))
    return arr.reshape(tuple(blob.shape)).copy()


def decode(data: bytes, blobs: Mapping[str, pb.Blob] | None = None) -> Any:
    """The value of (JSON bytes, blobs); empty bytes are ``None``."""
    value = orjson.loads(data) if data else None
    if blobs:
        return _restore(value, blobs)
    return value


def _restore(value: Any, blobs: Mapping[str, pb.Blob]) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and BLOB_KEY in value:
            name = value[BLOB_KEY]
            if not isinstance(name, str) or name not in blobs:
                raise ValueError(f"JSON refers to blob {name!r}, which the message lacks")
            return blob_value(blobs[name])
        return {k: _restore(v, blobs) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v, blobs) for v in value]
    return value
