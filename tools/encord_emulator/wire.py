"""Records -> the JSON bodies Encord answers with (camelCase v2 DTOs, snake_case legacy rows).

Every field the SDK's models require is present (``None`` where the emulator does not know the
value); the contract tests parse each body with the SDK's own models.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from encord_emulator.models import DataLink, Dataset, Folder, Integration, Item, Job, Project

ITEM_MEDIA_FIELDS = (
    "fileSize",
    "mimeType",
    "duration",
    "fps",
    "height",
    "width",
    "dicomInstanceUid",
    "dicomStudyUid",
    "dicomSeriesUid",
    "frameCount",
    "audioSampleRate",
    "audioBitDepth",
    "audioCodec",
    "audioNumChannels",
)
LEGACY_DATA_TYPES = {
    "video": "VIDEO",
    "image": "IMAGE",
    "imageGroup": "IMG_GROUP",
    "imageSequence": "IMG_GROUP",
    "dicomSeries": "DICOM",
    "dicomFile": "DICOM",
    "audio": "AUDIO",
    "plainText": "PLAIN_TEXT",
    "pdf": "PDF",
    "nifti": "NIFTI",
    "timeseries": "TIME_SERIES",
    "scene": "SCENE",
    "group": "GROUP",
}
LEGACY_STORAGE_LOCATIONS = {"s3": 1, "gcp": 2, "azure": 3, "s3Compatible": 4}
LEGACY_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def iso(moment: datetime) -> str:
    return moment.isoformat()


def integration_json(integration: Integration) -> dict[str, Any]:
    return {"integrationUuid": integration.uuid, "title": integration.title}


def folder_json(folder: Folder, path_to_root: list[Folder], owner: str) -> dict[str, Any]:
    return {
        "uuid": folder.uuid,
        "parent": folder.parent,
        "name": folder.name,
        "description": folder.description,
        "clientMetadata": folder.client_metadata,
        "owner": owner,
        "createdAt": iso(folder.created_at),
        "lastEditedAt": iso(folder.last_edited_at),
        "userRole": "admin",
        "syncedDatasetHash": folder.synced_dataset,
        "pathToRoot": [
            {"uuid": f.uuid, "parentUuid": f.parent, "name": f.name, "syncedDatasetHash": f.synced_dataset}
            for f in path_to_root
        ],
        "folderType": "generic",
        "integrationHash": None,
        "remoteUrl": None,
    }


def item_json(
    item: Item,
    owner: str,
    *,
    backed_data_units: int = 0,
    include_metadata: bool = True,
    metadata_url: str | None = None,
) -> dict[str, Any]:
    """A ``StorageItem``; with ``metadata_url`` the metadata is only reachable through that URL."""
    body: dict[str, Any] = {
        "uuid": item.uuid,
        "parent": item.folder,
        "itemType": item.item_type,
        "name": item.name,
        "description": "",
        "clientMetadata": json.dumps(item.client_metadata if include_metadata and not metadata_url else {}),
        "owner": owner,
        "createdAt": iso(item.created_at),
        "lastEditedAt": iso(item.last_edited_at),
        "isTombstone": False,
        "isPlaceholder": False,
        "backedDataUnitsCount": backed_data_units,
        "storageLocation": item.storage_location,
        "integrationHash": item.integration,
        "url": item.url,
        "signedUrl": None,
        "timeseriesSettings": None,
    }
    body.update({field: item.media.get(field) for field in ITEM_MEDIA_FIELDS})
    if metadata_url is not None:
        body["clientMetadataSignedUrl"] = metadata_url
    return body


def page_json(results: list[dict[str, Any]], next_page_token: str | None = None) -> dict[str, Any]:
    return {"results": results, "nextPageToken": next_page_token}


def job_json(job: Job) -> dict[str, Any]:
    """An ``UploadLongPollingState``."""
    result = job.result
    pending = len(job.units) if job.status == "PENDING" else 0
    return {
        "status": job.status,
        "itemsWithNames": [{"itemUuid": u, "name": n} for u, n in result.items_with_names],
        "errors": list(result.errors),
        "unitsPendingCount": pending,
        "unitsDoneCount": result.done,
        "unitsErrorCount": result.error,
        "unitsCancelledCount": result.cancelled,
        "unitErrors": [
            {
                "objectUrls": e.object_urls,
                "error": e.error,
                "subtaskUuid": e.subtask_uuid,
                "actionDescription": e.action_description,
            }
            for e in result.unit_errors
        ],
        "fileName": job.file_name,
    }


def data_row_json(link: DataLink, item: Item, include_metadata: bool) -> dict[str, Any]:
    """A legacy ``DataRow`` dict (``encord.orm.dataset.DataRow.from_dict``)."""
    return {
        "data_hash": link.data_hash,
        "data_title": item.name,
        "data_type": LEGACY_DATA_TYPES.get(item.item_type, "IMAGE"),
        "created_at": link.created_at.strftime(LEGACY_DATETIME_FORMAT),
        "last_edited_at": item.last_edited_at.strftime(LEGACY_DATETIME_FORMAT),
        "width": item.media.get("width"),
        "height": item.media.get("height"),
        "file_link": item.url,
        "file_size": item.media.get("fileSize"),
        "file_type": item.media.get("mimeType"),
        "storage_location": LEGACY_STORAGE_LOCATIONS.get(item.storage_location, 0),
        "frames_per_second": item.media.get("fps"),
        "duration": item.media.get("duration"),
        "client_metadata": dict(item.client_metadata) if include_metadata else None,
        "signed_url": None,
        "is_optimised_image_group": None,
        "backing_item_uuid": item.uuid,
        "images_data": None,
    }


def dataset_json(dataset: Dataset, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A legacy ``Dataset`` dict (``encord.orm.dataset.Dataset.from_dict``)."""
    return {
        "dataset_hash": dataset.uuid,
        "title": dataset.title,
        "description": dataset.description,
        "dataset_type": "CORD_STORAGE",
        "backing_folder_uuid": dataset.backing_folder,
        "data_rows": rows,
    }


def project_json(project: Project, owner: str) -> dict[str, Any]:
    """A ``ProjectDTO`` (``GET /v2/public/projects/{project}``): a workflow project, no workflow."""
    return {
        "projectHash": project.uuid,
        "projectType": "workflow",
        "status": "inProgress",
        "title": project.title,
        "description": project.description,
        "createdAt": iso(project.created_at),
        "creatorEmail": owner,
        "lastEditedAt": iso(project.created_at),
        "ontologyHash": project.ontology,
        "editorOntology": EMPTY_ONTOLOGY,
        "userRole": 0,
        "sourceProjects": None,
        "workflowManagerUuid": None,
        "workflow": None,
    }


EMPTY_ONTOLOGY: dict[str, Any] = {"objects": [], "classifications": []}


def ontology_json(project: Project) -> dict[str, Any]:
    """An ``OntologyWithUserRole``: the project's empty ontology."""
    return {
        "ontologyUuid": project.ontology,
        "title": f"{project.title} ontology",
        "description": "",
        "editor": EMPTY_ONTOLOGY,
        "createdAt": iso(project.created_at),
        "lastEditedAt": iso(project.created_at),
        "userRole": 0,
    }


def project_dataset_json(dataset: Dataset) -> dict[str, Any]:
    """A ``ProjectDataset`` (one entry of ``GET /v2/public/projects/{project}/datasets``)."""
    return {"datasetHash": dataset.uuid, "title": dataset.title, "description": dataset.description}


def admin_item_json(item: Item, in_datasets: bool) -> dict[str, Any]:
    """The admin view of an item: plain snake_case, metadata as a dict."""
    return {
        "uuid": item.uuid,
        "name": item.name,
        "title": item.name,
        "url": item.url,
        "item_type": item.item_type,
        "client_metadata": dict(item.client_metadata),
        "parent": item.folder,
        "group": item.group,
        "children": list(item.children),
        "integration": item.integration,
        "media": dict(item.media),
        "job": item.job,
        "in_dataset": in_datasets,
        "created_at": iso(item.created_at),
        "last_edited_at": iso(item.last_edited_at),
    }
