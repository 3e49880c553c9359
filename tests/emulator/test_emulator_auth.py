"""The signature verifier on its own, fed by the SDK's own signing code."""

from __future__ import annotations

import json
import time

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from encord.configs import SshConfig
from encord.http.v2.request_signer import sign_request

from encord_emulator.auth import (
    AuthError,
    SignatureVerifier,
    key_id,
    parse_public_key,
    parse_public_keys_text,
)


def signed(key: Ed25519PrivateKey, method: str, url: str, body: object = None) -> requests.PreparedRequest:
    request = requests.Request(method, url, json=body).prepare()
    return sign_request(request, key_id(key.public_key()), key)


def body_of(request: requests.PreparedRequest) -> bytes:
    return request.body if isinstance(request.body, bytes) else (request.body or "").encode()


def verify(verifier: SignatureVerifier, request: requests.PreparedRequest, body: bytes | None = None) -> str:
    sent = body_of(request) if body is None else body
    return verifier.verify_v2(str(request.method), request.path_url, request.headers, sent)


def test_sdk_signature_verifies_with_query_and_body() -> None:
    key = Ed25519PrivateKey.generate()
    verifier = SignatureVerifier([key.public_key()])
    request = signed(
        key, "PATCH", "http://h/v2/public/storage/items/patch-bulk?a=1&b=%20x", {"itemPatches": {}}
    )
    assert verify(verifier, request) == key_id(key.public_key())


def test_changed_body_method_or_target_fails() -> None:
    key = Ed25519PrivateKey.generate()
    verifier = SignatureVerifier([key.public_key()])
    request = signed(key, "POST", "http://h/v2/public/datasets", {"title": "ds"})
    with pytest.raises(AuthError, match="Content-Digest"):
        verify(verifier, request, body=b'{"title": "dt"}')
    with pytest.raises(AuthError, match="does not verify"):
        verifier.verify_v2("PUT", request.path_url, request.headers, body_of(request))
    with pytest.raises(AuthError, match="does not verify"):
        verifier.verify_v2("POST", "/v2/public/datasets?x=1", request.headers, body_of(request))


def test_unknown_key_fails_unless_any_key_is_accepted() -> None:
    key = Ed25519PrivateKey.generate()
    request = signed(key, "GET", "http://h/v2/public/cloud-integrations")
    with pytest.raises(AuthError, match="unknown key id"):
        verify(SignatureVerifier([Ed25519PrivateKey.generate().public_key()]), request)
    assert verify(SignatureVerifier([], accept_any_key=True), request) == key_id(key.public_key())


def test_signature_age_is_checked_when_configured() -> None:
    key = Ed25519PrivateKey.generate()
    request = signed(key, "GET", "http://h/v2/public/x")
    created = int(time.time()) - 1000
    headers = dict(request.headers)
    headers["Signature-Input"] = headers["Signature-Input"].replace(
        headers["Signature-Input"].split("created=")[1].split(";")[0], str(created)
    )
    verifier = SignatureVerifier([key.public_key()], max_age_s=300)
    with pytest.raises(AuthError, match="older"):
        verifier.verify_v2("GET", "/v2/public/x", headers, b"")
    assert verify(verifier, request)  # a fresh signature passes


def test_missing_headers_are_named() -> None:
    verifier = SignatureVerifier([Ed25519PrivateKey.generate().public_key()])
    with pytest.raises(AuthError, match="missing signature-input header"):
        verifier.verify_v2(
            "GET",
            "/v2/public/x",
            {"content-digest": "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"},
            b"",
        )


def test_legacy_authorization_header() -> None:
    key = Ed25519PrivateKey.generate()
    config = SshConfig(key, domain="http://h")
    body = json.dumps(
        {"query_type": "dataset", "query_method": "GET", "values": {"uid": None, "payload": None}}
    )
    headers = config.define_headers("ds", "dataset", body)
    verifier = SignatureVerifier([key.public_key()])
    assert verifier.verify_legacy(headers, body.encode()) == key_id(key.public_key())
    with pytest.raises(AuthError):
        verifier.verify_legacy(headers, body.encode() + b" ")


def test_public_key_forms() -> None:
    key = Ed25519PrivateKey.generate().public_key()
    openssh = key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    pem = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    for form in (openssh, openssh + " comment", pem, key_id(key), key):
        assert key_id(parse_public_key(form)) == key_id(key)
    assert [key_id(k) for k in parse_public_keys_text(f"# keys\n\n{openssh}\n{key_id(key)}\n")] == [
        key_id(key)
    ] * 2
    rsa = generate_private_key(65537, 2048).public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    with pytest.raises(ValueError, match="only Ed25519"):
        parse_public_key(rsa.decode())
    with pytest.raises(ValueError, match="expected an OpenSSH"):
        parse_public_key("not a key")
