"""Sessions, programs and typed variables (``app.sessions``)."""

from snakepit.sessions.store import Session, SessionStore, session_sweeper
from snakepit.sessions.variables import VariableSpec

__all__ = ["Session", "SessionStore", "VariableSpec", "session_sweeper"]
