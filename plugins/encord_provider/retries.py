"""Bounded retries for the Encord calls the SDK does not retry itself (PATCH, folder create, job start).

Which errors are transient is read off the SDK's exception classes: it maps 400, 401, 403, 404,
405, 409 and 413 to their own classes (never retried here), 429 to ``RateLimitExceededError``
(retried, honouring ``Retry-After``), and every other status, in practice 5xx, to
``UnknownException`` (retried). Transport failures are ``encord.exceptions.RequestException``.
The SDK does not expose the numeric status of ``UnknownException``, so an unusual 4xx that the
SDK does not map (e.g. 422) is retried too, within the same bounds.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

T = TypeVar("T")


@functools.cache
def transient_errors() -> tuple[type[Exception], ...]:
    """The SDK's exception classes worth retrying (imported on first use, not when parsing DAGs)."""
    from encord.exceptions import (
        GenericServerError,
        RateLimitExceededError,
        RequestException,
        UnknownException,
    )

    return (RateLimitExceededError, UnknownException, GenericServerError, RequestException)


class RetryPolicy(BaseModel):
    """Exponential backoff bounded in attempts and in total time.

    The delay before attempt ``n`` (n >= 2) is ``base_delay_s * 2 ** (n - 2)`` capped at
    ``max_delay_s``, or the server's ``Retry-After`` when that is longer. No retry starts that
    would end past ``max_total_s`` after the first attempt.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=6, ge=1)
    max_total_s: float = Field(default=300.0, ge=0)
    base_delay_s: float = Field(default=1.0, ge=0)
    max_delay_s: float = Field(default=60.0, ge=0)

    @classmethod
    def of(cls, value: RetryPolicy | Mapping[str, Any] | None) -> RetryPolicy:
        """Accept a policy, its dict form (from operator arguments or trigger kwargs) or ``None``."""
        if value is None:
            return cls()
        if isinstance(value, RetryPolicy):
            return value
        return cls.model_validate(dict(value))

    def backoff(self, attempt: int) -> float:
        """Delay after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))


def is_transient(error: BaseException) -> bool:
    """True for errors worth retrying: rate limits, server errors, transport failures."""
    return isinstance(error, transient_errors())


def call_with_retries(
    call: Callable[[], T],
    *,
    policy: RetryPolicy,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``call``; on a transient error wait and try again within ``policy``; re-raise otherwise.

    ``what`` names the operation in log lines. A call that is not idempotent must check, on
    each attempt, whether an earlier attempt already took effect.
    """
    transient = transient_errors()
    started = clock()
    attempt = 1
    while True:
        try:
            return call()
        except transient as error:
            delay = policy.backoff(attempt)
            retry_after = getattr(error, "retry_after", None)
            if retry_after:
                delay = max(delay, float(retry_after))
            elapsed = clock() - started
            if attempt >= policy.max_attempts or elapsed + delay > policy.max_total_s:
                log.warning("%s failed after %d attempt(s) in %.1fs: %s", what, attempt, elapsed, error)
                raise
            log.info(
                "%s: transient %s on attempt %d, retrying in %.2fs",
                what,
                type(error).__name__,
                attempt,
                delay,
            )
            sleep(delay)
            attempt += 1
