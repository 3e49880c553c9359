"""The hook's own retry loop, driven with the SDK's real exception classes and a fake clock."""

from __future__ import annotations

import pytest
from encord.exceptions import (
    AuthorisationError,
    InvalidArgumentsError,
    RateLimitExceededError,
    RequestException,
    UnknownException,
)

from encord_provider.retries import RetryPolicy, call_with_retries


class FakeTime:
    """A clock that only moves when the retry loop sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def failing(errors: list[Exception], result: str = "ok"):
    calls = []

    def call() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return result

    return call, calls


def test_transient_errors_are_retried_with_backoff_and_retry_after() -> None:
    time = FakeTime()
    call, calls = failing(
        [UnknownException("503"), RateLimitExceededError(retry_after=7), RequestException("reset")]
    )
    policy = RetryPolicy(base_delay_s=1, max_delay_s=30)
    assert call_with_retries(call, policy=policy, what="x", sleep=time.sleep, clock=time.clock) == "ok"
    assert len(calls) == 4
    assert time.sleeps == [1.0, 7.0, 4.0]


@pytest.mark.parametrize("error", [InvalidArgumentsError("400"), AuthorisationError("403")])
def test_other_client_errors_are_never_retried(error: Exception) -> None:
    time = FakeTime()
    call, calls = failing([error])
    with pytest.raises(type(error)):
        call_with_retries(call, policy=RetryPolicy(), what="x", sleep=time.sleep, clock=time.clock)
    assert len(calls) == 1
    assert time.sleeps == []


def test_attempts_are_bounded() -> None:
    time = FakeTime()
    call, calls = failing([UnknownException("500") for _ in range(10)])
    with pytest.raises(UnknownException):
        call_with_retries(
            call, policy=RetryPolicy(max_attempts=3, base_delay_s=0.5), what="x", sleep=time.sleep
        )
    assert len(calls) == 3
    assert time.sleeps == [0.5, 1.0]


def test_total_time_is_bounded_even_when_the_server_asks_for_more() -> None:
    time = FakeTime()
    call, calls = failing([RateLimitExceededError(retry_after=20), RateLimitExceededError(retry_after=50)])
    policy = RetryPolicy(max_attempts=10, max_total_s=60, base_delay_s=1)
    with pytest.raises(RateLimitExceededError):
        call_with_retries(call, policy=policy, what="x", sleep=time.sleep, clock=time.clock)
    assert len(calls) == 2
    assert time.sleeps == [20.0]


def test_policy_accepts_its_dict_form() -> None:
    assert RetryPolicy.of({"max_attempts": 2}).max_attempts == 2
    assert RetryPolicy.of(None) == RetryPolicy()
    with pytest.raises(ValueError, match="max_attemps"):
        RetryPolicy.of({"max_attemps": 2})
