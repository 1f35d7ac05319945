"""Log hygiene: secrets masked, payloads summarised.

    redact("GET https://bob:hunter2@example.com Authorization: Bearer abc.def")
    # -> 'GET https://bob:***@example.com Authorization: Bearer ***'
    summarize({"text": "x" * 10_000})     # -> "dict(1 keys, ~10 KB)"

Every ``snakepit.*`` log record (worker output included) passes through :class:`RedactingFilter`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

_PATTERNS = [
    (re.compile(r"(?i)\b(bearer|token)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 ***"),
    (re.compile(r"(?i)\b(authorization|x-api-key|api[_-]?key|secret|password|passwd|pwd|"
                r"access[_-]?token|x-snakepit-secret)(\"?\s*[:=]\s*)(\"?)[^\s\"',;&]+"),
     r"\1\2\3***"),
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@]+):[^@\s/]+@"), r"\1:***@"),
    (re.compile(r"\b(sk|pk|rk|ghp|gho|xox[abp])[-_][A-Za-z0-9_-]{12,}"), r"\1-***"),
]


def redact(text: str) -> str:
    """``text`` with values that look like credentials replaced by ``***``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def summarize(value: Any) -> str:
    """A payload's shape for a log line: its type and size, never its content."""
    try:
        size = len(repr(value)) if not isinstance(value, (bytes, bytearray)) else len(value)
    except Exception:
        size = -1
    if isinstance(value, dict):
        head = f"dict({len(value)} keys"
    elif isinstance(value, (list, tuple)):
        head = f"{type(value).__name__}({len(value)} items"
    elif isinstance(value, (bytes, bytearray)):
        head = f"bytes({len(value)}"
    else:
        head = f"{type(value).__name__}("
        return f"{head}~{_size(size)})"
    return f"{head}, ~{_size(size)})"


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n // 1024} KB"


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install(logger: logging.Logger) -> None:
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
