"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point.

The ``encord`` connection type is declarative (``conn-fields`` and ``ui-field-behaviour``): the
form shows the SSH private key and its passphrase as secrets, and the API domain; the standard
fields it does not use are hidden.
"""

from __future__ import annotations

from typing import Any

from encord_provider.links import EXTRA_LINKS, LINK_TEMPLATES

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
    "web_url": {
        "label": "Web app URL",
        "description": "For the task links to Encord: https://app.encord.com for the EU domain and "
        "https://app.us.encord.com for the US one unless set here; other domains get no link without it.",
        "schema": {"type": ["string", "null"]},
    },
    "folder_link": {
        "label": "Folder link template",
        "description": "URL of a storage folder, with {web_url} and {folder_uuid}. Default: "
        + LINK_TEMPLATES["folder"],
        "schema": {"type": ["string", "null"]},
    },
    "upload_job_link": {
        "label": "Upload job link template",
        "description": "URL of an upload job, with {web_url}, {folder_uuid} and {job_uuid}. Default: "
        + LINK_TEMPLATES["upload_job"],
        "schema": {"type": ["string", "null"]},
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
        "extra-links": [f"encord_provider.links.{link.__name__}" for link in EXTRA_LINKS],
        "connection-types": [
            {
                "connection-type": "encord",
                "hook-class-name": HOOK_CLASS,
                "hook-name": "Encord",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": {
                    # The port stays visible although the hook ignores it (the domain URL carries
                    # any port, e.g. an emulator's): Airflow 3.3's row Test button sends port 0
                    # for a connection without one, which the API refuses to test with the stored
                    # key. A port set here (any, e.g. 443) makes that button work.
                    "hidden-fields": ["host", "schema", "login", "password", "extra"],
                    "relabeling": {"port": "Port (for the Test button only; the domain carries the port)"},
                    "placeholders": {
                        "domain": "https://api.encord.com",
                        "ssh_private_key": "-----BEGIN OPENSSH PRIVATE KEY-----",
                        "port": "443",
                    },
                },
            }
        ],
    }
