"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """Return the provider description (connection types, hooks, operators, triggers)."""
    return {
        "package-name": "encord-bucket-ingest",
        "name": "Encord",
        "description": "Register bucket data in Encord and keep its client metadata in sync.",
        "versions": ["0.1.0"],
    }
