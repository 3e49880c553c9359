"""The error budget: how many per-item failures a run tolerates before it fails."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ErrorBudget(BaseModel):
    """Per-item failures a task tolerates before it fails.

    Within budget when the failed count is within ``max_failed_items`` OR the failed fraction is
    within ``max_failed_fraction`` (a ``None`` limit allows nothing by itself). Errors that are
    not per item (auth, a missing folder) fail the task regardless.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_failed_items: int | None = Field(default=0, ge=0)
    max_failed_fraction: float | None = Field(default=None, ge=0, le=1)

    def exceeded(self, failed: int, total: int) -> bool:
        if failed == 0:
            return False
        if self.max_failed_items is not None and failed <= self.max_failed_items:
            return False
        return not (
            self.max_failed_fraction is not None and total and failed / total <= self.max_failed_fraction
        )
