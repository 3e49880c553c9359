"""Auth failures give a clear message, and the private key never shows: not in the exception (nor
its chain or traceback), not in logs, not on stdout/stderr."""

from __future__ import annotations

import json
import logging
import traceback

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from encord_emulator.testing import EmulatorServer, generate_ssh_keypair
from encord_provider.hooks.encord import EncordAuthError, EncordHook
from tests.provider.helpers import connection_json


def key_lines(private_key: str) -> list[str]:
    """The secret part of a key: its base64 lines (long enough to be unambiguous)."""
    return [line for line in private_key.splitlines() if len(line) >= 16 and not line.startswith("-----")]


def assert_no_key(private_key: str, *texts: str) -> None:
    for line in key_lines(private_key):
        for text in texts:
            assert line not in text


def everything_about(error: BaseException) -> str:
    return "\n".join([str(error), repr(error), "".join(traceback.format_exception(error))])


@pytest.fixture
def use_key(monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer):
    def configure(private_key: str, **extra: str) -> EncordHook:
        conn = json.loads(connection_json(private_key, emulator.url))
        conn["extra"].update(extra)
        monkeypatch.setenv("AIRFLOW_CONN_ENCORD_SECRET", json.dumps(conn))
        return EncordHook("encord_secret", sdk_max_retries=0)

    return configure


def test_unregistered_key_fails_with_a_clear_message_and_no_key_material(
    use_key, emulator: EmulatorServer, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    stranger, _ = generate_ssh_keypair()
    hook = use_key(stranger)
    ok, message = hook.test_connection()
    assert not ok
    assert message.startswith(f"Encord connection 'encord_secret': {emulator.url} rejected the SSH key")
    assert "registered with your Encord user" in message
    with pytest.raises(EncordAuthError, match="rejected the SSH key") as error:
        hook.get_folder("anything")
    captured = capsys.readouterr()
    assert_no_key(stranger, message, everything_about(error.value), caplog.text, captured.out, captured.err)


def test_non_ed25519_key_is_refused_without_quoting_it(
    use_key, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    ecdsa = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
        .decode()
    )
    hook = use_key(ecdsa)
    with pytest.raises(EncordAuthError) as error:
        hook.get_folder("anything")
    assert str(error.value) == (
        "Encord connection 'encord_secret': field 'ssh_private_key': expected an Ed25519 private key "
        "in OpenSSH format (with 'ssh_key_passphrase' if it is encrypted); the key could not be loaded "
        "(ValueError)"
    )
    assert error.value.__context__ is None
    assert error.value.__cause__ is None
    ok, message = hook.test_connection()
    assert not ok
    assert "field 'ssh_private_key'" in message
    captured = capsys.readouterr()
    assert_no_key(ecdsa, everything_about(error.value), message, caplog.text, captured.out, captured.err)


def test_garbage_key_empty_key_and_stray_passphrase_are_named(use_key, keypair: tuple[str, str]) -> None:
    garbage = "\n".join(
        [
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "bm90IGEga2V5IGF0IGFsbCwganVzdCB0ZXh0",
            "-----END OPENSSH PRIVATE KEY-----",
        ]
    )
    with pytest.raises(EncordAuthError, match="the key could not be loaded") as error:
        use_key(garbage).get_folder("x")
    assert "bm90IGEga2V5" not in everything_about(error.value)
    with pytest.raises(EncordAuthError, match="field 'ssh_private_key' is empty"):
        use_key("").get_folder("x")
    with pytest.raises(EncordAuthError, match=r"the key could not be loaded \(TypeError\)"):
        use_key(keypair[0], ssh_key_passphrase="not-needed").get_folder("x")


def test_key_with_escaped_newlines_works_and_bad_domain_is_named(use_key, keypair: tuple[str, str]) -> None:
    hook = use_key(keypair[0].replace("\n", "\\n"))
    assert hook.test_connection()[0]
    hook = use_key(keypair[0], domain="api.encord.com")
    ok, message = hook.test_connection()
    assert not ok
    assert message == (
        "Encord connection 'encord_secret': field 'domain': expected an http(s) origin such as "
        "https://api.encord.com or https://api.us.encord.com, got 'api.encord.com'"
    )


def test_a_passphrase_protected_key_works_with_its_passphrase_and_fails_clearly_without(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Encrypted OpenSSH keys need bcrypt (pinned in requirements.txt); the passphrase is a secret field."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, PublicFormat

    key = Ed25519PrivateKey.generate()
    passphrase = "correct horse battery staple"
    encrypted = key.private_bytes(
        Encoding.PEM, PrivateFormat.OpenSSH, BestAvailableEncryption(passphrase.encode())
    ).decode()
    public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    with EmulatorServer.start(public_keys=[public]) as server:
        conn = json.loads(connection_json(encrypted, server.url))
        conn["extra"]["ssh_key_passphrase"] = passphrase
        monkeypatch.setenv("AIRFLOW_CONN_ENCORD_LOCKED", json.dumps(conn))
        assert EncordHook("encord_locked", sdk_max_retries=0).test_connection()[0] is True
        del conn["extra"]["ssh_key_passphrase"]
        monkeypatch.setenv("AIRFLOW_CONN_ENCORD_LOCKED", json.dumps(conn))
        ok, message = EncordHook("encord_locked", sdk_max_retries=0).test_connection()
        assert ok is False
        assert "ssh_key_passphrase" in message
        assert_no_key(encrypted, message)
        with pytest.raises(EncordAuthError) as raised:
            _ = EncordHook("encord_locked", sdk_max_retries=0).client
        assert_no_key(encrypted, everything_about(raised.value))
        assert passphrase not in everything_about(raised.value)
