"""The one exception the emulator's handlers raise to answer with an HTTP error."""

from __future__ import annotations


class ApiError(Exception):
    """Answer with ``status`` and ``{"message": message}`` (or the legacy envelope on ``/public``)."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after
