"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point.

The ``encord`` connection type is declarative (``conn-fields`` and ``ui-field-behaviour``): the
form shows the SSH private key and its passphrase as secrets, and the API domain; the standard
fields it does not use are hidden.
"""

from __future__ import annotations

from typing import Any

HOOK_CLASS = "encord_provider.hooks.encord.EncordHook"

CONN_FIELDS: dict[str, Any] = {
    "ssh_private_key": {
        "label": "SSH private key",
        "description": "Ed25519 private key in OpenSSH format, registered with your Encord user.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "ssh_key_passphrase": {
        "label": "Key passphrase",
        "description": "Only when the private key is encrypted.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "domain": {
        "label": "API domain",
        "description": "https://api.encord.com (EU, default), https://api.us.encord.com (US), "
        "or another origin such as a local emulator.",
        "schema": {"type": ["string", "null"], "default": "https://api.encord.com"},
    },
}


def get_provider_info() -> dict[str, Any]:
    """Return the provider description (connection types, hooks, operators, triggers)."""
    return {
        "package-name": "encord-bucket-ingest",
        "name": "Encord",
        "description": "Register bucket data in Encord and keep its client metadata in sync.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "Encord",
                "external-doc-url": "https://docs.encord.com/sdk-documentation/getting-started-sdk/installation-sdk",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Encord",
                "python-modules": ["encord_provider.hooks.encord", "encord_provider.hooks.encord_scopes"],
            }
        ],
        "operators": [
            {
                "integration-name": "Encord",
                "python-modules": [
                    "encord_provider.operators.encord",
                    "encord_provider.operators.metadata_ops",
                ],
            }
        ],
        "triggers": [{"integration-name": "Encord", "python-modules": ["encord_provider.triggers.encord"]}],
        "connection-types": [
            {
                "connection-type": "encord",
                "hook-class-name": HOOK_CLASS,
                "hook-name": "Encord",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "login", "password", "port", "extra"],
                    "relabeling": {},
                    "placeholders": {
                        "domain": "https://api.encord.com",
                        "ssh_private_key": "-----BEGIN OPENSSH PRIVATE KEY-----",
                    },
                },
            }
        ],
    }
