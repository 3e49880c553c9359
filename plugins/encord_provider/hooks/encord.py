"""EncordHook: the one place that talks to Encord, through the ``encord`` SDK.

The hook owns authentication (an Airflow connection of type ``encord``), the SDK client (built
lazily, on first use), retries of the calls the SDK does not retry, pagination, and the
translation of SDK results into the plain models of :mod:`encord_ingest.sync` and
:mod:`encord_provider.registration`. Operators stay thin.

The SSH private key never appears in a log line, an exception message or a return value.
"""

from __future__ import annotations

import contextlib
import functools
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from airflow.sdk import BaseHook
from pydantic import RootModel, ValidationError

from encord_ingest.errors import ErrorCode, ItemError
from encord_ingest.schema import MetadataSchema
from encord_ingest.sources.urls import url_identity
from encord_ingest.sync import (
    MAX_BUNDLE_BYTES,
    MAX_BUNDLE_SIZE,
    ItemPlan,
    ItemResult,
    MetadataChange,
    ReservedKeysPolicy,
    SyncCounts,
    SyncMode,
    WriteStatus,
    holds_exactly,
    patch_body_bytes,
    plan_bundles,
    plan_item,
    split_by_size,
    write_result,
)
from encord_provider.registration import FolderIndex, JobOutcome, folder_index
from encord_provider.retries import RetryPolicy, call_with_retries, is_transient
from encord_provider.schema_merge import SchemaPlan, apply_plan, plan_schema, read_existing

if TYPE_CHECKING:
    from airflow.sdk import Connection
    from encord.exceptions import EncordException
    from encord.metadata_schema import MetadataSchema as SdkSchema
    from encord.orm.storage import DataUploadItems
    from encord.storage import StorageFolder, StorageItem
    from encord.user_client import EncordUserClient

DEFAULT_DOMAIN = "https://api.encord.com"
KNOWN_DOMAINS = ("https://api.encord.com", "https://api.us.encord.com")
LIST_PAGE_SIZE = 1000
GET_BULK_SIZE = 1000
LINK_BATCH_SIZE = 1000
#: Where the SDK reads and saves the organisation's metadata schema (``encord.metadata_schema``).
SCHEMA_PATH = "organisation/client-metadata-schema-v2"
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@functools.cache
def _per_item_refusals() -> tuple[type[EncordException], ...]:
    """A bundle refused with one of these is split in halves until the refused items stand alone."""
    from encord.exceptions import (
        AuthorisationError,
        InvalidArgumentsError,
        PayloadTooLargeError,
        ResourceNotFoundError,
    )

    return (InvalidArgumentsError, ResourceNotFoundError, AuthorisationError, PayloadTooLargeError)


class FolderMemory(Protocol):
    """Where a source remembers the UUIDs its folder paths resolved to (see ``run_io``)."""

    def get(self, path: str) -> str | None: ...

    def put(self, path: str, folder_uuid: str) -> None: ...


class EncordHookError(Exception):
    """An error that is not about one item: configuration, auth, a missing folder."""


class EncordFolderNotFound(EncordHookError):
    """A storage folder looked up without ``create`` does not exist."""


class EncordAuthError(EncordHookError):
    """The connection's key could not be loaded or Encord rejected it."""


def _normalise_key(raw: str) -> str:
    """Accept keys pasted with literal ``\\n`` (env vars, JSON) as well as real newlines."""
    key = raw.strip()
    if "\n" not in key and "\\n" in key:
        key = key.replace("\\n", "\n")
    return key + "\n"


def _mask_key(key: str) -> None:
    """Register the key and each of its base64 lines with Airflow's secrets masker."""
    with contextlib.suppress(Exception):  # masking is best effort outside a task
        from airflow.sdk.log import mask_secret

        mask_secret(key)
        for line in key.splitlines():
            if line and not line.startswith("-----"):
                mask_secret(line)


def check_domain(domain: str, conn_id: str) -> str:
    """Return the domain without a trailing slash; raise on anything but an http(s) origin."""
    parts = urlsplit(domain.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EncordHookError(
            f"Encord connection {conn_id!r}: field 'domain': expected an http(s) origin such as "
            f"{' or '.join(KNOWN_DOMAINS)}, got {domain!r}"
        )
    return f"{parts.scheme}://{parts.netloc}"


class EncordHook(BaseHook):
    """Talk to Encord with the SSH key of an ``encord`` connection.

    :param encord_conn_id: the connection (type ``encord``; extras ``ssh_private_key``,
        ``ssh_key_passphrase``, ``domain``).
    :param retry: bounds for the hook's own retries (PATCH, job start, folder create).
    :param sdk_max_retries: the SDK's own retries of GET/POST on 413/429/5xx (default 3).
    :param sdk_backoff_factor: the SDK's backoff factor for those retries (default 1.5 s).
    :param connection: an already fetched connection (triggers fetch it asynchronously).
    :param max_bundle_bytes: cap on one metadata PATCH body (as well as 1000 items).
    :param list_page_size: items per listing page (halved automatically when a page fails).
    :param list_metadata_as_urls: listings fetch client metadata through signed URLs (the SDK's
        ``resolve_client_metadata_locally``), for folders whose metadata is large.
    :param retry_job_start: retry an upload-job start on 429/5xx/timeouts (see :meth:`start_upload_job`).
    """

    conn_name_attr = "encord_conn_id"
    default_conn_name = "encord_default"
    conn_type = "encord"
    hook_name = "Encord"

    def __init__(
        self,
        encord_conn_id: str = default_conn_name,
        *,
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        sdk_max_retries: int | None = None,
        sdk_backoff_factor: float | None = None,
        connection: Connection | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_bundle_bytes: int = MAX_BUNDLE_BYTES,
        list_page_size: int = LIST_PAGE_SIZE,
        list_metadata_as_urls: bool = False,
        retry_job_start: bool = True,
    ) -> None:
        from encord.http.constants import RequestsSettings

        super().__init__()
        self.encord_conn_id = encord_conn_id
        self.retry = RetryPolicy.of(retry)
        self._requests_settings = RequestsSettings()
        if sdk_max_retries is not None:
            self._requests_settings.max_retries = sdk_max_retries
        if sdk_backoff_factor is not None:
            self._requests_settings.backoff_factor = sdk_backoff_factor
        self._connection = connection
        self._sleep = sleep
        self._folders: dict[str, StorageFolder] = {}
        self.domain = DEFAULT_DOMAIN
        self.max_bundle_bytes = max_bundle_bytes
        self.list_page_size = list_page_size
        self.list_metadata_as_urls = list_metadata_as_urls
        self.retry_job_start = retry_job_start

    # --- client and auth ---------------------------------------------------------------------

    def get_conn(self) -> EncordUserClient:
        return self.client

    @cached_property
    def connection(self) -> Connection:
        """The ``encord`` connection (fetched once)."""
        return self._connection or self.get_connection(self.encord_conn_id)

    def web_link(self, kind: str, **ids: str | None) -> str | None:
        """The web-app URL of a ``folder`` or ``upload_job`` (:mod:`encord_provider.links`)."""
        from encord_provider.links import encord_web_link

        return encord_web_link(self.connection.extra_dejson, kind, **ids)

    @cached_property
    def client(self) -> EncordUserClient:
        """The SDK client; built on first use (creating it makes no request)."""
        extra = self.connection.extra_dejson
        self.domain = check_domain(str(extra.get("domain") or DEFAULT_DOMAIN), self.encord_conn_id)
        if not extra.get("ssh_private_key"):
            raise EncordAuthError(
                f"Encord connection {self.encord_conn_id!r}: field 'ssh_private_key' is empty; "
                "expected an Ed25519 private key in OpenSSH format"
            )
        key = _normalise_key(str(extra["ssh_private_key"]))
        _mask_key(key)
        passphrase = extra.get("ssh_key_passphrase") or None
        parts = urlsplit(self.domain)
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
            self.log.warning("Encord domain %s is plain http: the traffic is not encrypted", self.domain)
        return self._create_client(key, passphrase)

    def _create_client(self, key: str, passphrase: str | None) -> EncordUserClient:
        from encord.user_client import EncordUserClient

        failure: str | None = None
        try:
            client = EncordUserClient.create_with_ssh_private_key(
                ssh_private_key=key,
                password=passphrase,
                domain=self.domain,
                requests_settings=self._requests_settings,
            )
        except Exception as exc:  # noqa: BLE001 (the SDK's ValueError quotes the key: never re-raise it)
            failure = type(exc).__name__
        if failure is not None:
            # Raised outside the ``except`` block so the SDK's message is not even chained.
            raise EncordAuthError(
                f"Encord connection {self.encord_conn_id!r}: field 'ssh_private_key': expected an "
                f"Ed25519 private key in OpenSSH format (with 'ssh_key_passphrase' if it is "
                f"encrypted); the key could not be loaded ({failure})"
            )
        return client

    @contextlib.contextmanager
    def _auth_errors(self) -> Iterator[None]:
        """Turn the SDK's auth errors into one clear message naming the connection and domain."""
        from encord.exceptions import AuthenticationError, SshKeyNotFound

        try:
            yield
        except (AuthenticationError, SshKeyNotFound) as exc:
            raise EncordAuthError(
                f"Encord connection {self.encord_conn_id!r}: {self.domain} rejected the SSH key "
                f"({type(exc).__name__}). Check that its public key is registered with your Encord "
                f"user and that 'domain' is your region ({' or '.join(KNOWN_DOMAINS)})."
            ) from None

    def test_connection(self) -> tuple[bool, str]:
        """One cheap signed call: list the cloud integrations the key can see."""
        from encord.exceptions import EncordException

        try:
            with self._auth_errors():
                integrations = self.client.get_cloud_integrations()
        except (EncordHookError, EncordException) as exc:
            return False, str(exc)
        return True, f"Connected to {self.domain}: {len(integrations)} cloud integration(s) visible"

    # --- integrations and folders ------------------------------------------------------------

    def resolve_integration(self, ref: str) -> str:
        """The UUID of a cloud integration given its UUID or its title (titles must be unique)."""
        with self._auth_errors():
            if is_uuid(ref):
                found = self.client.get_cloud_integrations(filter_integration_uuids=[ref])
            else:
                found = self.client.get_cloud_integrations(filter_integration_titles=[ref])
        matches = [integration for integration in found if ref in (integration.id, integration.title)]
        if len(matches) == 1:
            return str(matches[0].id)
        if not matches:
            with self._auth_errors():
                titles = sorted(integration.title for integration in self.client.get_cloud_integrations())
            raise EncordHookError(f"no Encord cloud integration {ref!r}; visible titles: {titles}")
        uuids = sorted(str(integration.id) for integration in matches)
        raise EncordHookError(f"{len(matches)} cloud integrations are titled {ref!r}; use its UUID: {uuids}")

    def get_folder(
        self, path: str, *, create: bool = True, memory: FolderMemory | None = None
    ) -> StorageFolder:
        """The storage folder at ``a/b/c`` (created level by level when missing), or by UUID.

        Each level is found by its exact name in a full listing of its parent's subfolders
        (never by ``search``, whose matching is not documented). With ``memory``, the UUID a
        path resolved to is remembered and used first next time, as long as that folder still
        exists under the same name.
        """
        if path in self._folders:
            return self._folders[path]
        with self._auth_errors():
            if is_uuid(path):
                folder = self.client.get_storage_folder(path)
            else:
                folder = self._remembered(path, memory) or self._walk_folders(path, create)
                if memory is not None and memory.get(path) != str(folder.uuid):
                    memory.put(path, str(folder.uuid))
        self._folders[path] = folder
        self._folders[str(folder.uuid)] = folder
        return folder

    def _remembered(self, path: str, memory: FolderMemory | None) -> StorageFolder | None:
        from encord.exceptions import AuthorisationError, ResourceNotFoundError

        remembered = memory.get(path) if memory is not None else None
        if remembered is None:
            return None
        try:
            folder = self.client.get_storage_folder(remembered)
        except (AuthorisationError, ResourceNotFoundError):
            self.log.warning(
                "Remembered folder %s for %r is gone: resolving the path again", remembered, path
            )
            return None
        if folder.name != path.strip("/").split("/")[-1]:
            self.log.warning(
                "Remembered folder %s for %r is now named %r: resolving the path again",
                remembered,
                path,
                folder.name,
            )
            return None
        return folder

    def _walk_folders(self, path: str, create: bool) -> StorageFolder:
        names = [name for name in path.strip("/").split("/")]
        if not names or any(not name.strip() for name in names):
            raise EncordHookError(
                f"folder path {path!r}: expected names separated by '/', e.g. 'ingest/cams'"
            )
        parent: StorageFolder | None = None
        for depth, name in enumerate(names):
            where = "/".join(names[: depth + 1])
            found = self._find_child(parent, name, where)
            if found is None:
                if not create:
                    raise EncordFolderNotFound(f"Encord storage folder {where!r} does not exist")
                found = self._create_child(parent, name, where)
            parent = found
        assert parent is not None
        return parent

    def _find_child(self, parent: StorageFolder | None, name: str, where: str) -> StorageFolder | None:
        # A full listing, compared exactly: how Encord's ``search`` matches is not documented.
        if parent is None:
            candidates = self.client.list_storage_folders(page_size=LIST_PAGE_SIZE)
            matches = [f for f in candidates if f.name == name and f.parent_uuid is None]
        else:
            candidates = parent.list_subfolders(page_size=LIST_PAGE_SIZE)
            matches = [f for f in candidates if f.name == name and f.parent_uuid == parent.uuid]
        if len(matches) > 1:
            uuids = sorted(str(f.uuid) for f in matches)
            raise EncordHookError(
                f"{len(matches)} Encord folders are named {where!r}; use a folder UUID: {uuids}"
            )
        return matches[0] if matches else None

    def _create_child(self, parent: StorageFolder | None, name: str, where: str) -> StorageFolder:
        def create() -> StorageFolder:
            # Folder create is not retried by the SDK and not idempotent: look again first.
            existing = self._find_child(parent, name, where)
            if existing is not None:
                return existing
            self.log.info("Creating Encord storage folder %r", where)
            return self.client.create_storage_folder(name, parent_folder=parent.uuid if parent else None)

        return call_with_retries(
            create, policy=self.retry, what=f"create folder {where!r}", sleep=self._sleep
        )

    # --- metadata schema ---------------------------------------------------------------------

    def metadata_schema(self) -> SdkSchema:
        """The organisation's schema as the SDK reads it (one GET); it fails on types newer than
        the SDK and its ``save()`` drops fields it does not model: read only, never saved."""
        with self._auth_errors():
            return self.client.metadata_schema()

    def schema_document(self) -> dict[str, Any]:
        """The organisation's schema as Encord stores it, every field of every key (one GET
        through the SDK's own API client, so signing, retries and errors are the SDK's)."""
        # a pydantic RootModel, as the SDK's own _ClientMetadataSchema (it ignores the same types)
        with self._auth_errors():
            stored = self.client._api_client.get(
                SCHEMA_PATH,
                params=None,
                result_type=SchemaDocument,  # type: ignore[type-var]
                allow_none=True,
            )
        return dict(stored.root) if stored is not None else {}

    def save_schema_document(self, document: Mapping[str, Any]) -> None:
        """Replace the organisation's schema with ``document`` (the POST ``MetadataSchema.save()``
        makes, without re-serialising the keys through the SDK's models)."""
        with self._auth_errors():
            self.client._api_client.post(
                SCHEMA_PATH,
                params=None,
                payload=SchemaDocument(dict(document)),  # type: ignore[arg-type]
                result_type=None,
            )

    def apply_schema(
        self,
        declared: MetadataSchema,
        *,
        allow_retype: bool = False,
        delete_keys: Iterable[str] = (),
        dry_run: bool = False,
    ) -> SchemaPlan:
        """Read, merge, write: add missing keys and enum values, keep every other key as read."""
        document = self.schema_document()
        plan = plan_schema(
            read_existing(document), declared, allow_retype=allow_retype, delete_keys=delete_keys
        )
        if dry_run or not plan.has_changes:
            return plan
        # replaces the whole organisation schema: it holds every key read above, unchanged
        self.save_schema_document(apply_plan(document, plan, declared))
        return plan

    # --- upload jobs -------------------------------------------------------------------------

    def start_upload_job(
        self,
        folder: StorageFolder,
        integration_uuid: str,
        items: DataUploadItems,
        *,
        ignore_errors: bool = True,
    ) -> str:
        """Start a registration job; ``skip_duplicate_urls`` is forced on, which makes a retry safe
        when Encord deduplicates against jobs still running (the contract check's
        ``concurrent_duplicates``). Otherwise set ``retry_job_start=False``: a lost answer then
        fails the task, and the task's retry (after ``retry_delay_s``) finds the items as duplicates."""
        payload = items.model_copy(update={"skip_duplicate_urls": True})
        policy = self.retry if self.retry_job_start else self.retry.model_copy(update={"max_attempts": 1})

        def start() -> str:
            return str(folder.add_private_data_to_folder_start(integration_uuid, payload, ignore_errors))

        with self._auth_errors():
            job_uuid = call_with_retries(
                start, policy=policy, what=f"start upload job in folder {folder.uuid}", sleep=self._sleep
            )
        self.log.info("Started Encord upload job %s in folder %s", job_uuid, folder.uuid)
        return job_uuid

    def get_upload_job(self, folder_uuid: str, job_uuid: str, *, timeout_s: int = 0) -> JobOutcome:
        """The job's state; ``timeout_s > 0`` long-polls until it ends or the time is up."""
        folder = self.get_folder(folder_uuid)
        with self._auth_errors():
            state = folder.add_private_data_to_folder_get_result(
                uuid.UUID(job_uuid), timeout_seconds=timeout_s
            )
        return JobOutcome.from_sdk(state)

    def wait_for_upload_job(
        self, folder_uuid: str, job_uuid: str, *, timeout_s: float, poll_s: int = 30
    ) -> JobOutcome:
        """Long-poll until the job ends; raise ``TimeoutError`` past ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            outcome = self.get_upload_job(
                folder_uuid, job_uuid, timeout_s=max(0, min(poll_s, int(remaining)))
            )
            if outcome.is_terminal:
                return outcome
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Encord upload job {job_uuid} still {outcome.status} after {timeout_s:.0f}s"
                )

    def cancel_upload_job(self, folder_uuid: str, job_uuid: str) -> None:
        folder = self.get_folder(folder_uuid)
        with self._auth_errors():
            folder.add_data_to_folder_job_cancel(uuid.UUID(job_uuid))
        self.log.info("Cancelled Encord upload job %s", job_uuid)

    # --- items -------------------------------------------------------------------------------

    def iter_folder_items(self, folder: StorageFolder) -> Iterator[StorageItem]:
        """Every item of the folder with its client metadata (items of types the SDK does not
        know are skipped with a warning; see :mod:`encord_provider.listing`)."""
        from encord_provider.listing import iter_items

        with self._auth_errors():
            yield from iter_items(
                folder, page_size=self.list_page_size, metadata_as_urls=self.list_metadata_as_urls
            )

    def folder_index(self, folder: StorageFolder) -> FolderIndex:
        """Item UUIDs of the folder by object URL and by name (one listing)."""
        return folder_index(
            {str(item.uuid): (item.url, item.name) for item in self.iter_folder_items(folder)}
        )

    def get_items(self, item_uuids: Sequence[str]) -> dict[str, StorageItem]:
        """Items by UUID, fetched in bulk; UUIDs Encord does not return are left out."""
        from encord.exceptions import AuthorisationError, InvalidArgumentsError, ResourceNotFoundError

        found: dict[str, StorageItem] = {}
        for start in range(0, len(item_uuids), GET_BULK_SIZE):
            batch = list(item_uuids[start : start + GET_BULK_SIZE])
            try:
                with self._auth_errors():
                    items = self.client.get_storage_items(batch)
            except (AuthorisationError, ResourceNotFoundError, InvalidArgumentsError):
                self.log.warning("Bulk read of %d items refused; some UUIDs are unknown", len(batch))
                continue
            found.update({str(item.uuid): item for item in items})
        return found

    def patch_metadata(
        self, updates: Sequence[tuple[StorageItem, dict[str, Any]]], *, bundle_size: int = MAX_BUNDLE_SIZE
    ) -> PatchResult:
        """Write whole ``clientMetadata`` dicts in bundles (one PATCH each), with retries.

        Bundles hold at most ``bundle_size`` items and ``max_bundle_bytes`` of JSON. A bundle
        that Encord refuses with 400, 403, 404 or 413 is split in halves until the refused items
        stand alone, so one bad item fails alone. Other bundles go on after a failed one.
        """
        result = PatchResult()
        sizes = [patch_body_bytes(str(item.uuid), metadata) for item, metadata in updates]
        for part in split_by_size(sizes, max_count=bundle_size, max_bytes=self.max_bundle_bytes):
            self._patch_bundle([updates[index] for index in part], result)
        return result

    def _patch_bundle(self, bundle: list[tuple[StorageItem, dict[str, Any]]], result: PatchResult) -> None:
        from encord.exceptions import EncordException
        from encord.http.bundle import Bundle

        def send() -> None:
            result.attempts += 1
            with Bundle() as sdk_bundle:
                for item, metadata in bundle:
                    item.update(client_metadata=metadata, bundle=sdk_bundle)

        result.calls += 1
        try:
            with self._auth_errors():
                call_with_retries(
                    send, policy=self.retry, what=f"patch {len(bundle)} items", sleep=self._sleep
                )
        except _per_item_refusals() as exc:
            if len(bundle) > 1:
                middle = len(bundle) // 2
                self._patch_bundle(bundle[:middle], result)
                self._patch_bundle(bundle[middle:], result)
                return
            item, metadata = bundle[0]
            result.failed[str(item.uuid)] = _refusal(exc, patch_body_bytes(str(item.uuid), metadata))
        except EncordException as exc:
            if isinstance(exc.__cause__, ValidationError):
                # Encord answered 200 (the write is done) with items the pinned SDK cannot parse.
                self.log.warning("Patched %d items; the SDK could not read the answer: %s", len(bundle), exc)
                result.written.extend(str(item.uuid) for item, _ in bundle)
                return
            if not is_transient(exc):
                raise
            for item, _ in bundle:
                result.failed[str(item.uuid)] = f"{type(exc).__name__} after retries: {exc.message}"
        else:
            result.written.extend(str(item.uuid) for item, _ in bundle)

    def link_items_to_dataset(self, dataset_hash: str, item_uuids: Sequence[str]) -> int:
        """Link storage items to a dataset (duplicates skipped); returns how many were sent.

        Linking with ``SKIP`` is idempotent, so 429 and 5xx are retried within the hook's policy.
        """
        from encord.orm.dataset import DataLinkDuplicatesBehavior

        with self._auth_errors():
            dataset = call_with_retries(
                lambda: self.client.get_dataset(dataset_hash, include_data_rows=False),
                policy=self.retry,
                what=f"read dataset {dataset_hash}",
                sleep=self._sleep,
            )
            for start in range(0, len(item_uuids), LINK_BATCH_SIZE):
                batch = [uuid.UUID(value) for value in item_uuids[start : start + LINK_BATCH_SIZE]]
                call_with_retries(
                    functools.partial(
                        dataset.link_items, batch, duplicates_behavior=DataLinkDuplicatesBehavior.SKIP
                    ),
                    policy=self.retry,
                    what=f"link {len(batch)} items to dataset {dataset_hash}",
                    sleep=self._sleep,
                )
        return len(item_uuids)

    # --- metadata sync -----------------------------------------------------------------------

    def sync_metadata(
        self,
        folder: StorageFolder,
        changes: Sequence[MetadataChange],
        *,
        mode: SyncMode,
        reserved: ReservedKeysPolicy = ReservedKeysPolicy.PRESERVE,
        dry_run: bool = False,
        bundle_size: int = MAX_BUNDLE_SIZE,
    ) -> tuple[SyncCounts, dict[str, ItemResult]]:
        """Read what Encord holds for the changed items, write only those that differ."""
        items = self._items_for_changes(folder, changes)
        results: dict[str, ItemResult] = {}
        plans: list[ItemPlan] = []
        held: dict[str, StorageItem] = {}
        for change in changes:
            item = items.get(url_identity(change.object_url))
            if item is None:
                error = ItemError.of(
                    ErrorCode.ITEM_NOT_FOUND, change.object_url, detail=f"not in folder {folder.uuid}"
                )
                results[change.object_url] = ItemResult(status=WriteStatus.NOT_FOUND, errors=[error])
                continue
            plans.append(plan_item(change, str(item.uuid), item.client_metadata or {}, mode, reserved))
            held[str(item.uuid)] = item
        patch = self.write_plans(plans, held, dry_run=dry_run, bundle_size=bundle_size)
        for plan in plans:
            results[plan.object_url] = write_result(
                plan, dry_run=dry_run, written=patch.written, failed=patch.failed
            )
        counts = SyncCounts(
            examined=len(changes),
            changed=sum(1 for plan in plans if plan.changed),
            written=len(patch.written),
            failed=sum(1 for result in results.values() if result.status is WriteStatus.FAILED),
            not_found=sum(1 for result in results.values() if result.status is WriteStatus.NOT_FOUND),
            patch_calls=patch.calls,
            patch_attempts=patch.attempts,
        )
        return counts, results

    def write_plans(
        self,
        plans: Sequence[ItemPlan],
        items: Mapping[str, StorageItem],
        *,
        dry_run: bool = False,
        bundle_size: int = MAX_BUNDLE_SIZE,
    ) -> PatchResult:
        """Write the changed plans (each item once, the last plan wins), the one write path of
        ingestion sync and metadata operations; ``items`` maps item UUIDs to SDK items.

        Items whose write removes a key are read back once: if Encord does not hold the final
        dict exactly (a replacing or shallow-merging server kept nulls or nested keys), the
        final dict is written once more (:attr:`~encord_ingest.sync.ItemPlan.repair_body`).
        """
        chosen = [plan for bundle in plan_bundles(plans, size=bundle_size) for plan in bundle]
        if dry_run or not chosen:
            return PatchResult()
        updates = [(items[plan.item_uuid], plan.patch_body) for plan in chosen]
        patch = self.patch_metadata(updates, bundle_size=bundle_size)
        written = set(patch.written)
        self._repair([plan for plan in chosen if plan.removes_keys and plan.item_uuid in written], patch)
        return patch

    def _repair(self, checked: Sequence[ItemPlan], patch: PatchResult) -> None:
        if not checked:
            return
        held = self.get_items([plan.item_uuid for plan in checked])
        repairs = [
            (held[plan.item_uuid], plan.repair_body)
            for plan in checked
            if plan.item_uuid in held and not holds_exactly(held[plan.item_uuid].client_metadata, plan.final)
        ]
        if not repairs:
            return
        self.log.info(
            "%d item(s) do not hold the final metadata after a merge patch (this server replaces "
            "or merges shallowly): writing the final dicts again",
            len(repairs),
        )
        again = self.patch_metadata(repairs, bundle_size=MAX_BUNDLE_SIZE)
        patch.calls += again.calls
        patch.attempts += again.attempts
        patch.failed.update(again.failed)
        patch.written = [uuid for uuid in patch.written if uuid not in again.failed]

    def _items_for_changes(
        self, folder: StorageFolder, changes: Sequence[MetadataChange]
    ) -> dict[str, StorageItem]:
        """Items by the :func:`~encord_ingest.sources.urls.url_identity` of their object URL:
        bulk reads by known UUID, one folder listing for the rest."""
        known = {change.item_uuid: url_identity(change.object_url) for change in changes if change.item_uuid}
        by_url = {known[str(item_uuid)]: item for item_uuid, item in self.get_items(list(known)).items()}
        missing = {url_identity(change.object_url) for change in changes} - set(by_url)
        if missing:
            self.log.info("Resolving %d object URL(s) by listing folder %s", len(missing), folder.uuid)
            for item in self.iter_folder_items(folder):
                identity = url_identity(item.url) if item.url else None
                if identity in missing:
                    by_url[identity] = item
        return by_url


class SchemaDocument(RootModel[dict[str, Any]]):
    """The organisation's metadata schema as stored: key -> entry, every field kept."""


class PatchResult:
    """What :meth:`EncordHook.patch_metadata` did: UUIDs written, UUIDs failed (with why), calls."""

    def __init__(self) -> None:
        self.written: list[str] = []
        self.failed: dict[str, str] = {}
        self.calls = 0
        """Bundles sent (a bundle split after a refusal sends each half as a call of its own)."""
        self.attempts = 0
        """Every PATCH request, retries of one bundle included."""


def _refusal(exc: EncordException, body_bytes: int) -> str:
    """Why one item's PATCH was refused, for its result line."""
    from encord.exceptions import AuthorisationError, PayloadTooLargeError

    if isinstance(exc, PayloadTooLargeError):
        return f"Encord refused the metadata as too large ({body_bytes} bytes of JSON): {exc.message}"
    if isinstance(exc, AuthorisationError):
        return f"Encord refused access to the item (403): {exc.message}"
    return f"Encord refused the metadata: {exc.message}"


def is_uuid(value: object) -> bool:
    """Whether ``value`` reads as a UUID (folder, item and integration references may be either)."""
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
