"""Run the emulator in a background thread and drive its admin interface.

    private_openssh, public_key = generate_ssh_keypair()
    with EmulatorServer.start(public_keys=[public_key]) as emu:
        client = EncordUserClient.create_with_ssh_private_key(private_openssh, domain=emu.url)
        integration = emu.admin.add_integration("my-s3")

:class:`AdminClient` talks HTTP only, so another process can use it with the URL alone:
``AdminClient("http://127.0.0.1:8765")``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from encord_emulator.app import Emulator, create_app
from encord_emulator.auth import PublicKeyLike
from encord_emulator.config import EmulatorConfig, PatchSemantics


def generate_ssh_keypair() -> tuple[str, str]:
    """A fresh Ed25519 key pair: (OpenSSH private key text, ``ssh-ed25519 AAAA...`` public line)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()
    public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    return private, public


class EmulatorAdminError(RuntimeError):
    """An admin call was refused; the message has the status and the emulator's reason."""


class AdminClient:
    """Thin HTTP client for ``/_admin`` (see ``admin.py``)."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.base = url.rstrip("/") + "/_admin"
        self.timeout_s = timeout_s
        self._session = requests.Session()

    def add_integration(self, title: str, provider: str = "AWS", uuid: str | None = None) -> str:
        """Create a cloud integration; returns its UUID (``provider``: AWS, GCP, AZURE, ...)."""
        return str(
            self._call("POST", "/integrations", {"title": title, "provider": provider, "uuid": uuid})["uuid"]
        )

    def set_unreadable(self, url: str, unreadable: bool = True) -> None:
        """Job units that reference ``url`` fail with a unit error."""
        self._call("POST", "/unreadable", {"url": url, "unreadable": unreadable})

    def inject(
        self,
        route: str,
        status: int,
        times: int = 1,
        retry_after: float | None = None,
        delay_s: float = 0.0,
    ) -> None:
        """The next ``times`` requests to ``route`` (a name from :meth:`routes`) wait ``delay_s``
        and answer ``status`` (status < 400: only the delay). ``retry_after`` is sent rounded up
        to whole seconds, the only form the SDK understands."""
        body = {
            "route": route,
            "status": status,
            "times": times,
            "retry_after": retry_after,
            "delay_s": delay_s,
        }
        self._call("POST", "/faults", body)

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def fail_next_job(self, status: str = "ERROR") -> None:
        """The next upload job started ends with ``status`` (ERROR or CANCELLED) and creates nothing."""
        self._call("POST", "/fail-next-job", {"status": status})

    def counts(self) -> dict[str, int]:
        """Requests per route name since the start or the last :meth:`reset_counts`."""
        return dict(self._call("GET", "/counts"))

    def reset_counts(self) -> None:
        self._call("DELETE", "/counts")

    def routes(self) -> dict[str, str]:
        """Route name -> the HTTP route it stands for."""
        return dict(self._call("GET", "/routes"))

    def folder_items(self, folder_path_or_uuid: str, include_frames: bool = False) -> list[dict[str, Any]]:
        """Items of a folder given by UUID or ``name/name`` path: dicts with uuid, name, title, url,
        item_type, client_metadata, parent, group, children, media, in_dataset, ..."""
        params = {"folder": folder_path_or_uuid, "frames": include_frames}
        return list(self._call("GET", "/folder-items", params=params))

    def all_items(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/items"))

    def add_folder(self, name: str, parent: str | None = None, uuid: str | None = None) -> str:
        return str(self._call("POST", "/folders", {"name": name, "parent": parent, "uuid": uuid})["uuid"])

    def add_items(self, folder: str, items: list[dict[str, Any]]) -> list[str]:
        """Create items without a job: dicts with url, and optionally name, item_type, client_metadata,
        uuid, media (wire names such as ``mimeType``)."""
        return list(self._call("POST", "/items", {"folder": folder, "items": items})["uuids"])

    def add_dataset(self, title: str, uuid: str | None = None) -> str:
        return str(self._call("POST", "/datasets", {"title": title, "uuid": uuid})["uuid"])

    def link_items(self, dataset: str, item_uuids: list[str]) -> list[str]:
        """Link items to a dataset as data units (already linked ones are skipped); returns the
        data hashes created, in order."""
        return list(
            self._call("POST", f"/datasets/{dataset}/links", {"item_uuids": item_uuids})["data_hashes"]
        )

    def add_project(self, title: str, datasets: list[str] | None = None, uuid: str | None = None) -> str:
        """A project with these datasets attached (and an empty ontology); returns its UUID."""
        body = {"title": title, "datasets": datasets or [], "uuid": uuid}
        return str(self._call("POST", "/projects", body)["uuid"])

    def projects(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/projects"))

    def add_group(
        self,
        folder: str,
        title: str,
        frames: list[str],
        *,
        item_type: str = "imageGroup",
        client_metadata: dict[str, Any] | None = None,
        frame_metadata: list[dict[str, Any]] | None = None,
        uuid: str | None = None,
    ) -> tuple[str, list[str]]:
        """An image group (or ``imageSequence`` / ``dicomSeries``) with one child item per frame URL,
        without a job; returns (group UUID, child UUIDs in frame order)."""
        body = {
            "folder": folder,
            "title": title,
            "frames": frames,
            "item_type": item_type,
            "client_metadata": client_metadata,
            "frame_metadata": frame_metadata,
            "uuid": uuid,
        }
        result = self._call("POST", "/groups", body)
        return str(result["uuid"]), list(result["children"])

    def add_job(self, folder: str, uuid: str | None = None, status: str = "DONE") -> str:
        """An already finished, empty upload job (for replaying recorded requests)."""
        return str(self._call("POST", "/jobs", {"folder": folder, "uuid": uuid, "status": status})["uuid"])

    def folders(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/folders"))

    def datasets(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/datasets"))

    def jobs(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/jobs"))

    def schema(self) -> dict[str, Any] | None:
        result = self._call("GET", "/schema")
        return None if result is None else dict(result)

    def set_schema(self, document: dict[str, Any]) -> None:
        """Store ``document`` as the organisation schema, as if another client (a newer SDK, the
        UI) had saved it: fields and types the pinned SDK does not model are kept."""
        self._call("PUT", "/schema", document)

    def config(self) -> dict[str, Any]:
        return dict(self._call("GET", "/config"))

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change run-time options (``EmulatorConfig`` fields), e.g. ``patch_semantics="replace"``."""
        return dict(self._call("PATCH", "/config", changes))

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "/health"))

    def _call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        response = self._session.request(
            method, self.base + path, json=body, params=params, timeout=self.timeout_s
        )
        if response.status_code >= 400:
            raise EmulatorAdminError(f"{method} {path}: HTTP {response.status_code} {response.text}")
        return response.json()


class EmulatorServer:
    """The emulator served by uvicorn in a daemon thread; a context manager that stops it."""

    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.emulator = emulator
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            create_app(emulator),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"encord-emulator:{self.port}",
            daemon=True,
        )
        self.admin = AdminClient(self.url)

    @classmethod
    def start(
        cls,
        public_keys: Iterable[PublicKeyLike] = (),
        *,
        patch_semantics: PatchSemantics = "merge",
        job_duration_s: float = 0.0,
        persist_path: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        **options: Any,
    ) -> EmulatorServer:
        """Start a server and wait until it answers. ``options`` are further
        :class:`~encord_emulator.config.EmulatorConfig` fields (e.g. ``max_signature_age_s=None``)."""
        config = EmulatorConfig(patch_semantics=patch_semantics, job_duration_s=job_duration_s, **options)
        emulator = Emulator(config, public_keys, str(persist_path) if persist_path else None)
        server = cls(emulator, host, port)
        server._run()
        return server

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self, timeout_s: float = 15.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Encord emulator did not start on {self.url}")
            time.sleep(0.01)

    def stop(self) -> None:
        self.emulator.closing = True
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._socket.close()
        if self.emulator.store is not None:
            self.emulator.store.close()

    def __enter__(self) -> EmulatorServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
