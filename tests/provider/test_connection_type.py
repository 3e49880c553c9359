"""The installed provider: ``airflow providers list`` shows it, and the ``encord`` connection type
has its declarative form (secret key and passphrase, domain with its default)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from encord_emulator.testing import EmulatorServer
from encord_provider.hooks.encord import EncordHook


def test_airflow_providers_list_shows_the_provider() -> None:
    airflow = Path(sys.executable).with_name("airflow")
    listed = subprocess.run(
        [str(airflow), "providers", "list", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
        timeout=120,
    )
    providers = {p["package_name"]: p for p in json.loads(listed.stdout)}
    assert providers["encord-bucket-ingest"]["version"] == "0.1.0"


def test_connection_type_form_fields_and_behaviour() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    widgets = {
        name.removeprefix("extra__encord__"): widget
        for name, widget in manager.connection_form_widgets.items()
        if name.startswith("extra__encord__")
    }
    assert sorted(widgets) == [
        "domain",
        "folder_link",
        "ssh_key_passphrase",
        "ssh_private_key",
        "upload_job_link",
        "web_url",
    ]
    assert widgets["ssh_private_key"].is_sensitive
    assert widgets["ssh_key_passphrase"].is_sensitive
    assert not widgets["domain"].is_sensitive
    assert widgets["domain"].field["value"] == "https://api.encord.com"
    assert {w.hook_class_name for w in widgets.values()} == {"encord_provider.hooks.encord.EncordHook"}
    behaviour = manager.field_behaviours["encord"]
    # The port is shown (relabelled): the row Test button needs a stored port (README).
    assert behaviour["hidden_fields"] == ["host", "schema", "login", "password", "extra"]
    assert behaviour["relabeling"]["port"].startswith("Port (for the Test button only")
    assert behaviour["placeholders"]["port"] == "443"
    assert behaviour["placeholders"]["extra__encord__domain"] == "https://api.encord.com"
    assert {
        "encord_provider.links.EncordFolderLink",
        "encord_provider.links.EncordUploadJobLink",
        "encord_provider.links.RunReportLink",
    } <= set(manager.extra_links_class_names)
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    hook_info = ProvidersManagerTaskRuntime().hooks.get("encord")
    assert hook_info is not None
    assert hook_info.connection_id_attribute_name == "encord_conn_id"
    assert hook_info.connection_testable


def test_test_connection_makes_one_cheap_call(hook: EncordHook, emulator: EmulatorServer) -> None:
    emulator.admin.add_integration("a")
    emulator.admin.reset_counts()
    assert hook.test_connection() == (True, f"Connected to {emulator.url}: 1 cloud integration(s) visible")
    assert emulator.admin.counts() == {"integrations.list": 1}
