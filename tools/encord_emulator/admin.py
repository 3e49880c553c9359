"""``/_admin``: unsigned HTTP controls for tests and the demo. LOCAL USE ONLY: anyone who can
reach the port can change the state; the server binds to 127.0.0.1 by default.

Seeding (integrations, folders, items, datasets, finished jobs), fault injection, request
counters, the unreadable-URL list, run-time options and read-outs of the state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from encord_emulator.errors import ApiError
from encord_emulator.faults import ROUTE_NAMES, Fault
from encord_emulator.models import JobStatus
from encord_emulator.wire import admin_item_json, job_json

if TYPE_CHECKING:
    from encord_emulator.app import Emulator


class IntegrationIn(BaseModel):
    title: str
    provider: str = "AWS"
    uuid: str | None = None


class UrlIn(BaseModel):
    url: str
    unreadable: bool = True


class FaultIn(BaseModel):
    route: str
    status: int = Field(ge=100, le=599)
    times: int = Field(default=1, ge=1)
    retry_after: float | None = Field(default=None, ge=0)
    delay_s: float = Field(default=0.0, ge=0)


class JobStatusIn(BaseModel):
    status: JobStatus = "ERROR"


class FolderIn(BaseModel):
    name: str
    parent: str | None = None
    uuid: str | None = None


class ItemsIn(BaseModel):
    folder: str
    items: list[dict[str, Any]]


class DatasetIn(BaseModel):
    title: str
    uuid: str | None = None


class LinksIn(BaseModel):
    item_uuids: list[str]


class ProjectIn(BaseModel):
    title: str
    datasets: list[str] = Field(default_factory=list)
    uuid: str | None = None


class GroupIn(BaseModel):
    folder: str
    title: str
    frames: list[str]
    item_type: str = "imageGroup"
    client_metadata: dict[str, Any] | None = None
    frame_metadata: list[dict[str, Any]] | None = None
    uuid: str | None = None


class JobIn(BaseModel):
    folder: str
    uuid: str | None = None
    status: Literal["DONE", "ERROR", "CANCELLED"] = "DONE"


def admin_router(emu: Emulator) -> APIRouter:  # noqa: C901 (the nested route handlers count toward it; each is short)
    router = APIRouter(prefix="/_admin")
    state = emu.state

    def items_view(items: list[Any]) -> list[dict[str, Any]]:
        return [admin_item_json(i, state.data_units_count(i.uuid) > 0) for i in items]

    @router.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "key_ids": emu.verifier.key_ids}

    @router.get("/routes")
    def routes() -> dict[str, str]:
        return ROUTE_NAMES

    @router.post("/integrations")
    def add_integration(body: IntegrationIn) -> dict[str, str]:
        return {"uuid": state.add_integration(body.title, body.provider, body.uuid).uuid}

    @router.post("/unreadable")
    def set_unreadable(body: UrlIn) -> dict[str, bool]:
        state.set_unreadable(body.url, body.unreadable)
        return {"ok": True}

    @router.post("/faults")
    def inject(body: FaultIn) -> dict[str, bool]:
        try:
            emu.faults.inject(body.route, Fault(body.status, body.times, body.retry_after, body.delay_s))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc
        return {"ok": True}

    @router.delete("/faults")
    def clear_faults() -> dict[str, bool]:
        emu.faults.clear()
        return {"ok": True}

    @router.post("/fail-next-job")
    def fail_next_job(body: JobStatusIn) -> dict[str, bool]:
        state.fail_next_job(body.status)
        return {"ok": True}

    @router.get("/counts")
    def counts() -> dict[str, int]:
        return emu.faults.counts()

    @router.delete("/counts")
    def reset_counts() -> dict[str, bool]:
        emu.faults.reset_counts()
        return {"ok": True}

    @router.get("/config")
    def get_config() -> dict[str, Any]:
        return emu.config.model_dump()

    @router.patch("/config")
    def patch_config(body: dict[str, Any]) -> dict[str, Any]:
        try:
            emu.reconfigure(body)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc
        return emu.config.model_dump()

    @router.post("/folders")
    def add_folder(body: FolderIn) -> dict[str, str]:
        return {"uuid": state.create_folder(body.name, parent=body.parent, uuid=body.uuid).uuid}

    @router.get("/folders")
    def folders() -> list[dict[str, Any]]:
        return [f.model_dump(mode="json") for f in state.folders.values()]

    @router.post("/items")
    def add_items(body: ItemsIn) -> dict[str, list[str]]:
        folder = state.resolve_folder(body.folder)
        return {"uuids": [i.uuid for i in state.add_items(folder.uuid, body.items)]}

    @router.get("/items")
    def all_items() -> list[dict[str, Any]]:
        return items_view(state.all_items())

    @router.get("/folder-items")
    def folder_items(folder: str, frames: bool = False) -> list[dict[str, Any]]:
        folder_uuid = state.resolve_folder(folder).uuid
        items = [i for i in state.all_items() if i.folder == folder_uuid and (frames or i.group is None)]
        return items_view(items)

    @router.post("/datasets")
    def add_dataset(body: DatasetIn) -> dict[str, str]:
        return {"uuid": state.create_dataset(body.title, uuid=body.uuid).uuid}

    @router.get("/datasets")
    def datasets() -> list[dict[str, Any]]:
        return [d.model_dump(mode="json") for d in state.datasets.values()]

    @router.post("/datasets/{dataset}/links")
    def link_items(dataset: str, body: LinksIn) -> dict[str, list[str]]:
        created = state.link_items(dataset, body.item_uuids, "SKIP")
        return {"data_hashes": [link.data_hash for link, _ in created]}

    @router.post("/projects")
    def add_project(body: ProjectIn) -> dict[str, str]:
        return {"uuid": state.create_project(body.title, body.datasets, uuid=body.uuid).uuid}

    @router.get("/projects")
    def projects() -> list[dict[str, Any]]:
        return [p.model_dump(mode="json") for p in state.projects.values()]

    @router.post("/groups")
    def add_group(body: GroupIn) -> dict[str, Any]:
        folder = state.resolve_folder(body.folder)
        head = state.add_group(
            folder.uuid,
            body.title,
            body.frames,
            item_type=body.item_type,
            client_metadata=body.client_metadata,
            frame_metadata=body.frame_metadata,
            uuid=body.uuid,
        )
        return {"uuid": head.uuid, "children": list(head.children)}

    @router.post("/jobs")
    def add_job(body: JobIn) -> dict[str, str]:
        return {"uuid": state.add_finished_job(body.folder, body.uuid, body.status).uuid}

    @router.get("/jobs")
    def jobs() -> list[dict[str, Any]]:
        return [{"uuid": j.uuid, "folder": j.folder, **job_json(j)} for j in state.all_jobs()]

    @router.get("/schema")
    def schema() -> Any:
        return state.get_schema()

    @router.put("/schema")
    def seed_schema(body: dict[str, Any]) -> Any:
        state.save_schema(body)
        return state.get_schema()

    return router
