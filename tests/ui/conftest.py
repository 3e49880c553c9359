"""``make ui`` end to end (``make test-ui``): slow (Airflow standalone starts four components), so
it is collected only with ``ENCORD_INGEST_UI=1``."""

from __future__ import annotations

import os

if os.environ.get("ENCORD_INGEST_UI") != "1":
    collect_ignore_glob = ["test_*.py"]
