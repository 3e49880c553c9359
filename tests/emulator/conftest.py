"""Fixtures for the Encord emulator tests: a key pair, a running emulator, SDK clients on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from encord import EncordUserClient
from encord.http.constants import RequestsSettings

from encord_emulator.testing import EmulatorServer

ClientFactory = Callable[..., EncordUserClient]


@pytest.fixture
def emu(keypair: tuple[str, str]) -> Iterator[EmulatorServer]:
    with EmulatorServer.start(public_keys=[keypair[1]]) as server:
        yield server


@pytest.fixture
def make_client(keypair: tuple[str, str]) -> ClientFactory:
    """``make_client(url, private_key=None, **RequestsSettings fields)``: the unmodified SDK on ``url``."""

    def make(url: str, private_key: str | None = None, **settings: float) -> EncordUserClient:
        return EncordUserClient.create_with_ssh_private_key(
            private_key or keypair[0],
            domain=url,
            requests_settings=RequestsSettings(**settings),  # type: ignore[arg-type]
        )

    return make


@pytest.fixture
def client(emu: EmulatorServer, make_client: ClientFactory) -> EncordUserClient:
    return make_client(emu.url)


@pytest.fixture
def integration(emu: EmulatorServer) -> str:
    return emu.admin.add_integration("test-s3")
