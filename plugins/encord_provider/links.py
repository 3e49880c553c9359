"""Operator extra links: the Encord storage folder, the Encord upload job, the run report.

As in the amazon and dbt-cloud providers, a task works out each URL while it runs (where the
connection and the ids are known) and keeps it in XCom under the link's ``key``
(:meth:`PersistedLink.persist`); ``get_link`` reads it back. Airflow 3 shows the link a task
instance's XCom holds; a URL that cannot be known (no web app for the connection's domain, an
unknown storage scheme, a task that stopped before the id existed) is not stored: no link, no error.

Encord's web-app URL forms are not public (``/work/shared/ENCORD-NOTES.md``): the ``encord``
connection's extras ``web_url``, ``folder_link`` and ``upload_job_link`` set them, with the
defaults below (see the README, "Links in the Airflow UI").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseOperatorLink

from encord_ingest.errors import ConfigError
from encord_ingest.sources.factory import split_uri

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

WEB_APPS = {
    "https://api.encord.com": "https://app.encord.com",
    "https://api.us.encord.com": "https://app.us.encord.com",
}
"""Encord's web app for each API domain (other domains: set the connection's ``web_url``)."""
LINK_TEMPLATES = {
    "folder": "{web_url}/files/folders/{folder_uuid}",
    "upload_job": "{web_url}/files/folders/{folder_uuid}?uploadJob={job_uuid}",
}
"""Default URL templates (connection extras ``folder_link`` / ``upload_job_link`` override them).
Not verified against the real web app, whose routes are not documented."""


def encord_web_link(extra: Mapping[str, Any], kind: str, **ids: str | None) -> str | None:
    """The web-app URL of a ``folder`` or ``upload_job`` from an ``encord`` connection's extras;
    ``None`` when the web app or an id is unknown, or the template names a field it lacks."""
    domain = str(extra.get("domain") or "https://api.encord.com").rstrip("/")
    web_url = str(extra.get("web_url") or WEB_APPS.get(domain) or "").rstrip("/")
    if not web_url or not all(ids.values()):
        return None
    template = str(extra.get(f"{kind}_link") or LINK_TEMPLATES[kind])
    try:
        return template.format(web_url=web_url, **{name: quote(str(v), safe="") for name, v in ids.items()})
    except (KeyError, IndexError, ValueError):
        return None


def storage_object_url(
    uri: str, *, s3_endpoint: str | None = None, region: str | None = None, gcs_endpoint: str | None = None
) -> str | None:
    """A browser URL of an object: the AWS or Google Cloud console page, or on an S3-compatible
    endpoint (MinIO, moto) or a GCS emulator the object on that endpoint; a ``file://`` URI as
    it is; ``None`` for anything else (a plain path, no valid bucket name, no key)."""
    try:
        scheme, bucket, key = split_uri(uri)
    except ConfigError:
        return None
    if scheme == "file":
        return uri if urlsplit(uri).scheme.lower() == "file" else None
    if not key:
        return None
    if scheme == "s3":
        if s3_endpoint and not urlsplit(s3_endpoint).netloc.endswith("amazonaws.com"):
            return f"{s3_endpoint.rstrip('/')}/{bucket}/{quote(key)}"
        query = f"region={region}&" if region else ""
        return f"https://console.aws.amazon.com/s3/object/{bucket}?{query}prefix={quote(key, safe='')}"
    if scheme == "gs":
        if gcs_endpoint:
            return f"{gcs_endpoint.rstrip('/')}/storage/v1/b/{bucket}/o/{quote(key, safe='')}?alt=media"
        return f"https://console.cloud.google.com/storage/browser/_details/{bucket}/{quote(key)}"
    return None


def object_url_for_connection(uri: str, conn_id: str | None) -> str | None:
    """:func:`storage_object_url` with the endpoint and region of the ``aws`` connection
    ``conn_id`` (its extras ``endpoint_url``, ``region_name``) or ``$STORAGE_EMULATOR_HOST``;
    ``None`` when the connection cannot be read (a link never fails the task)."""
    extra: Mapping[str, Any] = {}
    if conn_id and uri.startswith("s3://"):
        from airflow.sdk import BaseHook

        try:
            extra = BaseHook.get_connection(conn_id).extra_dejson
        except Exception:  # noqa: BLE001 - no link rather than a failed commit
            return None
    return storage_object_url(
        uri,
        s3_endpoint=extra.get("endpoint_url"),
        region=extra.get("region_name"),
        gcs_endpoint=os.environ.get("STORAGE_EMULATOR_HOST"),
    )


class PersistedLink(BaseOperatorLink):
    """A link whose URL the task stored in XCom under ``key``."""

    name: ClassVar[str]
    key: ClassVar[str]

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:  # noqa: ARG002 (Airflow's signature)
        from airflow.sdk.execution_time.xcom import XCom

        url = XCom.get_value(ti_key=ti_key, key=self.key)
        return url if isinstance(url, str) else ""

    @classmethod
    def persist(cls, context: Mapping[str, Any], url: str | None) -> None:
        """Keep ``url`` for the link (nothing when it is unknown)."""
        if url:
            context["ti"].xcom_push(key=cls.key, value=url)


class EncordFolderLink(PersistedLink):
    name = "Encord folder"
    key = "encord_folder_url"


class EncordUploadJobLink(PersistedLink):
    """The first upload job of the task (each job's id is in the register results too)."""

    name = "Encord upload job"
    key = "encord_upload_job_url"


class RunReportLink(PersistedLink):
    name = "Run report"
    key = "run_report_url"


EXTRA_LINKS = [EncordFolderLink, EncordUploadJobLink, RunReportLink]
