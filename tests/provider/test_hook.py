"""EncordHook against the emulator over HTTP, with the real SDK: folders, integrations, schema,
bulk metadata patches under faults, job start retries."""

from __future__ import annotations

from typing import Any

import pytest
from encord.exceptions import ResourceExistsError
from encord.user_client import EncordUserClient

from encord_emulator.testing import EmulatorServer
from encord_ingest.errors import ConfigError
from encord_ingest.manifest.model import Manifest
from encord_ingest.schema import parse_schema
from encord_provider.hooks.encord import EncordHook, EncordHookError
from encord_provider.hooks.encord_scopes import EncordMetadataHook
from encord_provider.upload_items import upload_items
from tests.provider.helpers import BUCKET_URL, FAST_HOOK_PARAMS


def test_folder_path_is_created_once_then_found(
    hook: EncordHook, emulator: EmulatorServer, encord_conn: str
) -> None:
    folder = hook.get_folder("ingest/cams/front")
    assert emulator.admin.counts()["folders.create"] == 3
    emulator.admin.reset_counts()
    again = EncordHook(encord_conn, **FAST_HOOK_PARAMS).get_folder("/ingest/cams/front/")
    assert again.uuid == folder.uuid
    assert "folders.create" not in emulator.admin.counts()
    by_uuid = EncordHook(encord_conn).get_folder(str(folder.uuid))
    assert by_uuid.name == "front"
    names = {(f["name"], f["parent"]) for f in emulator.admin.folders()}
    assert ("cams", None) not in names
    assert len(names) == 3


def test_missing_folder_without_create_and_ambiguous_names_are_errors(
    hook: EncordHook, emulator: EmulatorServer
) -> None:
    with pytest.raises(EncordHookError, match="Encord storage folder 'nope' does not exist"):
        hook.get_folder("nope/deeper", create=False)
    first = emulator.admin.add_folder("twin")
    second = emulator.admin.add_folder("twin")
    with pytest.raises(EncordHookError, match="2 Encord folders are named 'twin'") as error:
        hook.get_folder("twin/x")
    assert first in str(error.value)
    assert second in str(error.value)


def test_folder_create_is_retried_after_a_server_error(hook: EncordHook, emulator: EmulatorServer) -> None:
    emulator.admin.inject("folders.create", 503, times=1)
    folder = hook.get_folder("retried")
    assert emulator.admin.counts()["folders.create"] == 2
    assert [f["uuid"] for f in emulator.admin.folders()] == [str(folder.uuid)]


def test_integration_by_title_or_uuid_and_ambiguous_titles(
    hook: EncordHook, emulator: EmulatorServer
) -> None:
    only = emulator.admin.add_integration("only-one")
    assert hook.resolve_integration("only-one") == only
    assert hook.resolve_integration(only) == only
    emulator.admin.add_integration("shared")
    emulator.admin.add_integration("shared")
    with pytest.raises(EncordHookError, match="2 cloud integrations are titled 'shared'; use its UUID"):
        hook.resolve_integration("shared")
    with pytest.raises(EncordHookError, match=r"no Encord cloud integration 'missing'; visible titles: \["):
        hook.resolve_integration("missing")


def _other_team_schema(emulator: EmulatorServer, private_key: str) -> None:
    """Another team's keys, saved with the SDK directly."""
    schema = EncordUserClient.create_with_ssh_private_key(private_key, domain=emulator.url).metadata_schema()
    schema.add_scalar("other.count", data_type="number")
    schema.add_embedding("other.clip", size=8)
    schema.add_enum("shared.weather", values=["rain", "fog"])
    schema.save()


DECLARED = {
    "keys": {
        "ours.site": {"type": "varchar", "max_length": 64},
        "ours.when": "datetime",
        "shared.weather": {"type": "enum", "values": ["rain", "sunny"]},
        "other.count": "number",
    }
}


def test_schema_merge_adds_keys_and_enum_values_and_keeps_foreign_keys(
    hook: EncordHook, emulator: EmulatorServer, keypair: tuple[str, str]
) -> None:
    _other_team_schema(emulator, keypair[0])
    plan = hook.apply_schema(parse_schema(DECLARED, file="schemas/cams.yaml"))
    assert [change.describe() for change in plan.changes] == [
        "+ ours.site: varchar",
        "+ ours.when: datetime",
        "~ shared.weather: add enum values ['sunny']",
    ]
    assert plan.unchanged == ["other.count"]
    assert plan.kept_foreign == ["other.clip"]
    assert plan.enum_values_kept == {"shared.weather": ["fog"]}
    saved = EncordHook(hook.encord_conn_id).metadata_schema()
    assert saved.get_key_type("ours.site") == "varchar"
    assert saved.get_key_type("ours.when") == "datetime"
    assert saved.get_embedding_size("other.clip") == 8
    assert saved.get_key_type("other.count") == "number"
    assert list(saved.get_enum_options("shared.weather")) == ["fog", "rain", "sunny"]
    emulator.admin.reset_counts()
    second = hook.apply_schema(parse_schema(DECLARED, file="schemas/cams.yaml"))
    assert not second.has_changes
    assert "schema.save" not in emulator.admin.counts()


def test_schema_refuses_retype_unless_allowed_and_dry_run_writes_nothing(
    hook: EncordHook, emulator: EmulatorServer, keypair: tuple[str, str]
) -> None:
    _other_team_schema(emulator, keypair[0])
    retyped = parse_schema({"keys": {"other.count": "varchar"}}, file="schemas/cams.yaml")
    with pytest.raises(
        ConfigError, match=r"schemas/cams\.yaml: key 'other\.count': declared varchar but .* number"
    ):
        hook.apply_schema(retyped)
    with pytest.raises(ConfigError, match="only retype between scalar types"):
        hook.apply_schema(parse_schema({"keys": {"other.clip": "text"}}, file="s.yaml"), allow_retype=True)
    emulator.admin.reset_counts()
    plan = hook.apply_schema(retyped, allow_retype=True, delete_keys=["other.clip"], dry_run=True)
    assert [c.describe() for c in plan.changes] == [
        "~ other.count: number -> varchar",
        "- other.clip: embedding(size=8)",
    ]
    assert "schema.save" not in emulator.admin.counts()
    hook.apply_schema(retyped, allow_retype=True, delete_keys=["other.clip"])
    saved = hook.metadata_schema()
    assert saved.get_key_type("other.count") == "varchar"
    assert saved.is_key_deleted("other.clip")
    assert saved.get_enum_options("shared.weather") == ["fog", "rain"]


#: Every field and type the SDK documents, fields it does not model, a soft and a hard
#: tombstone, and a type from the future: what other teams (newer SDKs, the UI) may have saved.
ORG_SCHEMA: dict[str, Any] = {
    "t.number": {"ty": "number", "format": "F32"},
    "t.boolean": {"ty": "boolean"},
    "t.varchar": {"ty": "varchar", "max_length": 64, "description": "site code"},
    "t.datetime": {"ty": "datetime", "timezone": "UTC"},
    "t.text": {"ty": "text"},
    "t.uuid": {"ty": "uuid"},
    "t.long": {"ty": "variant", "hint": "long_string", "description": "free text"},
    "t.string": {"ty": "variant", "hint": "string"},
    "t.user": {"ty": "user"},
    "t.geo": {"ty": "geospatial"},
    "t.clip": {"ty": "embedding", "size": 8, "api": {"url": "https://embed.example", "client_only": True}},
    "shared.weather": {"ty": "enum", "values": ["rain", "fog"], "description": "owned by b"},
    "t.gone": {"ty": "tombstone", "deleted_ty": {"ty": "varchar", "max_length": 12, "description": "x"}},
    "t.hard": {"ty": "tombstone", "deleted_ty": None},
    "t.future": {"ty": "polygon_set", "dims": 3, "hint": {"nested": [1, 2]}, "description": "v2"},
}


@pytest.mark.parametrize("future", [True, False], ids=["with-future-type", "sdk-types-only"])
def test_schema_save_writes_every_key_it_does_not_change_back_exactly_as_read(
    future: bool, hook: EncordHook, emulator: EmulatorServer
) -> None:
    """Issue 9.2: fields and types the pinned SDK does not model survive a schema merge (the
    SDK's own ``save()`` fails on the future type, and without it drops the descriptions)."""
    org = ORG_SCHEMA if future else {k: v for k, v in ORG_SCHEMA.items() if k not in ("t.future", "t.user")}
    emulator.admin.set_schema(org)
    declared = {"keys": {"ours.site": "varchar", "shared.weather": {"type": "enum", "values": ["sunny"]}}}
    plan = hook.apply_schema(parse_schema(declared, file="schemas/cams.yaml"))
    assert [change.describe() for change in plan.changes] == [
        "+ ours.site: varchar",
        "~ shared.weather: add enum values ['sunny']",
    ]
    saved = emulator.admin.schema()
    assert saved == {
        **org,
        "ours.site": {"ty": "variant", "hint": "varchar"},
        "shared.weather": {"ty": "enum", "values": ["fog", "rain", "sunny"], "description": "owned by b"},
    }
    assert list(saved) == [*org, "ours.site"]
    typed = EncordMetadataHook(hook.encord_conn_id).organisation_schema().keys
    assert typed["t.long"].type == "text"
    assert "t.future" not in typed
    emulator.admin.reset_counts()
    assert not hook.apply_schema(parse_schema(declared, file="schemas/cams.yaml")).has_changes
    assert "schema.save" not in emulator.admin.counts()


def _seed_items(emulator: EmulatorServer, hook: EncordHook, count: int) -> list:
    folder = hook.get_folder("patch")
    specs = [
        {"url": f"{BUCKET_URL}/p/{i}.jpg", "client_metadata": {"n": i, "keep": "x"}} for i in range(count)
    ]
    emulator.admin.add_items(str(folder.uuid), specs)
    return list(hook.iter_folder_items(folder))


def test_bulk_patches_survive_429_and_503_bursts(hook: EncordHook, emulator: EmulatorServer) -> None:
    items = _seed_items(emulator, hook, 3)
    emulator.admin.inject("items.patch_bulk", 429, times=2)
    emulator.admin.inject("items.patch_bulk", 503, times=1)
    emulator.admin.reset_counts()
    result = hook.patch_metadata([(item, {"n": 100, "keep": "x"}) for item in items])
    assert sorted(result.written) == sorted(str(item.uuid) for item in items)
    assert result.failed == {}
    assert result.calls == 1  # one bundle; its retries are attempts
    assert result.attempts == 4
    assert emulator.admin.counts()["items.patch_bulk"] == 4
    assert {item["client_metadata"]["n"] for item in emulator.admin.folder_items("patch")} == {100}


def test_patch_retry_honours_retry_after(encord_conn: str, emulator: EmulatorServer) -> None:
    waits: list[float] = []
    hook = EncordHook(encord_conn, retry={"base_delay_s": 0.01, "max_total_s": 30}, sleep=waits.append)
    items = _seed_items(emulator, hook, 1)
    emulator.admin.inject("items.patch_bulk", 429, times=1, retry_after=3)
    result = hook.patch_metadata([(items[0], {"n": 1})])
    assert result.written == [str(items[0].uuid)]
    assert waits == [3.0]


def test_patches_are_bundled_by_1000_and_other_4xx_are_not_retried(
    hook: EncordHook, emulator: EmulatorServer
) -> None:
    items = _seed_items(emulator, hook, 1001)
    emulator.admin.reset_counts()
    result = hook.patch_metadata([(item, {"n": -1}) for item in items])
    assert result.calls == 2
    assert emulator.admin.counts()["items.patch_bulk"] == 2
    emulator.admin.inject("items.patch_bulk", 409, times=1)
    emulator.admin.reset_counts()
    with pytest.raises(ResourceExistsError):
        hook.patch_metadata([(items[0], {"n": -2})])
    assert emulator.admin.counts()["items.patch_bulk"] == 1


@pytest.mark.emulator(schema_enforcement="reject")
def test_an_item_encord_refuses_fails_alone(hook: EncordHook, emulator: EmulatorServer) -> None:
    hook.apply_schema(parse_schema({"keys": {"n": "number"}}, file="s.yaml"))
    items = _seed_items(emulator, hook, 8)
    updates = [
        (item, {"n": "not a number" if index == 5 else index * 10}) for index, item in enumerate(items)
    ]
    result = hook.patch_metadata(updates)
    bad = str(items[5].uuid)
    assert list(result.failed) == [bad]
    assert "Encord refused the metadata" in result.failed[bad]
    assert len(result.written) == 7
    stored = {item["uuid"]: item["client_metadata"]["n"] for item in emulator.admin.folder_items("patch")}
    assert stored[bad] == 5
    assert stored[str(items[7].uuid)] == 70


def test_job_start_is_retried_only_because_duplicates_are_skipped(
    hook: EncordHook, emulator: EmulatorServer, integration: str
) -> None:
    folder = hook.get_folder("jobs")
    manifest = Manifest.from_docs_json(
        {"images": [{"objectUrl": f"{BUCKET_URL}/j/a.jpg"}], "skip_duplicate_urls": False}
    )
    emulator.admin.inject("upload_jobs.start", 503, times=1)
    first = hook.start_upload_job(folder, integration, upload_items(manifest))
    assert emulator.admin.counts()["upload_jobs.start"] == 2
    assert hook.wait_for_upload_job(str(folder.uuid), first, timeout_s=10).status == "DONE"
    # The manifest asked for no dedup; the hook sends skip_duplicate_urls anyway.
    second = hook.start_upload_job(folder, integration, upload_items(manifest))
    assert hook.wait_for_upload_job(str(folder.uuid), second, timeout_s=10).status == "DONE"
    assert [item["url"] for item in emulator.admin.folder_items("jobs")] == [f"{BUCKET_URL}/j/a.jpg"]


def test_items_are_linked_to_a_dataset_once(hook: EncordHook, emulator: EmulatorServer) -> None:
    items = _seed_items(emulator, hook, 3)
    dataset = emulator.admin.add_dataset("training")
    uuids = [str(item.uuid) for item in items]
    assert hook.link_items_to_dataset(dataset, uuids) == 3
    assert hook.link_items_to_dataset(dataset, uuids[:2]) == 2
    [stored] = emulator.admin.datasets()
    assert sorted(link["item"] for link in stored["links"]) == sorted(uuids)
