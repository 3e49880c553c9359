"""EncordUploadJobTrigger: wait for upload jobs in the triggerer, then wake the operator once.

The SDK is synchronous, so building the hook (which imports the SDK) and each call run in a
thread (``asyncio.to_thread``): nothing blocks the triggerer's event loop. Each call is a
short long-poll (``poll_timeout_s``) so the trigger notices its absolute ``deadline`` and a
cancellation promptly. The one event it yields carries everything ``execute_complete`` needs:
the folder, and per chunk its URI, its job UUID and the job's outcome (counts, unit errors and
created items), or the reason waiting stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from encord_provider.hooks.encord import EncordHook
from encord_provider.registration import JobOutcome
from encord_provider.retries import RetryPolicy, is_transient

#: Consecutive transient polling failures tolerated before the trigger gives up.
MAX_POLL_FAILURES = 5


class EncordUploadJobTrigger(BaseTrigger):
    """Poll Encord upload jobs until all have ended or ``deadline`` (epoch seconds) has passed.

    :param jobs: ``[{"chunk_uri": ..., "job_uuid": ...}]``, waited for in order.
    :param hook_params: keyword arguments of :class:`EncordHook` (JSON-safe).
    """

    def __init__(
        self,
        *,
        encord_conn_id: str,
        folder_uuid: str,
        jobs: list[dict[str, str]],
        deadline: float,
        poll_timeout_s: int = 20,
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.encord_conn_id = encord_conn_id
        self.folder_uuid = folder_uuid
        self.jobs = [dict(job) for job in jobs]
        self.deadline = float(deadline)
        self.poll_timeout_s = int(poll_timeout_s)
        self.hook_params = dict(hook_params or {})

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "encord_conn_id": self.encord_conn_id,
                "folder_uuid": self.folder_uuid,
                "jobs": self.jobs,
                "deadline": self.deadline,
                "poll_timeout_s": self.poll_timeout_s,
                "hook_params": self.hook_params,
            },
        )

    async def _hook(self) -> EncordHook:
        """The hook, built in a thread: building it imports the SDK, seconds of CPU the first time."""
        connection = await EncordHook.aget_connection(self.encord_conn_id)
        return await asyncio.to_thread(
            EncordHook, self.encord_conn_id, connection=connection, **self.hook_params
        )

    def _event(
        self, status: str, outcomes: dict[str, JobOutcome], message: str | None = None
    ) -> TriggerEvent:
        jobs = [
            {
                **job,
                "outcome": outcomes[job["job_uuid"]].model_dump(mode="json")
                if job["job_uuid"] in outcomes
                else None,
            }
            for job in self.jobs
        ]
        return TriggerEvent(  # type: ignore[no-untyped-call]
            {"status": status, "folder_uuid": self.folder_uuid, "jobs": jobs, "message": message}
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        outcomes: dict[str, JobOutcome] = {}
        try:
            hook = await self._hook()
            for job in self.jobs:
                outcome = await self._wait(hook, job["job_uuid"])
                if outcome is None:
                    waited = f"{len(outcomes)}/{len(self.jobs)} job(s) ended"
                    yield self._event("timeout", outcomes, f"deadline passed; {waited}")
                    return
                outcomes[job["job_uuid"]] = outcome
        except Exception as exc:  # noqa: BLE001 (ends the trigger with an error event)
            yield self._event("error", outcomes, f"{type(exc).__name__}: {exc}")
            return
        yield self._event("done", outcomes)

    async def _wait(self, hook: EncordHook, job_uuid: str) -> JobOutcome | None:
        """The job's final outcome, or ``None`` once the deadline has passed."""
        failures = 0
        backoff = RetryPolicy.of(self.hook_params.get("retry"))
        while (remaining := self.deadline - time.time()) > 0:
            timeout_s = max(0, min(self.poll_timeout_s, int(remaining)))
            try:
                outcome = await asyncio.to_thread(
                    hook.get_upload_job, self.folder_uuid, job_uuid, timeout_s=timeout_s
                )
            except Exception as exc:
                failures += 1
                if not is_transient(exc) or failures >= MAX_POLL_FAILURES:
                    raise
                self.log.warning("Polling job %s failed (%s); retrying", job_uuid, type(exc).__name__)
                await asyncio.sleep(min(backoff.backoff(failures), max(0.0, remaining)))
                continue
            failures = 0
            if outcome.is_terminal:
                return outcome
            self.log.info(
                "Encord job %s: %d pending, %d done, %d failed",
                job_uuid,
                outcome.units_pending,
                outcome.units_done,
                outcome.units_error,
            )
            if timeout_s == 0:
                await asyncio.sleep(min(1.0, max(0.0, remaining)))
        return None

    async def on_kill(self) -> None:
        """The user killed the task: cancel the jobs, so nothing keeps registering behind its back."""
        hook = await self._hook()
        for job in self.jobs:
            try:
                await asyncio.to_thread(hook.cancel_upload_job, self.folder_uuid, job["job_uuid"])
            except Exception as exc:  # noqa: BLE001 (best-effort cancel on task kill)
                self.log.warning("Could not cancel Encord job %s: %s", job["job_uuid"], type(exc).__name__)
