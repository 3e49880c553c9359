"""The emulator's state and the semantics of every operation on it.

All public methods are thread-safe. Upload jobs are evaluated lazily: every method first
finishes the jobs whose time has come, so a job completes on schedule whether or not anyone
polls it. Unknown UUIDs answer 403, as Encord documents for storage objects it will not reveal.
"""

from __future__ import annotations

import re
import threading
import time
import uuid as uuid_lib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from encord_emulator.config import EmulatorConfig
from encord_emulator.errors import ApiError
from encord_emulator.models import (
    PROVIDERS,
    DataLink,
    Dataset,
    Folder,
    Integration,
    Item,
    Job,
    JobStatus,
    Project,
    Unit,
    UnitError,
    utc_now,
)
from encord_emulator.persistence import SqliteStore
from encord_emulator.schema_check import metadata_problem, schema_problem
from encord_emulator.uploads import (
    default_title,
    guess_mime_type,
    normalised_url,
    parse_upload,
    url_problem,
)
from encord_emulator.wire import LEGACY_DATA_TYPES

STORAGE_LOCATION_BY_PROVIDER = {
    "AWS": "s3",
    "GCP": "gcp",
    "AZURE": "azure",
    "S3_COMPATIBLE": "s3Compatible",
    "OPEN_TELEKOM": "openTelekom",
    "DIRECT_ACCESS": "directAccess",
}
LINK_BEHAVIOURS = ("SKIP", "FAIL", "DUPLICATE")
GROUP_ITEM_TYPES = ("imageGroup", "imageSequence", "dicomSeries", "group")


def new_uuid() -> str:
    return str(uuid_lib.uuid4())


def canonical_uuid(value: str, what: str) -> str:
    try:
        return str(uuid_lib.UUID(value))
    except (ValueError, AttributeError, TypeError) as exc:
        raise ApiError(400, f"{what} {value!r} is not a UUID") from exc


class EmulatorState:
    """Folders, items, upload jobs, datasets, integrations and the metadata schema."""

    def __init__(
        self,
        config: EmulatorConfig,
        store: SqliteStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._store = store
        self._clock = clock
        self._lock = threading.RLock()
        self.integrations: dict[str, Integration] = {}
        self.folders: dict[str, Folder] = {}
        self.items: dict[str, Item] = {}
        self.jobs: dict[str, Job] = {}
        self.datasets: dict[str, Dataset] = {}
        self.projects: dict[str, Project] = {}
        self.schema: dict[str, Any] | None = None
        self.unreadable: set[str] = set()
        self._forced_statuses: list[JobStatus] = []
        self._pending: list[str] = []
        self._folder_items: dict[str, list[str]] = defaultdict(list)
        self._by_identity: dict[tuple[str, str], list[str]] = defaultdict(list)
        self._linked: Counter[str] = Counter()
        if store is not None:
            self._load(store)

    # ----------------------------------------------------------------- integrations, schema
    def add_integration(self, title: str, provider: str = "AWS", uuid: str | None = None) -> Integration:
        if provider not in PROVIDERS:
            raise ApiError(400, f"provider must be one of {', '.join(PROVIDERS)}, not {provider!r}")
        with self._lock:
            integration = Integration(
                uuid=canonical_uuid(uuid or new_uuid(), "uuid"), title=title, provider=provider
            )
            self.integrations[integration.uuid] = integration
            self._save("integrations", [integration])
            return integration

    def list_integrations(self, uuids: list[str], titles: list[str]) -> list[Integration]:
        with self._lock:
            wanted = {canonical_uuid(u, "filterIntegrationUuids") for u in uuids}
            return [
                i
                for i in self.integrations.values()
                if (not wanted or i.uuid in wanted) and (not titles or i.title in titles)
            ]

    def get_schema(self) -> dict[str, Any] | None:
        with self._lock:
            return None if self.schema is None else dict(self.schema)

    def save_schema(self, schema: Any) -> None:
        problem = schema_problem(schema)
        if problem is not None:
            raise ApiError(400, problem)
        with self._lock:
            self.schema = dict(schema)
            self._save_kv("schema", self.schema)

    # ----------------------------------------------------------------- folders
    def create_folder(
        self,
        name: str,
        parent: str | None = None,
        description: str | None = None,
        client_metadata: str | None = None,
        uuid: str | None = None,
    ) -> Folder:
        if not isinstance(name, str) or not name:
            raise ApiError(400, "folder name must be a non-empty string")
        with self._lock:
            if parent is not None:
                parent = self.folder(parent).uuid
            folder = Folder(
                uuid=canonical_uuid(uuid or new_uuid(), "uuid"),
                name=name,
                parent=parent,
                description=description or "",
                client_metadata=client_metadata,
            )
            self.folders[folder.uuid] = folder
            self._save("folders", [folder])
            return folder

    def folder(self, folder_uuid: str) -> Folder:
        with self._lock:
            folder = self.folders.get(canonical_uuid(folder_uuid, "folder"))
            if folder is None:
                raise ApiError(403, f"folder {folder_uuid} does not exist or is not accessible")
            return folder

    def path_to_root(self, folder: Folder) -> list[Folder]:
        """The folder's ancestors, parent first."""
        with self._lock:
            path: list[Folder] = []
            current = folder.parent
            while current is not None:
                ancestor = self.folders[current]
                path.append(ancestor)
                current = ancestor.parent
            return path

    def list_folders(
        self,
        *,
        parent: str | None,
        everywhere: bool = False,
        recursive: bool = False,
        search: str | None = None,
        dataset_synced: bool | None = None,
        order: str = "name",
        desc: bool = False,
    ) -> list[Folder]:
        """Children of ``parent`` (``None`` = top level), all descendants with ``recursive``,
        or every folder with ``everywhere``; filtered and sorted."""
        with self._lock:
            if parent is not None:
                parent = self.folder(parent).uuid
            scope = (
                {f.uuid for f in self.folders.values()}
                if everywhere
                else self._child_folders(parent, recursive)
            )
            chosen = [
                f
                for f in self.folders.values()
                if f.uuid in scope
                and self._folder_matches(f.name, search)
                and (dataset_synced is None or (f.synced_dataset is not None) == dataset_synced)
            ]
            return _sorted(chosen, order, desc)

    def _folder_matches(self, name: str, search: str | None) -> bool:
        """Whether folder ``search`` finds ``name`` under the configured ``folder_search``."""
        if not search:
            return True
        mode = self.config.folder_search
        if mode == "unindexed":
            return False
        if mode == "exact":
            return name == search
        if mode == "prefix":
            return name.lower().startswith(search.lower())
        return search.lower() in name.lower()

    def resolve_folder(self, path_or_uuid: str) -> Folder:
        """A folder by UUID or by ``name/name/...`` from the top level (for the admin interface)."""
        with self._lock:
            try:
                return self.folder(path_or_uuid)
            except ApiError:
                pass
            parent: str | None = None
            for name in [p for p in path_or_uuid.split("/") if p]:
                matches = [f for f in self.folders.values() if f.parent == parent and f.name == name]
                if len(matches) != 1:
                    raise ApiError(
                        404, f"folder path {path_or_uuid!r}: {len(matches)} folders named {name!r}"
                    )
                parent = matches[0].uuid
            if parent is None:
                raise ApiError(404, f"no folder {path_or_uuid!r}")
            return self.folders[parent]

    # ----------------------------------------------------------------- upload jobs
    def start_job(
        self,
        folder_uuid: str,
        files: Any,
        integration: str | None,
        ignore_errors: bool,
        file_name: str | None = None,
    ) -> Job:
        request = parse_upload(files)
        with self._lock:
            self._advance()
            folder = self.folder(folder_uuid)
            if integration is not None:
                integration = canonical_uuid(integration, "integrationHash")
                if integration not in self.integrations:
                    raise ApiError(403, f"integration {integration} does not exist or is not accessible")
            now = self._clock()
            job = Job(
                uuid=new_uuid(),
                folder=folder.uuid,
                integration=integration,
                ignore_errors=ignore_errors,
                skip_duplicate_urls=request.skip_duplicate_urls,
                upsert_metadata=request.upsert_metadata,
                file_name=file_name,
                units=request.units,
                forced_status=self._forced_statuses.pop(0) if self._forced_statuses else None,
                created_at=now,
                ready_at=now + self.config.job_duration_s,
            )
            self.jobs[job.uuid] = job
            self._pending.append(job.uuid)
            self._save("jobs", [job])
            return job

    def take_dropped_job_start(self) -> bool:
        """Whether this job start's response is to be dropped (``drop_job_start_responses``)."""
        with self._lock:
            if self.config.drop_job_start_responses <= 0:
                return False
            self.config.drop_job_start_responses -= 1
            return True

    def job(self, folder_uuid: str, job_uuid: str) -> Job:
        with self._lock:
            self._advance()
            folder = self.folder(folder_uuid)
            job = self.jobs.get(canonical_uuid(job_uuid, "upload job"))
            if job is None or job.folder != folder.uuid:
                raise ApiError(404, f"upload job {job_uuid} not found in folder {folder_uuid}")
            return job

    def seconds_until_ready(self, job: Job) -> float:
        return max(0.0, job.ready_at - self._clock())

    def cancel_job(self, folder_uuid: str, job_uuid: str) -> int:
        with self._lock:
            job = self.job(folder_uuid, job_uuid)
            if job.status != "PENDING":
                return 0
            self._pending.remove(job.uuid)
            job.status = "CANCELLED"
            job.result.cancelled = len(job.units)
            job.units = []
            self._save("jobs", [job])
            return job.result.cancelled

    def fail_next_job(self, status: JobStatus = "ERROR") -> None:
        if status not in ("ERROR", "CANCELLED", "DONE"):
            raise ApiError(400, "status must be ERROR, CANCELLED or DONE")
        with self._lock:
            self._forced_statuses.append(status)

    def set_unreadable(self, url: str, unreadable: bool = True) -> None:
        with self._lock:
            (self.unreadable.add if unreadable else self.unreadable.discard)(url)
            self._save_kv("unreadable", sorted(self.unreadable))

    def add_finished_job(self, folder_uuid: str, uuid: str | None = None, status: JobStatus = "DONE") -> Job:
        """An already finished, empty job (for seeding recorded requests)."""
        with self._lock:
            folder = self.folder(folder_uuid)
            now = self._clock()
            job = Job(
                uuid=canonical_uuid(uuid or new_uuid(), "uuid"),
                folder=folder.uuid,
                integration=None,
                status=status,
                created_at=now,
                ready_at=now,
            )
            self.jobs[job.uuid] = job
            self._save("jobs", [job])
            return job

    # ----------------------------------------------------------------- items
    def list_items(
        self,
        folder_uuid: str,
        *,
        search: str | None = None,
        item_types: list[str] | None = None,
        is_in_dataset: bool | None = None,
        recursive: bool = False,
        order: str = "name",
        desc: bool = False,
    ) -> list[Item]:
        with self._lock:
            self._advance()
            folder = self.folder(folder_uuid)
            folders = [folder.uuid, *(self._child_folders(folder.uuid, True) if recursive else ())]
            needle = (search or "").lower()
            chosen = [
                item
                for f in folders
                for item in (self.items[u] for u in self._folder_items.get(f, ()))
                if (item.group is None or self.config.list_group_frames)
                and needle in item.name.lower()
                and (not item_types or item.item_type in item_types)
                and (is_in_dataset is None or (item.uuid in self._linked) == is_in_dataset)
            ]
            return _sorted(chosen, order, desc)

    def item(self, item_uuid: str) -> Item:
        with self._lock:
            self._advance()
            item = self.items.get(canonical_uuid(item_uuid, "item"))
            if item is None:
                raise ApiError(403, f"item {item_uuid} does not exist or is not accessible")
            return item

    def get_items(self, item_uuids: Iterable[str]) -> list[Item]:
        with self._lock:
            return [self.item(u) for u in item_uuids]

    def child_items(self, folder_uuid: str, item_uuid: str) -> list[Item]:
        with self._lock:
            item = self._item_in_folder(folder_uuid, item_uuid)
            return [self.items[c] for c in item.children if c in self.items]

    def patch_items(self, patches: dict[str, Any], folder_uuid: str | None = None) -> list[Item]:
        """Apply ``{item uuid: {"name"?, "clientMetadata"?}}``; all items are checked first, so a
        bad patch changes nothing."""
        with self._lock:
            self._advance()
            planned = [(self._patch_target(u, folder_uuid), p) for u, p in patches.items()]
            for item, patch in planned:
                self._check_patch(item, patch)
            for item, patch in planned:
                if isinstance(patch.get("name"), str):
                    item.name = patch["name"]
                if patch.get("clientMetadata") is not None:
                    self._write_metadata(item, patch["clientMetadata"])
                item.last_edited_at = utc_now()
            self._save("items", [item for item, _ in planned])
            return [item for item, _ in planned]

    def delete_items(self, folder_uuid: str, item_uuids: list[str]) -> int:
        """Delete items of the folder (groups take their frames along); all are checked first."""
        with self._lock:
            self._advance()
            targets = [self._item_in_folder(folder_uuid, u) for u in item_uuids]
            doomed = {i.uuid for i in targets} | {c for i in targets for c in i.children}
            for item_uuid in doomed:
                item = self.items.pop(item_uuid, None)
                if item is None:
                    continue
                self._folder_items[item.folder].remove(item.uuid)
                if item.identity is not None:
                    self._by_identity[(item.folder, item.identity)].remove(item.uuid)
            if self._store is not None:
                self._store.remove("items", doomed)
            return len(targets)

    def delete_folder(self, folder_uuid: str) -> None:
        """Delete an empty folder (items and subfolders must go first: the emulator's choice)."""
        with self._lock:
            folder = self.folder(folder_uuid)
            if self._folder_items.get(folder.uuid) or self._child_folders(folder.uuid, False):
                raise ApiError(400, f"folder {folder.uuid} is not empty")
            del self.folders[folder.uuid]
            if self._store is not None:
                self._store.remove("folders", [folder.uuid])

    def add_items(self, folder_uuid: str, specs: list[dict[str, Any]]) -> list[Item]:
        """Create items directly, without a job (admin seeding)."""
        with self._lock:
            folder = self.folder(folder_uuid)
            items = [self._item_from_spec(folder.uuid, spec) for spec in specs]
            self._index(items)
            self._save("items", items)
            return items

    def all_items(self) -> list[Item]:
        with self._lock:
            self._advance()
            return list(self.items.values())

    def all_jobs(self) -> list[Job]:
        with self._lock:
            self._advance()
            return list(self.jobs.values())

    def data_units_count(self, item_uuid: str) -> int:
        """How many dataset rows are backed by the item."""
        with self._lock:
            return self._linked[item_uuid]

    # ----------------------------------------------------------------- datasets
    def create_dataset(
        self,
        title: str,
        description: str | None = None,
        create_backing_folder: bool = False,
        uuid: str | None = None,
    ) -> Dataset:
        if not isinstance(title, str) or not title:
            raise ApiError(400, "dataset title must be a non-empty string")
        with self._lock:
            dataset = Dataset(
                uuid=canonical_uuid(uuid or new_uuid(), "uuid"), title=title, description=description or ""
            )
            if create_backing_folder:
                folder = self.create_folder(title)
                folder.synced_dataset = dataset.uuid
                dataset.backing_folder = folder.uuid
                self._save("folders", [folder])
            self.datasets[dataset.uuid] = dataset
            self._save("datasets", [dataset])
            return dataset

    def dataset(self, dataset_uuid: str | None) -> Dataset:
        with self._lock:
            dataset = self.datasets.get(canonical_uuid(dataset_uuid or "", "dataset"))
            if dataset is None:
                raise ApiError(404, f"dataset {dataset_uuid} not found")
            return dataset

    def link_items(
        self, dataset_uuid: str, item_uuids: list[str], behaviour: str
    ) -> list[tuple[DataLink, Item]]:
        """Link items as data rows; return the rows created by this call."""
        if behaviour not in LINK_BEHAVIOURS:
            raise ApiError(400, f"duplicates_behavior must be one of {', '.join(LINK_BEHAVIOURS)}")
        with self._lock:
            dataset = self.dataset(dataset_uuid)
            items = [self._existing_item(u) for u in item_uuids]
            already = {link.item for link in dataset.links}
            if behaviour == "FAIL" and (duplicates := [i.uuid for i in items if i.uuid in already]):
                raise ApiError(
                    409, f"items already linked to dataset {dataset.uuid}: {', '.join(duplicates)}"
                )
            created: list[tuple[DataLink, Item]] = []
            for item in items:
                if behaviour == "SKIP" and item.uuid in already:
                    continue
                link = DataLink(data_hash=new_uuid(), item=item.uuid)
                dataset.links.append(link)
                already.add(item.uuid)
                self._linked[item.uuid] += 1
                created.append((link, item))
            self._save("datasets", [dataset])
            return created

    def data_rows(
        self,
        dataset_uuid: str,
        *,
        title_eq: str | None = None,
        title_like: str | None = None,
        data_hashes: list[str] | None = None,
        data_types: list[str] | None = None,
        created_before: str | None = None,
        created_after: str | None = None,
    ) -> list[tuple[DataLink, Item]]:
        """The dataset's rows (in link order) with their backing items, filtered as
        ``list_data_rows`` asks: exact or SQL ``LIKE`` title, data hashes, legacy data types
        (``VIDEO``, ``IMG_GROUP``, ...) and creation time bounds (ISO 8601)."""
        like = _like_pattern(title_like) if title_like is not None else None
        before, after = _optional_time(created_before), _optional_time(created_after)
        with self._lock:
            self._advance()
            rows = [(link, self.items[link.item]) for link in self.dataset(dataset_uuid).links]
            return [
                (link, item)
                for link, item in rows
                if (title_eq is None or item.name == title_eq)
                and (like is None or like.fullmatch(item.name))
                and (data_hashes is None or link.data_hash in data_hashes)
                and (not data_types or LEGACY_DATA_TYPES.get(item.item_type, "IMAGE") in data_types)
                and (before is None or link.created_at < before)
                and (after is None or link.created_at > after)
            ]

    # ----------------------------------------------------------------- projects
    def create_project(
        self,
        title: str,
        datasets: list[str] | None = None,
        description: str | None = None,
        uuid: str | None = None,
    ) -> Project:
        """A project with ``datasets`` attached (each must exist) and its own empty ontology."""
        if not isinstance(title, str) or not title:
            raise ApiError(400, "project title must be a non-empty string")
        with self._lock:
            attached = [self.dataset(d).uuid for d in datasets or []]
            project = Project(
                uuid=canonical_uuid(uuid or new_uuid(), "uuid"),
                title=title,
                description=description or "",
                datasets=list(dict.fromkeys(attached)),
                ontology=new_uuid(),
            )
            self.projects[project.uuid] = project
            self._save("projects", [project])
            return project

    def project(self, project_uuid: str) -> Project:
        with self._lock:
            project = self.projects.get(canonical_uuid(project_uuid, "project"))
            if project is None:
                raise ApiError(404, f"project {project_uuid} not found")
            return project

    def project_datasets(self, project_uuid: str) -> list[Dataset]:
        with self._lock:
            return [self.datasets[d] for d in self.project(project_uuid).datasets]

    def ontology_project(self, ontology_uuid: str) -> Project:
        """The project whose (empty) ontology has this UUID; 404 for any other."""
        with self._lock:
            wanted = canonical_uuid(ontology_uuid, "ontology")
            for project in self.projects.values():
                if project.ontology == wanted:
                    return project
            raise ApiError(404, f"ontology {ontology_uuid} not found")

    # ----------------------------------------------------------------- groups (admin seeding)
    def add_group(
        self,
        folder_uuid: str,
        title: str,
        frame_urls: list[str],
        *,
        item_type: str = "imageGroup",
        client_metadata: dict[str, Any] | None = None,
        frame_metadata: list[dict[str, Any]] | None = None,
        uuid: str | None = None,
    ) -> Item:
        """An image group / sequence / DICOM series with one child item per frame, in order,
        as an upload job would create it (``frame_metadata[i]`` seeds frame ``i``)."""
        if item_type not in GROUP_ITEM_TYPES:
            raise ApiError(400, f"item_type must be one of {', '.join(GROUP_ITEM_TYPES)}")
        if not frame_urls or not all(isinstance(u, str) and u for u in frame_urls):
            raise ApiError(400, "a group needs at least one frame URL")
        if frame_metadata is not None and len(frame_metadata) != len(frame_urls):
            raise ApiError(400, "frame_metadata must have one object per frame")
        frame_type = "dicomFile" if item_type == "dicomSeries" else "image"
        with self._lock:
            folder = self.folder(folder_uuid)
            head = Item(
                uuid=canonical_uuid(uuid or new_uuid(), "uuid"),
                folder=folder.uuid,
                item_type=item_type,
                name=title,
                identity=f"{item_type}:" + "\n".join(frame_urls),
                client_metadata=dict(client_metadata or {}),
            )
            frames = [
                Item(
                    uuid=new_uuid(),
                    folder=folder.uuid,
                    item_type=frame_type,
                    name=default_title(url),
                    url=url,
                    identity=url,
                    client_metadata=dict((frame_metadata or [{}] * len(frame_urls))[index]),
                    media={"mimeType": guess_mime_type(url)},
                    group=head.uuid,
                )
                for index, url in enumerate(frame_urls)
            ]
            head.children = [f.uuid for f in frames]
            head.media["frameCount"] = len(frames)
            self._index([head, *frames])
            self._save("items", [head, *frames])
            return head

    # ----------------------------------------------------------------- internals: jobs
    def _advance(self) -> None:
        now = self._clock()
        for job_uuid in [u for u in self._pending if self.jobs[u].ready_at <= now]:
            self._finish(self.jobs[job_uuid])

    def _finish(self, job: Job) -> None:
        self._pending.remove(job.uuid)
        if job.forced_status is not None:
            self._finish_forced(job, job.forced_status)
        else:
            self._finish_units(job)
        job.units = []
        self._save("jobs", [job])

    def _finish_forced(self, job: Job, status: JobStatus) -> None:
        job.status = status
        if status == "ERROR":
            job.result.error = len(job.units)
            job.result.errors = ["Upload job failed (fault injected by the emulator)"]
        elif status == "CANCELLED":
            job.result.cancelled = len(job.units)
        else:
            job.result.done = len(job.units)

    def _finish_units(self, job: Job) -> None:
        problems = [self._unit_problem(unit) or self._duplicate_problem(job, unit) for unit in job.units]
        failed = any(problems) and not job.ignore_errors
        apply_good = not failed or self.config.error_job_keeps_good_units
        result = job.result
        changed: dict[str, Item] = {}
        for unit, problem in zip(job.units, problems, strict=True):
            if problem is not None:
                result.error += 1
                result.errors.append(f"{unit.action} failed: {problem}")
                result.unit_errors.append(
                    UnitError(
                        object_urls=unit.object_urls,
                        error=problem,
                        subtask_uuid=new_uuid(),
                        action_description=unit.action,
                    )
                )
            elif not apply_good:
                result.cancelled += 1
            else:
                result.done += 1
                changed.update((i.uuid, i) for i in self._apply_unit(job, unit))
        self._save("items", list(changed.values()))
        job.status = "ERROR" if failed else "DONE"

    def _apply_unit(self, job: Job, unit: Unit) -> list[Item]:
        """Create the unit's items (or upsert an existing duplicate); return the items changed."""
        existing = self._visible_duplicates(job, unit) if job.skip_duplicate_urls else []
        if existing:
            if self.config.report_skipped_duplicates:
                job.result.items_with_names.append((existing[0].uuid, existing[0].name))
            if not job.upsert_metadata:
                return []
            for item in existing:
                self._write_metadata(item, unit.client_metadata)
            return existing
        items = self._items_from_unit(job, unit)
        self._index(items)
        job.result.items_with_names.append((items[0].uuid, items[0].name))
        return items

    def _duplicate_problem(self, job: Job, unit: Unit) -> str | None:
        """With ``duplicates_as=unit-error``: a skipped duplicate is reported as a failed unit."""
        if not job.skip_duplicate_urls or self.config.duplicates_as != "unit-error":
            return None
        existing = self._visible_duplicates(job, unit)
        if not existing:
            return None
        return f"duplicate: {unit.object_urls[0]} already exists in this folder as item {existing[0].uuid}"

    def _stored_url(self, url: str) -> str:
        """The URL as the item keeps it (``normalise_urls``: host case, decoded escapes)."""
        return normalised_url(url) if self.config.normalise_urls else url

    def _unit_identity(self, unit: Unit) -> str | None:
        """The duplicate key of a unit, on stored URLs (see :attr:`Unit.identity`)."""
        if unit.url is not None:
            return self._stored_url(unit.url)
        if unit.frames:
            return f"{unit.item_type}:" + "\n".join(self._stored_url(f.url) for f in unit.frames)
        return unit.identity

    def _visible_duplicates(self, job: Job, unit: Unit) -> list[Item]:
        """Items ``skip_duplicate_urls`` matches for ``unit`` (``concurrent_jobs_deduplicate``:
        including those of jobs still running when ``job`` started)."""
        existing = self._duplicates(job.folder, self._unit_identity(unit))
        if self.config.concurrent_jobs_deduplicate:
            return existing
        return [item for item in existing if not self._created_concurrently(item, job)]

    def _created_concurrently(self, item: Item, job: Job) -> bool:
        """Whether ``item`` comes from another job that was still running when ``job`` started."""
        other = self.jobs.get(item.job) if item.job else None
        return (
            other is not None
            and other.uuid != job.uuid
            and other.created_at <= job.created_at < other.ready_at
        )

    def _unit_problem(self, unit: Unit) -> str | None:
        for url in unit.object_urls:
            problem = url_problem(url)
            if problem is not None:
                return problem
            if url in self.unreadable:
                return f"cannot read object {url}: access denied or the object does not exist"
        for source in unit.source_items:
            item = self.items.get(source)
            if item is None or item.item_type != "image":
                return f"item {source} is not an image item"
        if self.config.schema_enforcement == "reject":
            return metadata_problem(self.schema, unit.client_metadata)
        return None

    def _items_from_unit(self, job: Job, unit: Unit) -> list[Item]:
        provider = (
            self.integrations[job.integration].provider if job.integration in self.integrations else "AWS"
        )
        common: dict[str, Any] = {
            "folder": job.folder,
            "integration": job.integration,
            "storage_location": STORAGE_LOCATION_BY_PROVIDER[provider],
            "job": job.uuid,
        }
        head = Item(
            uuid=new_uuid(),
            item_type=unit.item_type,
            name=unit.title,
            url=None if unit.url is None else self._stored_url(unit.url),
            identity=self._unit_identity(unit),
            client_metadata=dict(unit.client_metadata),
            media=dict(unit.media),
            **common,
        )
        frames = [
            Item(
                uuid=new_uuid(),
                item_type=f.item_type,
                name=f.title or default_title(f.url),
                url=self._stored_url(f.url),
                media=f.media or {"mimeType": guess_mime_type(f.url)},
                group=head.uuid,
                **common,
            )
            for f in unit.frames
        ]
        head.children = [f.uuid for f in frames] or list(unit.source_items)
        if head.children:
            head.media.setdefault("frameCount", len(head.children))
        return [head, *frames]

    # ----------------------------------------------------------------- internals: items
    def _item_from_spec(self, folder: str, spec: dict[str, Any]) -> Item:
        url = spec.get("url")
        metadata = spec.get("client_metadata") or {}
        if url is not None and not isinstance(url, str):
            raise ApiError(400, "item url must be a string")
        if not isinstance(metadata, dict):
            raise ApiError(400, "item client_metadata must be an object")
        return Item(
            uuid=canonical_uuid(spec.get("uuid") or new_uuid(), "uuid"),
            folder=folder,
            item_type=spec.get("item_type", "image"),
            name=spec.get("name") or (default_title(url) if url else "item"),
            url=url,
            identity=url,
            client_metadata=metadata,
            storage_location=spec.get("storage_location") or "s3",
            media=spec.get("media") or ({"mimeType": guess_mime_type(url)} if url else {}),
        )

    def _index(self, items: Iterable[Item]) -> None:
        for item in items:
            self.items[item.uuid] = item
            self._folder_items[item.folder].append(item.uuid)
            if item.identity is not None:
                self._by_identity[(item.folder, item.identity)].append(item.uuid)

    def _duplicates(self, folder: str, identity: str | None) -> list[Item]:
        if identity is None:
            return []
        return [self.items[u] for u in self._by_identity.get((folder, identity), ())]

    def _write_metadata(self, item: Item, metadata: dict[str, Any]) -> None:
        item.client_metadata = patched(item.client_metadata, metadata, self.config.patch_semantics)
        item.last_edited_at = utc_now()

    def _existing_item(self, item_uuid: str) -> Item:
        item = self.items.get(canonical_uuid(item_uuid, "item"))
        if item is None:
            raise ApiError(404, f"item {item_uuid} not found")
        return item

    def _item_in_folder(self, folder_uuid: str, item_uuid: str) -> Item:
        folder = self.folder(folder_uuid)
        item = self.item(item_uuid)
        if item.folder != folder.uuid:
            raise ApiError(403, f"item {item_uuid} is not in folder {folder_uuid}")
        return item

    def _patch_target(self, item_uuid: str, folder_uuid: str | None) -> Item:
        return self.item(item_uuid) if folder_uuid is None else self._item_in_folder(folder_uuid, item_uuid)

    def _check_patch(self, item: Item, patch: Any) -> None:
        if not isinstance(patch, dict):
            raise ApiError(400, f"patch for item {item.uuid} must be an object")
        metadata = patch.get("clientMetadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise ApiError(400, f"clientMetadata for item {item.uuid} must be an object")
        if metadata is not None and self.config.schema_enforcement == "reject":
            final = patched(item.client_metadata, metadata, self.config.patch_semantics)
            problem = metadata_problem(self.schema, final)
            if problem is not None:
                raise ApiError(400, f"item {item.uuid}: {problem}")

    def _child_folders(self, parent: str | None, recursive: bool) -> set[str]:
        children = {f.uuid for f in self.folders.values() if f.parent == parent}
        if recursive:
            for child in list(children):
                children |= self._child_folders(child, True)
        return children

    # ----------------------------------------------------------------- internals: persistence
    def _save(self, table: str, records: list[Any]) -> None:
        if self._store is not None:
            self._store.put(table, records)

    def _save_kv(self, key: str, value: Any) -> None:
        if self._store is not None:
            self._store.put_kv(key, value)

    def _load(self, store: SqliteStore) -> None:
        tables, kv = store.load()
        for raw in tables["integrations"]:
            integration = Integration.model_validate_json(raw)
            self.integrations[integration.uuid] = integration
        for raw in tables["folders"]:
            folder = Folder.model_validate_json(raw)
            self.folders[folder.uuid] = folder
        self._index(Item.model_validate_json(raw) for raw in tables["items"])
        for raw in tables["jobs"]:
            job = Job.model_validate_json(raw)
            self.jobs[job.uuid] = job
            if job.status == "PENDING":
                self._pending.append(job.uuid)
        for raw in tables["datasets"]:
            dataset = Dataset.model_validate_json(raw)
            self.datasets[dataset.uuid] = dataset
            self._linked.update(link.item for link in dataset.links)
        for raw in tables.get("projects", []):
            project = Project.model_validate_json(raw)
            self.projects[project.uuid] = project
        self.schema = kv.get("schema")
        self.unreadable = set(kv.get("unreadable", []))


def _like_pattern(pattern: str) -> re.Pattern[str]:
    """SQL ``LIKE`` (``%`` any run, ``_`` one character) as a regular expression."""
    parts = ["." if c == "_" else ".*" if c == "%" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.DOTALL)


def _optional_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ApiError(400, f"{value!r} is not an ISO 8601 date-time") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _sorted(records: list[Any], order: str, desc: bool) -> list[Any]:
    if order == "createdAt":
        return sorted(records, key=lambda r: (r.created_at, r.uuid), reverse=desc)
    return sorted(records, key=lambda r: (r.name, r.created_at, r.uuid), reverse=desc)


def patched(current: dict[str, Any], patch: dict[str, Any], semantics: str) -> dict[str, Any]:
    """``clientMetadata`` after a PATCH under ``semantics`` (see ``EmulatorConfig.patch_semantics``)."""
    if semantics == "replace":
        return dict(patch)
    if semantics == "merge":
        return {**current, **patch}
    return merge_patch(current, patch)


def merge_patch(target: Any, patch: Any) -> Any:
    """JSON merge patch (RFC 7386, section 2)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
