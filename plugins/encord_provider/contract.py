"""The contract check: measure, on a real organisation, the Encord behaviours the pipeline relies on.

    python -m encord_provider.contract --conn-id encord_default --folder scratch/contract \\
        --integration my-s3 --object-url https://my-bucket.s3.eu-west-1.amazonaws.com/any/image.jpg

Inside a scratch folder that it creates (a fresh subfolder of ``--folder``) and deletes again, it
registers the object (and a spelling variant of its URL), then measures:

- ``folder_search``: how ``search`` matches folder names (substring, prefix, exact, or not at all);
- ``patch_semantics``: whether a PATCH of ``clientMetadata`` replaces, merges shallowly or merges
  recursively, and ``null_handling``: what a ``null`` value does;
- ``url_normalisation``: whether the stored URL is the submitted one, byte for byte;
- ``duplicates``: how a skipped duplicate is reported (a success, listed or not, or a unit error);
- ``schema_validation``: whether a value that breaks the organisation's schema is refused;
- ``max_body_bytes``: the largest bulk-PATCH body accepted, up to ``--max-body-bound``;
- ``rate_limit_headers``: the rate-limit headers Encord sends.

It prints a table and writes JSON (``--out``). ``emulator_options`` in that JSON starts the
project's emulator with the measured behaviour: ``python -m encord_emulator --behaviour-file``.
Every measurement is independent: one that fails reports ``error`` and the others go on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
import uuid as uuid_lib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import KW_ONLY, asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from encord.storage import StorageFolder, StorageItem

    from encord_provider.hooks.encord import EncordHook

log = logging.getLogger(__name__)

FORMAT = "encord-contract/1"
DEFAULT_BODY_BOUND = 16 * 1024 * 1024
PAD_KEY = "contract_check_pad"
SCHEMA_KEY = "encord_contract_check.number"
RATE_LIMIT_MARKERS = ("ratelimit", "rate-limit", "retry-after", "x-quota")

#: Measurements made on the registered scratch item (all ``error`` when it cannot be registered).
NEEDS_AN_ITEM = (
    "patch_semantics",
    "null_handling",
    "duplicates",
    "concurrent_duplicates",
    "url_normalisation",
    "schema_validation",
    "max_body_bytes",
)

WHAT_IT_CHANGES = {
    "folder_search": "Nothing: folders are resolved by exact name over full listings, never by search.",
    "patch_semantics": (
        "Nothing to configure: the pipeline writes whole final dicts. Under 'replace' a removed key is "
        "left out rather than sent as null; under the merges it is sent as null."
    ),
    "null_handling": "Whether keys removed in 'replace' sync mode read back as absent or as null.",
    "url_normalisation": (
        "If 'normalised', reconcile and lookups compare URLs through one canonical form; check that "
        "no two objects in your bucket differ only by the normalised part."
    ),
    "duplicates": (
        "How a rerun after a crash learns the UUIDs of already registered items: from the job "
        "result ('listed'), or from one folder listing ('not-listed', 'unit-error')."
    ),
    "concurrent_duplicates": (
        "'registered-twice': a job start retried after a lost answer can register items twice while "
        "the first job still runs: set encord.requests.retry_job_start: false (the task's own retry, "
        "retry_delay_s later, then finds them as duplicates)."
    ),
    "schema_validation": (
        "'off': values that break the schema are stored as sent, so the pipeline's own typing is "
        "the only check; 'reject': one bad value fails its item (never the bundle)."
    ),
    "max_body_bytes": "Set encord.requests.max_bundle_bytes below this value (default 1 MiB).",
    "rate_limit_headers": "Size the encord_api pool and the hook's retry policy to the limit shown.",
}


@dataclass
class Answer:
    """One measured behaviour: the answer, how it was seen, and the emulator options it implies."""

    name: str
    answer: str
    detail: str = ""
    emulator_options: dict[str, Any] = field(default_factory=dict)

    @property
    def changes(self) -> str:
        return WHAT_IT_CHANGES.get(self.name, "")


@dataclass
class ContractReport:
    domain: str
    folder: str
    answers: list[Answer]
    measured_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_json(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        for answer in self.answers:
            options.update(answer.emulator_options)
        return {
            "format": FORMAT,
            "measured_at": self.measured_at,
            "domain": self.domain,
            "folder": self.folder,
            "sdk_version": version("encord"),
            "results": {a.name: {**asdict(a), "changes": a.changes} for a in self.answers},
            "emulator_options": options,
        }

    def table(self) -> str:
        rows = [("check", "answer", "detail")] + [(a.name, a.answer, a.detail) for a in self.answers]
        widths = [max(len(row[i]) for row in rows) for i in range(2)]
        lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in rows]
        lines.insert(1, "-" * (widths[0] + widths[1] + 4 + 40))
        return "\n".join(lines)

    def answer(self, name: str) -> Answer:
        return next(a for a in self.answers if a.name == name)


@dataclass
class ContractCheck:
    """Runs every measurement inside one scratch folder and cleans up after itself."""

    hook: EncordHook
    _: KW_ONLY
    folder: str
    integration: str
    object_url: str
    body_bound: int = DEFAULT_BODY_BOUND
    allow_schema_key: bool = False
    job_timeout_s: float = 600
    search_wait_s: float = 10.0
    _integration_uuid: str | None = field(default=None, init=False)
    _duplicates_as_errors: bool = field(default=False, init=False)

    # --- running -------------------------------------------------------------------------------

    def run(self) -> ContractReport:
        answers: list[Answer] = []
        with self._scratch() as scratch:
            answers.append(self._guard("folder_search", lambda: self.folder_search(scratch)))
            item = self._guard_item(scratch, answers)
            if item is not None:
                answers.extend(
                    self._guard_many(("patch_semantics", "null_handling"), lambda: self.patch(item))
                )
                answers.append(self._guard("duplicates", lambda: self.duplicates(scratch, item)))
                answers.append(
                    self._guard("concurrent_duplicates", lambda: self.concurrent_duplicates(scratch))
                )
                answers.append(self._guard("url_normalisation", lambda: self.url_normalisation(scratch)))
                answers.append(self._guard("schema_validation", lambda: self.schema_validation(item)))
                answers.append(self._guard("max_body_bytes", lambda: self.max_body(item)))
            answers.append(self._guard("rate_limit_headers", self.rate_limit_headers))
        return ContractReport(domain=self.hook.domain, folder=self.folder, answers=answers)

    def _guard(self, name: str, measure: Callable[[], Answer]) -> Answer:
        return self._guard_many((name,), lambda: [measure()])[0]

    def _guard_many(self, names: Sequence[str], measure: Callable[[], list[Answer]]) -> list[Answer]:
        try:
            return measure()
        except Exception as exc:  # one failed measurement must not stop the others
            log.exception("contract check %s failed", ", ".join(names))
            return [Answer(name, "error", f"{type(exc).__name__}: {str(exc)[:300]}") for name in names]

    def _guard_item(self, scratch: StorageFolder, answers: list[Answer]) -> StorageItem | None:
        try:
            return self._register_one(scratch, self.object_url)
        except Exception as exc:  # noqa: BLE001 (recorded as the measurements' error)
            detail = f"could not register {self.object_url}: {type(exc).__name__}: {str(exc)[:300]}"
            answers.extend(Answer(name, "error", detail) for name in NEEDS_AN_ITEM)
            return None

    @contextlib.contextmanager
    def _scratch(self) -> Iterator[StorageFolder]:
        """A fresh folder under ``self.folder``; deleted afterwards with its items, and so are the
        levels of ``self.folder`` that did not exist before."""
        created = self._missing_levels(self.folder)
        parent = self.hook.get_folder(self.folder)
        name = f"contract-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid_lib.uuid4().hex[:6]}"
        scratch = self.hook.client.create_storage_folder(name, parent_folder=parent.uuid)
        try:
            yield scratch
        finally:
            self._delete_tree(scratch)
            for path in reversed(created):
                with contextlib.suppress(Exception):
                    self.hook.get_folder(path, create=False).delete()

    def _missing_levels(self, path: str) -> list[str]:
        from encord_provider.hooks.encord import EncordFolderNotFound

        names = [n for n in path.strip("/").split("/") if n]
        missing = []
        for depth in range(1, len(names) + 1):
            level = "/".join(names[:depth])
            try:
                self.hook.get_folder(level, create=False)
            except EncordFolderNotFound:
                missing.append(level)
        return missing

    def _delete_tree(self, folder: StorageFolder) -> None:
        for child in list(folder.list_subfolders(page_size=1000)):
            self._delete_tree(child)
        uuids = [item.uuid for item in folder.list_items(include_client_metadata=False, page_size=1000)]
        if uuids:
            folder.delete_storage_items(uuids)
        folder.delete()

    # --- registration helpers ------------------------------------------------------------------

    def _register(self, folder: StorageFolder, url: str) -> Any:
        from encord_ingest.manifest.model import Manifest
        from encord_provider.upload_items import upload_items

        if self._integration_uuid is None:
            self._integration_uuid = self.hook.resolve_integration(self.integration)
        manifest = Manifest.from_docs_json({"images": [{"objectUrl": url, "title": _title_of(url)}]})
        job = self.hook.start_upload_job(folder, self._integration_uuid, upload_items(manifest))
        return self.hook.wait_for_upload_job(str(folder.uuid), job, timeout_s=self.job_timeout_s, poll_s=10)

    def _register_one(self, folder: StorageFolder, url: str) -> StorageItem:
        outcome = self._register(folder, url)
        if outcome.unit_errors or outcome.status != "DONE":
            errors = "; ".join(e.error for e in outcome.unit_errors) or "; ".join(outcome.errors)
            raise RuntimeError(f"upload job ended {outcome.status}: {errors[:300]}")
        [(item_uuid, _name)] = outcome.items_with_names
        return self.hook.get_items([item_uuid])[item_uuid]

    def _read(self, item: StorageItem) -> dict[str, Any]:
        fresh = self.hook.get_items([str(item.uuid)])[str(item.uuid)]
        return dict(fresh.client_metadata or {})

    def _patch(self, item: StorageItem, metadata: dict[str, Any]) -> None:
        from encord.http.bundle import Bundle

        with Bundle() as bundle:
            item.update(client_metadata=metadata, bundle=bundle)

    # --- measurements --------------------------------------------------------------------------

    def folder_search(self, scratch: StorageFolder) -> Answer:
        name = "Contract-Check_Probe"
        self.hook.client.create_storage_folder(name, parent_folder=scratch.uuid)

        def finds(query: str) -> bool:
            return any(f.name == name for f in scratch.list_subfolders(search=query, page_size=100))

        wait_s = self.search_wait_s
        deadline = time.monotonic() + wait_s
        while not finds(name):
            if time.monotonic() >= deadline:
                return Answer(
                    "folder_search",
                    "unindexed",
                    f"search={name!r} did not find the folder within {wait_s:.0f}s of creating it",
                    {"folder_search": "unindexed"},
                )
            time.sleep(min(1.0, wait_s / 5))
        checks = {
            "case": finds(name.lower()),
            "prefix": finds("Contract-Ch"),
            "substring": finds("ck_Pro"),
        }
        detail = ", ".join(f"{k}: {'found' if v else 'not found'}" for k, v in checks.items())
        if checks["substring"]:
            mode = "substring"
        elif checks["prefix"]:
            mode = "prefix"
        else:
            mode = "exact"
        return Answer("folder_search", mode, detail, {"folder_search": mode})

    def patch(self, item: StorageItem) -> list[Answer]:
        self._patch(item, {"nested": {"x": 1, "y": 2}, "kept": 1, "nulled": 1})
        self._patch(item, {"nested": {"x": 3}, "nulled": None})
        after = self._read(item)
        self._patch(item, {})
        nested = after.get("nested")
        if "kept" not in after:
            mode = "replace"
        elif isinstance(nested, dict) and nested.get("y") == 2:
            mode = "merge-recursive"
        elif nested == {"x": 3}:
            mode = "merge"
        else:
            mode = "unknown"
        if "nulled" not in after:
            nulls = "deletes"
        elif after["nulled"] is None:
            nulls = "stored"
        else:
            nulls = "ignored"
        sent = '{"nested":{"x":1,"y":2},"kept":1,"nulled":1} then {"nested":{"x":3},"nulled":null}'
        detail = f"{sent} read back {json.dumps(after, sort_keys=True)}"
        options = {"patch_semantics": mode} if mode != "unknown" else {}
        return [
            Answer("patch_semantics", mode, detail, options),
            Answer("null_handling", nulls, f"a key PATCHed to null {nulls_phrase(nulls)}"),
        ]

    def duplicates(self, scratch: StorageFolder, item: StorageItem) -> Answer:
        outcome = self._register(scratch, self.object_url)
        listed = [u for u, _ in outcome.items_with_names]
        count = sum(1 for i in self.hook.iter_folder_items(scratch) if i.url == self.object_url)
        detail = (
            f"job {outcome.status}, units done {outcome.units_done}, errors {outcome.units_error}, "
            f"listed {listed}; items with this URL now: {count}"
        )
        if count != 1:
            return Answer("duplicates", "registered-twice", detail, {})
        if outcome.unit_errors:
            self._duplicates_as_errors = True
            return Answer("duplicates", "unit-error", detail, {"duplicates_as": "unit-error"})
        if str(item.uuid) in listed:
            options = {"duplicates_as": "success", "report_skipped_duplicates": True}
            return Answer("duplicates", "listed", detail, options)
        options = {"duplicates_as": "success", "report_skipped_duplicates": False}
        return Answer("duplicates", "not-listed", detail, options)

    def concurrent_duplicates(self, scratch: StorageFolder) -> Answer:
        """Two jobs with the same URL started back to back, in a folder where it is new: does
        ``skip_duplicate_urls`` hold while both run (as when a lost job-start answer is retried)?"""
        if self._integration_uuid is None:
            self._integration_uuid = self.hook.resolve_integration(self.integration)
        from encord_ingest.manifest.model import Manifest
        from encord_provider.upload_items import upload_items

        folder = self.hook.client.create_storage_folder("concurrent", parent_folder=scratch.uuid)
        manifest = Manifest.from_docs_json({"images": [{"objectUrl": self.object_url}]})
        jobs = [
            self.hook.start_upload_job(folder, self._integration_uuid, upload_items(manifest))
            for _ in range(2)
        ]
        for job in jobs:
            self.hook.wait_for_upload_job(str(folder.uuid), job, timeout_s=self.job_timeout_s, poll_s=10)
        count = sum(1 for i in self.hook.iter_folder_items(folder) if i.url == self.object_url)
        detail = f"two overlapping jobs for one new URL left {count} item(s)"
        if count == 1:
            return Answer(
                "concurrent_duplicates", "deduplicated", detail, {"concurrent_jobs_deduplicate": True}
            )
        return Answer(
            "concurrent_duplicates", "registered-twice", detail, {"concurrent_jobs_deduplicate": False}
        )

    def url_normalisation(self, scratch: StorageFolder) -> Answer:
        variant = url_variant(self.object_url)
        outcome = self._register(scratch, variant)
        stored = [i.url for i in self.hook.iter_folder_items(scratch) if i.url not in (self.object_url, None)]
        if outcome.unit_errors and not stored and self._duplicates_as_errors:
            error = outcome.unit_errors[0].error[:200]
            detail = f"{variant!r} was reported as a duplicate of {self.object_url!r}: {error}"
            return Answer("url_normalisation", "normalised", detail, {"normalise_urls": True})
        if outcome.unit_errors:
            detail = f"{variant!r} was refused: {outcome.unit_errors[0].error[:200]}"
            return Answer("url_normalisation", "unknown", detail, {})
        if not outcome.items_with_names and not stored:
            detail = f"{variant!r} was taken for a duplicate of {self.object_url!r}"
            return Answer("url_normalisation", "normalised", detail, {"normalise_urls": True})
        if variant in stored:
            return Answer(
                "url_normalisation", "byte-exact", f"{variant!r} stored as sent", {"normalise_urls": False}
            )
        detail = f"{variant!r} stored as {stored[:1]!r}"
        return Answer("url_normalisation", "normalised", detail, {"normalise_urls": True})

    def schema_validation(self, item: StorageItem) -> Answer:
        from encord.exceptions import InvalidArgumentsError

        key = self._number_key()
        if key is None:
            detail = "the organisation schema has no number key; rerun with --allow-schema-key"
            return Answer("schema_validation", "unknown", detail, {})
        try:
            self._patch(item, {key: "not a number"})
        except InvalidArgumentsError as exc:
            detail = f"{{{key!r}: 'not a number'}} refused: {exc.message[:200]}"
            return Answer("schema_validation", "reject", detail, {"schema_enforcement": "reject"})
        finally:
            self._cleanup_schema_key(key)
        stored = self._read(item).get(key)
        self._patch(item, {})
        detail = f"{{{key!r}: 'not a number'}} accepted, read back {stored!r}"
        return Answer("schema_validation", "off", detail, {"schema_enforcement": "off"})

    def _number_key(self) -> str | None:
        for key, option in sorted(self.hook.schema_document().items()):
            if isinstance(option, dict) and option.get("ty") == "number":
                return str(key)
        if not self.allow_schema_key:
            return None
        from encord_ingest.schema import parse_schema

        self.hook.apply_schema(parse_schema({"keys": {SCHEMA_KEY: "number"}}, file="<contract check>"))
        return SCHEMA_KEY

    def _cleanup_schema_key(self, key: str) -> None:
        if key != SCHEMA_KEY:
            return
        from encord_ingest.schema import parse_schema

        with contextlib.suppress(Exception):
            self.hook.apply_schema(
                parse_schema({"keys": {}}, file="<contract check>"), delete_keys=[SCHEMA_KEY]
            )

    def max_body(self, item: StorageItem, *, precision: float = 0.02) -> Answer:
        sizes: dict[int, str] = {}

        def accepted(body_bytes: int) -> bool:
            pad = max(0, body_bytes - bulk_patch_bytes(str(item.uuid), {PAD_KEY: ""}))
            outcome = self._try_patch(item, {PAD_KEY: "x" * pad})
            sizes[body_bytes] = outcome
            return outcome == "ok"

        lo, hi = 1024, None
        if not accepted(lo):
            return Answer("max_body_bytes", "error", f"a {lo}-byte bulk PATCH was refused: {sizes[lo]}")
        probe = 64 * 1024
        while probe <= self.body_bound:
            if not accepted(probe):
                hi = probe
                break
            lo = probe
            probe *= 4
        if hi is None and lo < self.body_bound and accepted(self.body_bound):
            lo = self.body_bound
        elif hi is None and lo < self.body_bound:
            hi = self.body_bound
        while hi is not None and hi - lo > max(precision * lo, 256):
            middle = (lo + hi) // 2
            if accepted(middle):
                lo = middle
            else:
                hi = middle
        self._patch(item, {})
        if hi is None:
            detail = f"every body up to the bound ({self.body_bound} bytes) was accepted"
            return Answer("max_body_bytes", f">= {self.body_bound}", detail, {"max_body_bytes": None})
        detail = f"{lo} bytes accepted, {hi} bytes refused ({sizes[hi]})"
        return Answer("max_body_bytes", str(lo), detail, {"max_body_bytes": lo})

    def _try_patch(self, item: StorageItem, metadata: dict[str, Any]) -> str:
        from encord.exceptions import EncordException, PayloadTooLargeError

        try:
            self._patch(item, metadata)
        except PayloadTooLargeError:
            return "413"
        except EncordException as exc:
            return f"{type(exc).__name__}: {exc.message[:120]}"
        return "ok"

    def rate_limit_headers(self) -> Answer:
        headers, _ = signed_get(self.hook, "cloud-integrations")
        found = {k: v for k, v in headers.items() if any(m in k.lower() for m in RATE_LIMIT_MARKERS)}
        if not found:
            return Answer("rate_limit_headers", "none", "no rate-limit header on a signed GET", {})
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(found.items()))
        return Answer("rate_limit_headers", "present", detail, {"rate_limit_headers": found})


def nulls_phrase(nulls: str) -> str:
    return {
        "deletes": "is gone afterwards (JSON merge patch)",
        "stored": "reads back as null",
        "ignored": "keeps its old value",
    }[nulls]


def _title_of(url: str) -> str:
    return f"contract-check/{urlsplit(url).path.rsplit('/', 1)[-1] or 'object'}"


def url_variant(url: str) -> str:
    """The same object, spelled differently: one unreserved character of the file name
    percent-encoded (``image.jpg`` -> ``imag%65.jpg``) and the host upper-cased."""
    parts = urlsplit(url)
    head, _, name = parts.path.rpartition("/")
    stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
    for index in range(len(stem) - 1, -1, -1):
        if stem[index].isalnum():
            stem = f"{stem[:index]}%{ord(stem[index]):02X}{stem[index + 1 :]}"
            break
    path = f"{head}/{stem}{dot}{ext}"
    return urlunsplit((parts.scheme, parts.netloc.upper(), path, parts.query, parts.fragment))


def bulk_patch_bytes(item_uuid: str, metadata: dict[str, Any]) -> int:
    """Bytes of the ``patch-bulk`` body the SDK sends for one item (``requests``' JSON spacing)."""
    return len(json.dumps({"itemPatches": {item_uuid: {"clientMetadata": metadata}}}).encode("utf-8"))


def signed_get(hook: EncordHook, path: str) -> tuple[dict[str, str], Any]:
    """Headers and JSON body of one signed ``GET /v2/public/<path>`` (the SDK hides response
    headers). Signed with the SDK's own config, a private attribute of the pinned 0.1.211."""
    import requests

    api = hook.client._api_client
    request = api._config.define_headers_v2(requests.Request("GET", api._build_url(path)).prepare())
    with requests.Session() as session:
        response = session.send(request, timeout=60)
    response.raise_for_status()
    return dict(response.headers), response.json()


def run_check(
    conn_id: str,
    folder: str,
    integration: str,
    object_url: str,
    *,
    body_bound: int = DEFAULT_BODY_BOUND,
    allow_schema_key: bool = False,
    hook_params: dict[str, Any] | None = None,
    search_wait_s: float = 10.0,
) -> ContractReport:
    from encord_provider.hooks.encord import EncordHook

    hook = EncordHook(conn_id, **(hook_params or {}))
    check = ContractCheck(
        hook,
        folder=folder,
        integration=integration,
        object_url=object_url,
        body_bound=body_bound,
        allow_schema_key=allow_schema_key,
        search_wait_s=search_wait_s,
    )
    return check.run()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m encord_provider.contract", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    parser.add_argument("--conn-id", required=True, help="Airflow connection of type encord")
    parser.add_argument("--folder", required=True, help="scratch folder path, e.g. scratch/contract")
    parser.add_argument("--integration", required=True, help="cloud integration title or UUID")
    parser.add_argument("--object-url", required=True, help="an image the integration can read")
    parser.add_argument("--out", default="encord-contract.json", help="where the JSON goes")
    parser.add_argument("--max-body-bound", type=int, default=DEFAULT_BODY_BOUND, help="bytes")
    parser.add_argument(
        "--allow-schema-key",
        action="store_true",
        help=f"add (and then delete) the schema key {SCHEMA_KEY} when the schema has no number key",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    report = run_check(
        args.conn_id,
        args.folder,
        args.integration,
        args.object_url,
        body_bound=args.max_body_bound,
        allow_schema_key=args.allow_schema_key,
    )
    print(report.table())
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(report.to_json(), out, indent=1, sort_keys=True)
    print(f"\nWritten to {args.out}; start the emulator from it with --behaviour-file {args.out}")
    return 1 if any(a.answer == "error" for a in report.answers) else 0


if __name__ == "__main__":
    sys.exit(main())
