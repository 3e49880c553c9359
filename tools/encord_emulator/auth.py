"""Verification of the SDK's Ed25519 request signatures.

v2 API (``/v2/public/...``): RFC 9421-style headers. ``Content-Digest: sha-256=:<b64>:`` must be
the SHA-256 of the body; ``Signature-Input: encord-sig=(<covered>);created=..;keyid="<hex>";alg="ed25519"``
names the covered components; ``Signature: encord-sig=:<b64>:`` signs the signature base::

    "@method": POST
    "@request-target": /v2/public/storage/folders?x=1
    "content-digest": sha-256=:...:
    "@signature-params": ("@method" "@request-target" "content-digest");created=..;keyid="..";alg="ed25519"

Legacy RPC (``POST /public``): ``Authorization: <public key hex>:<signature hex>`` where the
signature is over ``sha256(body)``. The key id is the raw public key in hex.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
    load_ssh_public_key,
)

PublicKeyLike = str | bytes | Ed25519PublicKey

SIGNATURE_LABEL = "encord-sig"
REQUIRED_COMPONENTS = ("@method", "@request-target", "content-digest")
_SIGNATURE_INPUT = re.compile(r"^encord-sig=(?P<params>\((?P<covered>[^)]*)\)(?P<rest>.*))$")
_PARAM = re.compile(r';(?P<key>[a-z]+)=(?:"(?P<quoted>[^"]*)"|(?P<bare>[^;]*))')
_BYTES_ITEM = re.compile(r"^:(?P<b64>[A-Za-z0-9+/=]*):$")


class AuthError(Exception):
    """The request is not signed by an accepted key; the message says why (never a secret)."""


def parse_public_key(value: PublicKeyLike) -> Ed25519PublicKey:
    """An Ed25519 public key from an OpenSSH line, PEM, 64 hex chars or a key object."""
    if isinstance(value, Ed25519PublicKey):
        return value
    text = value.decode() if isinstance(value, bytes) else value
    text = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))
    key: object
    if text.startswith("ssh-"):
        key = load_ssh_public_key(text.encode())
    elif text.startswith("-----BEGIN"):
        key = load_pem_public_key(text.encode())
    else:
        raise ValueError("public key: expected an OpenSSH 'ssh-ed25519 ...' line, PEM or 64 hex characters")
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("public key: only Ed25519 keys are accepted")
    return key


def parse_public_keys_text(text: str) -> list[Ed25519PublicKey]:
    """Every key in a file's text: one key per line; blank lines and ``#`` comments are skipped."""
    if "-----BEGIN" in text:
        return [parse_public_key(text)]
    lines = (line.strip() for line in text.splitlines())
    return [parse_public_key(line) for line in lines if line and not line.startswith("#")]


def key_id(key: Ed25519PublicKey) -> str:
    """The SDK's key id: the raw 32 public key bytes in lower-case hex."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def content_digest(body: bytes) -> str:
    """The ``Content-Digest`` header value the SDK sends for ``body``."""
    return f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"


class SignatureVerifier:
    """Checks signatures against the accepted public keys."""

    def __init__(
        self,
        keys: Iterable[PublicKeyLike],
        *,
        max_age_s: float | None = 300.0,
        accept_any_key: bool = False,
    ) -> None:
        self._keys = {key_id(k): k for k in map(parse_public_key, keys)}
        self.max_age_s = max_age_s
        self.accept_any_key = accept_any_key

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def verify_v2(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> str:
        """Verify a v2 request; return its key id or raise :class:`AuthError`."""
        signature_input = _header(headers, "signature-input")
        signature_header = _header(headers, "signature")
        digest = _header(headers, "content-digest")
        if digest != content_digest(body):
            raise AuthError("Content-Digest does not match the body")
        match = _SIGNATURE_INPUT.match(signature_input)
        if match is None:
            raise AuthError("Signature-Input is not an 'encord-sig=(...)' entry")
        covered = re.findall(r'"([^"]+)"', match["covered"])
        if any(c not in covered for c in REQUIRED_COMPONENTS):
            raise AuthError(f"the signature must cover {', '.join(REQUIRED_COMPONENTS)}")
        params = {
            m["key"]: m["quoted"] if m["quoted"] is not None else m["bare"]
            for m in _PARAM.finditer(match["rest"])
        }
        if params.get("alg") != "ed25519":
            raise AuthError("only alg=ed25519 is accepted")
        self._check_age(params.get("created"))
        kid = params.get("keyid", "")
        lines = [f'"{c}": {_component(c, method, target, headers)}' for c in covered]
        lines.append(f'"@signature-params": {match["params"]}')
        self._verify(kid, _signature_bytes(signature_header), "\n".join(lines).encode())
        return kid

    def verify_legacy(self, headers: Mapping[str, str], body: bytes) -> str:
        """Verify a legacy ``POST /public`` request; return its key id or raise :class:`AuthError`."""
        authorization = _header(headers, "authorization")
        kid, _, signature_hex = authorization.partition(":")
        try:
            signature = bytes.fromhex(signature_hex)
        except ValueError as exc:
            raise AuthError("Authorization is not '<key id>:<signature hex>'") from exc
        self._verify(kid, signature, hashlib.sha256(body).digest())
        return kid

    def _check_age(self, created: str | None) -> None:
        if self.max_age_s is None:
            return
        if created is None or not created.isdigit():
            raise AuthError("Signature-Input has no 'created' timestamp")
        if abs(time.time() - int(created)) > self.max_age_s:
            raise AuthError(f"the signature is older (or newer) than {self.max_age_s:g} s")

    def _verify(self, kid: str, signature: bytes, message: bytes) -> None:
        key = self._keys.get(kid.lower())
        if key is None and self.accept_any_key and re.fullmatch(r"[0-9a-fA-F]{64}", kid):
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(kid))
        if key is None:
            raise AuthError("unknown key id")
        try:
            key.verify(signature, message)
        except InvalidSignature as exc:
            raise AuthError("the signature does not verify") from exc


def _component(name: str, method: str, target: str, headers: Mapping[str, str]) -> str:
    if name == "@method":
        return method.upper()
    if name == "@request-target":
        return target
    if name.startswith("@"):
        raise AuthError(f"unsupported signature component {name}")
    return _header(headers, name)


def _header(headers: Mapping[str, str], name: str) -> str:
    """A header by case-insensitive name (works for plain dicts too)."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    if value is None:
        raise AuthError(f"missing {name} header")
    return value


def _signature_bytes(header: str) -> bytes:
    label, _, item = header.partition("=")
    match = _BYTES_ITEM.match(item)
    if label != SIGNATURE_LABEL or match is None:
        raise AuthError("Signature is not an 'encord-sig=:<base64>:' entry")
    try:
        return base64.b64decode(match["b64"], validate=True)
    except binascii.Error as exc:
        raise AuthError("Signature is not valid base64") from exc
