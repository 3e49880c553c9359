"""Encord ingestion Airflow DAGs, one set per source file in ``include/sources/`` (see the README).

For every ``<name>.yaml`` this file defines ``encord_ingest__<name>`` (scheduled ingestion,
backfills, manual runs), ``encord_resync__<name>`` (metadata-only resync) and
``encord_reconcile__<name>`` (ledger rebuild from Encord, drift report). A file that fails
validation is reported as a DAG-file warning naming the file and field; the other sources load.
Only the YAML files are read at parse time: no connections, no network.
"""

from __future__ import annotations

import logging
import warnings

from encord_ingest.config import load_source_configs, sources_dir
from encord_provider.dag_builder import build_source_dags

log = logging.getLogger(__name__)
SOURCES_DIR = sources_dir()


class SourceConfigWarning(UserWarning):
    """A source file under include/sources/ is invalid; its DAGs are not built."""


_configs, _errors = load_source_configs(SOURCES_DIR)
for _error in _errors:
    log.error("%s", _error)
    warnings.warn(str(_error), SourceConfigWarning, stacklevel=1)
for _config in _configs:
    for _dag in build_source_dags(_config):
        globals()[_dag.dag_id] = _dag
