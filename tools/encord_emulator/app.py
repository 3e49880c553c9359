"""The FastAPI application: Encord's public routes, the legacy ``POST /public`` RPC and the
unsigned, local-only ``/_admin`` interface.

Every public request goes through :meth:`Emulator.guard`: signature check (401 otherwise),
count under its route name, then any injected fault. Route names are listed in
:data:`encord_emulator.faults.ROUTE_NAMES`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from encord_emulator.admin import admin_router
from encord_emulator.auth import AuthError, PublicKeyLike, SignatureVerifier
from encord_emulator.config import EmulatorConfig
from encord_emulator.errors import ApiError
from encord_emulator.faults import FaultBoard
from encord_emulator.models import Item
from encord_emulator.persistence import SqliteStore
from encord_emulator.state import EmulatorState
from encord_emulator.wire import (
    data_row_json,
    dataset_json,
    folder_json,
    integration_json,
    item_json,
    job_json,
    ontology_json,
    page_json,
    project_dataset_json,
    project_json,
)

V2 = "/v2/public"
MAX_PAGE_SIZE = 1000
LEGACY_ROUTES = {
    ("dataset", "GET"): "datasets.get",
    ("datasetlinkitems", "POST"): "datasets.link_items",
    ("datarows", "GET"): "datasets.list_data_rows",
}
LEGACY_ERROR_CODES = {
    400: "INVALID_ARGUMENTS_ERROR",
    401: "AUTHENTICATION_ERROR",
    403: "AUTHORISATION_ERROR",
    404: "RESOURCE_NOT_FOUND_ERROR",
    405: "METHOD_NOT_ALLOWED_ERROR",
    409: "RESOURCE_EXISTS_ERROR",
    429: "RATE_LIMIT_ERROR",
}


class Emulator:
    """State, signature verifier and fault board of one running emulator."""

    def __init__(
        self,
        config: EmulatorConfig,
        public_keys: Iterable[PublicKeyLike],
        persist_path: str | None = None,
    ) -> None:
        self.config = config
        self.store = SqliteStore(persist_path) if persist_path else None
        self.state = EmulatorState(config, self.store)
        self.verifier = SignatureVerifier(
            public_keys, max_age_s=config.max_signature_age_s, accept_any_key=config.accept_any_key
        )
        self.faults = FaultBoard()
        self.closing = False
        """Set on shutdown: long polls answer at once instead of waiting."""
        self.pause: Callable[[float], Awaitable[None]] = asyncio.sleep
        """How an injected ``delay_s`` waits (tests swap it to observe the delays served)."""

    def reconfigure(self, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            setattr(self.config, key, value)
        self.verifier.max_age_s = self.config.max_signature_age_s
        self.verifier.accept_any_key = self.config.accept_any_key

    async def guard(self, request: Request, route: str) -> bytes:
        """Authenticate a v2 request, count it, apply any injected fault; return its body."""
        body = await request.body()
        self.check_body_size(route, body)
        try:
            self.verifier.verify_v2(request.method, request_target(request), request.headers, body)
        except AuthError as exc:
            self.faults.count("auth.rejected")
            raise ApiError(401, f"authentication failed: {exc}") from exc
        await self.apply_fault(route)
        return body

    def check_body_size(self, route: str, body: bytes) -> None:
        """413 for a body over ``max_body_bytes`` (counted under its route, before authentication)."""
        limit = self.config.max_body_bytes
        if limit is not None and len(body) > limit:
            self.faults.count(route)
            raise ApiError(413, f"request body of {len(body)} bytes is larger than {limit} bytes")

    async def apply_fault(self, route: str) -> None:
        self.faults.count(route)
        fault = self.faults.take(route)
        if fault is None:
            return
        if fault.delay_s > 0:
            await self.pause(fault.delay_s)
        if fault.status >= 400:
            retry_after = None if fault.retry_after is None else math.ceil(fault.retry_after)
            raise ApiError(
                fault.status, f"fault injected by the emulator (HTTP {fault.status})", retry_after=retry_after
            )


def request_target(request: Request) -> str:
    """The request target exactly as sent: raw path plus ``?query`` when there is one."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    return (raw_path + (b"?" + query if query else b"")).decode("latin-1")


def create_app(emulator: Emulator) -> FastAPI:
    app = FastAPI(title="Encord emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.emulator = emulator
    app.add_exception_handler(ApiError, _api_error_response)  # type: ignore[arg-type]

    @app.middleware("http")
    async def rate_limit_headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        if request.url.path.startswith((V2, "/public")):
            response.headers.update(emulator.config.rate_limit_headers)
        return response

    app.include_router(admin_router(emulator))
    _add_schema_routes(app, emulator)
    _add_folder_routes(app, emulator)
    _add_job_routes(app, emulator)
    _add_item_routes(app, emulator)
    _add_dataset_routes(app, emulator)
    _add_project_routes(app, emulator)
    _add_fallback_routes(app, emulator)
    return app


def _api_error_response(_request: Request, exc: ApiError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return JSONResponse({"message": exc.message}, status_code=exc.status, headers=headers)


# --------------------------------------------------------------------------- request parsing
def json_body(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError as exc:
        raise ApiError(400, f"the body is not JSON: {exc}") from exc


def json_object(body: bytes) -> dict[str, Any]:
    value = json_body(body)
    if not isinstance(value, dict):
        raise ApiError(400, "the body must be a JSON object")
    return value


def query_bool(request: Request, name: str) -> bool | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise ApiError(400, f"query parameter {name} must be true or false")


def query_int(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ApiError(400, f"query parameter {name} must be an integer") from exc


def page_request(request: Request) -> tuple[int, int]:
    """``(offset, page size)`` from ``pageToken`` / ``pageSize``."""
    size = query_int(request, "pageSize", 100)
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ApiError(400, f"pageSize must be between 1 and {MAX_PAGE_SIZE}")
    token = request.query_params.get("pageToken")
    if not token:
        return 0, size
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("offset:")), size
    except (ValueError, binascii.Error) as exc:
        raise ApiError(400, "invalid pageToken") from exc


def paged(
    records: list[Any], offset: int, size: int, render: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    end = offset + size
    token = base64.urlsafe_b64encode(f"offset:{end}".encode()).decode() if end < len(records) else None
    return page_json([render(r) for r in records[offset:end]], token)


def order_of(request: Request) -> str:
    order = request.query_params.get("order", "name")
    if order not in ("name", "createdAt"):
        raise ApiError(400, "order must be name or createdAt")
    return order


# --------------------------------------------------------------------------- routes
def _add_schema_routes(app: FastAPI, emu: Emulator) -> None:
    path = f"{V2}/organisation/client-metadata-schema-v2"

    @app.get(path)
    async def get_schema(request: Request) -> Any:
        await emu.guard(request, "schema.get")
        return emu.state.get_schema()

    @app.post(path)
    async def save_schema(request: Request) -> Any:
        body = await emu.guard(request, "schema.save")
        emu.state.save_schema(json_body(body))
        return None

    @app.get(f"{V2}/cloud-integrations")
    async def list_integrations(request: Request) -> Any:
        await emu.guard(request, "integrations.list")
        integrations = emu.state.list_integrations(
            request.query_params.getlist("filterIntegrationUuids"),
            request.query_params.getlist("filterIntegrationTitles"),
        )
        return {"result": [integration_json(i) for i in integrations]}


def _add_folder_routes(app: FastAPI, emu: Emulator) -> None:
    def render(folder: Any) -> dict[str, Any]:
        return folder_json(folder, emu.state.path_to_root(folder), emu.config.owner)

    def listing(request: Request, parent: str | None, everywhere: bool) -> dict[str, Any]:
        offset, size = page_request(request)
        folders = emu.state.list_folders(
            parent=parent,
            everywhere=everywhere,
            recursive=bool(query_bool(request, "isRecursive")),
            search=request.query_params.get("search"),
            dataset_synced=query_bool(request, "datasetSynced"),
            order=order_of(request),
            desc=bool(query_bool(request, "desc")),
        )
        return paged(folders, offset, size, render)

    @app.post(f"{V2}/storage/folders")
    async def create_folder(request: Request) -> Any:
        body = json_object(await emu.guard(request, "folders.create"))
        if body.get("cloudSyncedFolderParams") is not None:
            raise ApiError(400, "the emulator does not support cloud-synced folders")
        folder = emu.state.create_folder(
            body.get("name"),  # type: ignore[arg-type]
            parent=body.get("parent"),
            description=body.get("description"),
            client_metadata=body.get("clientMetadata"),
        )
        return render(folder)

    @app.get(f"{V2}/storage/folders")
    async def list_top_folders(request: Request) -> Any:
        await emu.guard(request, "folders.list")
        return listing(request, None, everywhere=False)

    @app.get(f"{V2}/storage/search/folders")
    async def search_folders(request: Request) -> Any:
        await emu.guard(request, "folders.search")
        return listing(request, None, everywhere=True)

    @app.get(f"{V2}/storage/folders/{{folder}}")
    async def get_folder(request: Request, folder: str) -> Any:
        await emu.guard(request, "folders.get")
        return render(emu.state.folder(folder))

    @app.delete(f"{V2}/storage/folders/{{folder}}")
    async def delete_folder(request: Request, folder: str) -> Any:
        await emu.guard(request, "folders.delete")
        emu.state.delete_folder(folder)
        return None

    @app.get(f"{V2}/storage/folders/{{folder}}/folders")
    async def list_subfolders(request: Request, folder: str) -> Any:
        await emu.guard(request, "folders.list_subfolders")
        return listing(request, folder, everywhere=False)


def _add_job_routes(app: FastAPI, emu: Emulator) -> None:
    jobs = f"{V2}/storage/folders/{{folder}}/data-upload-jobs"

    @app.post(jobs)
    async def start_job(request: Request, folder: str) -> Any:
        body = json_object(await emu.guard(request, "upload_jobs.start"))
        files = body.get("dataItems") if body.get("dataItems") is not None else body.get("externalFiles")
        if (body.get("dataItems") is None) == (body.get("externalFiles") is None):
            raise ApiError(400, "send exactly one of dataItems and externalFiles")
        job = emu.state.start_job(
            folder,
            files,
            integration=body.get("integrationHash"),
            ignore_errors=bool(body.get("ignoreErrors", False)),
            file_name=body.get("fileName"),
        )
        if emu.state.take_dropped_job_start():
            raise ApiError(504, "upstream request timeout (the emulator dropped this response)")
        return job.uuid

    @app.get(f"{jobs}/{{job}}")
    async def get_job(request: Request, folder: str, job: str) -> Any:
        await emu.guard(request, "upload_jobs.get")
        wait = min(max(query_int(request, "timeoutSeconds", 60), 0), emu.config.max_long_poll_s)
        deadline = time.monotonic() + wait
        record = emu.state.job(folder, job)
        while record.status == "PENDING" and not emu.closing and (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, emu.state.seconds_until_ready(record) + 0.005, 0.25))
            record = emu.state.job(folder, job)
        return job_json(record)

    @app.post(f"{jobs}/{{job}}/cancel")
    async def cancel_job(request: Request, folder: str, job: str) -> Any:
        await emu.guard(request, "upload_jobs.cancel")
        return {"unitsCancelledCount": emu.state.cancel_job(folder, job)}


def _add_item_routes(app: FastAPI, emu: Emulator) -> None:  # noqa: C901 (the nested route handlers count toward it; each is short)
    def render(item: Item) -> dict[str, Any]:
        return item_json(item, emu.config.owner, backed_data_units=emu.state.data_units_count(item.uuid))

    @app.get(f"{V2}/storage/folders/{{folder}}/items")
    async def list_items(request: Request, folder: str) -> Any:
        await emu.guard(request, "items.list")
        offset, size = page_request(request)
        items = emu.state.list_items(
            folder,
            search=request.query_params.get("search"),
            item_types=request.query_params.getlist("itemTypes"),
            is_in_dataset=query_bool(request, "isInDataset"),
            recursive=bool(query_bool(request, "isRecursive")),
            order=order_of(request),
            desc=bool(query_bool(request, "desc")),
        )
        include = query_bool(request, "includeClientMetadata") is not False
        as_url = include and bool(query_bool(request, "clientMetadataAsSignedUrl"))

        def render_listed(item: Item) -> dict[str, Any]:
            url = (
                f"{str(request.base_url).rstrip('/')}/_files/client-metadata/{item.uuid}" if as_url else None
            )
            return item_json(
                item,
                emu.config.owner,
                backed_data_units=emu.state.data_units_count(item.uuid),
                include_metadata=include,
                metadata_url=url,
            )

        page = paged(items, offset, size, render_listed)
        limit = emu.config.max_listing_bytes
        if limit is not None and len(json.dumps(page)) > limit:
            raise ApiError(504, f"listing page over {limit} bytes: upstream request timeout")
        return page

    @app.get(f"{V2}/storage/items/{{item}}")
    async def get_item(request: Request, item: str) -> Any:
        await emu.guard(request, "items.get")
        return render(emu.state.item(item))

    @app.post(f"{V2}/storage/items/get-bulk")
    async def get_items_bulk(request: Request) -> Any:
        body = json_object(await emu.guard(request, "items.get_bulk"))
        uuids = body.get("itemUuids")
        if not isinstance(uuids, list):
            raise ApiError(400, "itemUuids must be a list")
        return page_json([render(i) for i in emu.state.get_items(uuids)])

    @app.patch(f"{V2}/storage/folders/{{folder}}/items/{{item}}")
    async def patch_item(request: Request, folder: str, item: str) -> Any:
        body = json_object(await emu.guard(request, "items.patch"))
        return render(emu.state.patch_items({item: body}, folder_uuid=folder)[0])

    @app.patch(f"{V2}/storage/items/patch-bulk")
    async def patch_items_bulk(request: Request) -> Any:
        body = json_object(await emu.guard(request, "items.patch_bulk"))
        patches = body.get("itemPatches")
        if not isinstance(patches, dict):
            raise ApiError(400, "itemPatches must be an object keyed by item UUID")
        return page_json([render(i) for i in emu.state.patch_items(patches)])

    @app.post(f"{V2}/storage/folders/{{folder}}/items/delete")
    async def delete_items(request: Request, folder: str) -> Any:
        body = json_object(await emu.guard(request, "items.delete"))
        uuids = body.get("childUuids")
        if not isinstance(uuids, list):
            raise ApiError(400, "childUuids must be a list")
        return {"deletedCount": emu.state.delete_items(folder, uuids)}

    @app.get(f"{V2}/storage/folders/{{folder}}/items/{{item}}/child-items")
    async def child_items(request: Request, folder: str, item: str) -> Any:
        await emu.guard(request, "items.child_items")
        return page_json([render(i) for i in emu.state.child_items(folder, item)])

    @app.get("/_files/client-metadata/{item}")
    async def client_metadata_file(item: str) -> Any:
        await emu.apply_fault("items.metadata_url")
        return emu.state.item(item).client_metadata


def _add_dataset_routes(app: FastAPI, emu: Emulator) -> None:
    @app.post(f"{V2}/datasets")
    async def create_dataset(request: Request) -> Any:
        body = json_object(await emu.guard(request, "datasets.create"))
        dataset = emu.state.create_dataset(
            body.get("title"),  # type: ignore[arg-type]
            description=body.get("description"),
            create_backing_folder=bool(body.get("createBackingFolder", True)),
        )
        return {"datasetUuid": dataset.uuid, "backingFolderUuid": dataset.backing_folder}

    @app.post("/public")
    async def legacy_rpc(request: Request) -> Response:
        body = await request.body()
        try:
            emu.verifier.verify_legacy(request.headers, body)
        except AuthError as exc:
            emu.faults.count("auth.rejected")
            return _legacy_error(401, f"authentication failed: {exc}", http_status=401)
        try:
            rpc = json_object(body)
            query = (str(rpc.get("query_type")), str(rpc.get("query_method")))
            route = LEGACY_ROUTES.get(query, "legacy.unknown")
            await emu.apply_fault(route)
            response = _legacy_call(emu, route, rpc, request.headers.get("ResourceID"))
        except ApiError as exc:
            http_status = exc.status if exc.status in (429, 500, 502, 503, 504) else 200
            return _legacy_error(
                exc.status, exc.message, http_status=http_status, retry_after=exc.retry_after
            )
        return JSONResponse({"status": 200, "response": response})


def _legacy_call(emu: Emulator, route: str, rpc: dict[str, Any], resource_id: str | None) -> Any:
    values = rpc.get("values") or {}
    payload = values.get("payload") or {}
    dataset_uuid = str(values.get("uid") or resource_id or "")
    if route == "datasets.get":
        settings = payload.get("dataset_access_settings") or {}
        dataset = emu.state.dataset(dataset_uuid)
        rows = []
        if settings.get("fetch_rows", True):
            with_metadata = bool(settings.get("fetch_client_metadata", False))
            rows = [data_row_json(link, emu.state.item(link.item), with_metadata) for link in dataset.links]
        return dataset_json(dataset, rows)
    if route == "datasets.link_items":
        item_uuids = payload.get("item_uuids")
        if not isinstance(item_uuids, list):
            raise ApiError(400, "item_uuids must be a list")
        created = emu.state.link_items(dataset_uuid, item_uuids, payload.get("duplicates_behavior", "SKIP"))
        return [data_row_json(link, item, True) for link, item in created]
    if route == "datasets.list_data_rows":
        settings = payload.get("dataset_access_settings") or {}
        linked = emu.state.data_rows(
            dataset_uuid,
            title_eq=payload.get("title_eq"),
            title_like=payload.get("title_like"),
            data_hashes=payload.get("data_hashes"),
            data_types=payload.get("data_types"),
            created_before=payload.get("created_before"),
            created_after=payload.get("created_after"),
        )
        with_metadata = bool(settings.get("fetch_client_metadata", False))
        return [data_row_json(link, item, with_metadata) for link, item in linked]
    raise ApiError(404, f"the emulator has no legacy query {rpc.get('query_type')}/{rpc.get('query_method')}")


def _add_project_routes(app: FastAPI, emu: Emulator) -> None:
    @app.get(f"{V2}/projects/{{project}}")
    async def get_project(request: Request, project: str) -> Any:
        await emu.guard(request, "projects.get")
        return project_json(emu.state.project(project), emu.config.owner)

    @app.get(f"{V2}/projects/{{project}}/datasets")
    async def list_project_datasets(request: Request, project: str) -> Any:
        await emu.guard(request, "projects.list_datasets")
        return page_json([project_dataset_json(d) for d in emu.state.project_datasets(project)])

    @app.get(f"{V2}/ontologies/{{ontology}}")
    async def get_ontology(request: Request, ontology: str) -> Any:
        await emu.guard(request, "ontologies.get")
        return ontology_json(emu.state.ontology_project(ontology))


def _legacy_error(
    status: int, message: str, *, http_status: int, retry_after: int | None = None
) -> JSONResponse:
    code = LEGACY_ERROR_CODES.get(status, "UNKNOWN_ERROR")
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    body = {"status": status, "response": [code], "payload": message}
    return JSONResponse(body, status_code=http_status, headers=headers)


def _add_fallback_routes(app: FastAPI, emu: Emulator) -> None:
    @app.api_route(f"{V2}/{{rest:path}}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def unknown_route(request: Request, rest: str) -> Any:
        await emu.guard(request, "unknown")
        raise ApiError(404, f"the emulator has no route {request.method} {V2}/{rest}")
