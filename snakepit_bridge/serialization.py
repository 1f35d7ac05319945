"""JSON + named blobs: how values cross the wire (host and worker share this module).

    data, blobs = encode({"image": png_bytes, "x": np.arange(3)})
    decode(data, blobs)   # -> {"image": b"...", "x": array([0, 1, 2])}

Values are orjson-encoded. ``bytes`` and numpy arrays are not put in the JSON: each becomes a
``Blob`` (raw bytes + dtype + shape) in a side map, and the JSON holds ``{"__blob__": name}`` in
its place. Nothing is ever pickled. numpy is optional: without it, array blobs decode to a dict
``{"dtype", "shape", "data"}``.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from typing import Any, Mapping

import orjson

from snakepit_bridge.proto import bridge_pb2 as pb

BLOB_KEY = "__blob__"
JSONDecodeError = orjson.JSONDecodeError   # what decode raises for bytes that are not JSON
_OPTS = orjson.OPT_NON_STR_KEYS

_np: Any
try:  # numpy stays optional
    import numpy as _np
except ImportError:  # pragma: no cover - exercised where numpy is absent
    _np = None


class Unserializable(TypeError):
    """A value that has no JSON or blob form; ``type_name`` names its type."""

    def __init__(self, type_name: str) -> None:
        super().__init__(f"values of type {type_name} cannot be sent (JSON values, bytes, "
                         f"numpy arrays, dataclasses, attrs and pydantic models can)")
        self.type_name = type_name


def _blob_default(blobs: dict[str, pb.Blob]) -> Any:
    def default(obj: Any) -> Any:
        if isinstance(obj, (bytes, bytearray, memoryview)):
            name = f"b{len(blobs)}"
            blobs[name] = pb.Blob(data=bytes(obj))
            return {BLOB_KEY: name}
        if _np is not None:
            if isinstance(obj, _np.ndarray):
                name = f"b{len(blobs)}"
                arr = _np.ascontiguousarray(obj)
                if arr.dtype.hasobject:
                    raise Unserializable("numpy object array")
                blobs[name] = pb.Blob(data=arr.tobytes(), dtype=arr.dtype.str,
                                      shape=list(arr.shape))
                return {BLOB_KEY: name}
            if isinstance(obj, _np.generic):
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
    return default


def encode(value: Any) -> tuple[bytes, dict[str, pb.Blob]]:
    """``value`` as (JSON bytes, blobs). Raises :class:`Unserializable` naming a bad type."""
    blobs: dict[str, pb.Blob] = {}
    try:
        data = orjson.dumps(value, default=_blob_default(blobs), option=_OPTS)
    except orjson.JSONEncodeError as exc:
        cause = exc.__cause__
        if isinstance(cause, Unserializable):
            raise cause from None
        raise Unserializable(f"{type(value).__qualname__} ({exc})") from None
    return data, blobs


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
    if blob.shm_name:   # the pipe transport's shared memory (snakepit_bridge.shm)
        from snakepit_bridge import shm
        mapped = shm.take(blob.shm_name, blob.shm_size)
        if blob.dtype and _np is not None:   # a private mapping: writable, no copy
            return _np.frombuffer(mapped, dtype=_np.dtype(blob.dtype)).reshape(
                tuple(blob.shape))
        data = bytes(mapped)
        mapped.close()
    else:
        data = blob.data
    if not blob.dtype:
        return bytes(data)
    if _np is None:
        return {"dtype": blob.dtype, "shape": list(blob.shape), "data": bytes(data)}
    arr = _np.frombuffer(data, dtype=_np.dtype(blob.dtype))
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
            if name not in blobs:
                raise ValueError(f"JSON refers to blob {name!r}, which the message lacks")
            return blob_value(blobs[name])
        return {k: _restore(v, blobs) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v, blobs) for v in value]
    return value
