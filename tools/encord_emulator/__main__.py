"""``python -m encord_emulator``: serve the emulator until interrupted.

Prints ``Encord emulator listening on <url>`` and then ``Encord emulator ready`` once it answers.
Without ``--public-key-file`` / ``--public-key`` it makes a throw-away key pair and writes the
private key to ``--dev-key-out`` (default ``./.encord-emulator/dev_ed25519``), so
``make emulator`` works on a fresh checkout.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from encord_emulator.auth import parse_public_key, parse_public_keys_text
from encord_emulator.behaviour import behaviour_options
from encord_emulator.testing import EmulatorServer, generate_ssh_keypair

DEFAULT_DEV_KEY = Path(".encord-emulator/dev_ed25519")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m encord_emulator", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--host", default="127.0.0.1", help="bind address (keep it local: /_admin is unsigned)"
    )
    parser.add_argument("--port", type=int, default=8765, help="0 = any free port")
    parser.add_argument("--public-key-file", action="append", default=[], help="file of accepted public keys")
    parser.add_argument(
        "--public-key", action="append", default=[], help="an accepted public key (OpenSSH or hex)"
    )
    parser.add_argument(
        "--dev-key-out", type=Path, default=DEFAULT_DEV_KEY, help="where a generated key goes"
    )
    parser.add_argument("--accept-any-key", action="store_true", help="accept any correctly signed request")
    parser.add_argument("--persist", help="SQLite file to keep the state in (loaded again on start)")
    parser.add_argument(
        "--patch-semantics",
        choices=["replace", "merge", "merge-recursive"],
        default="merge",
        help="clientMetadata PATCH: replace, shallow merge, or JSON merge patch (RFC 7386)",
    )
    parser.add_argument(
        "--normalise-urls", action="store_true", help="store item URLs normalised (host case, escapes)"
    )
    parser.add_argument(
        "--duplicates-as",
        choices=["success", "unit-error"],
        default="success",
        help="how a skipped duplicate URL is reported by an upload job",
    )
    parser.add_argument("--job-duration", type=float, default=0.0, help="seconds an upload job stays PENDING")
    parser.add_argument("--max-long-poll", type=float, default=30.0, help="cap on one job poll, in seconds")
    parser.add_argument("--max-signature-age", type=float, default=300.0, help="seconds; 0 = no check")
    parser.add_argument(
        "--report-skipped-duplicates", action="store_true", help="with --duplicates-as success: list them"
    )
    parser.add_argument("--discard-good-units-on-error", action="store_true")
    parser.add_argument("--list-group-frames", action="store_true")
    parser.add_argument("--schema-enforcement", choices=["off", "reject"], default="off")
    parser.add_argument(
        "--folder-search",
        choices=["substring", "prefix", "exact", "unindexed"],
        default="substring",
        help="how folder search matches names (unindexed: finds nothing)",
    )
    parser.add_argument("--max-body-bytes", type=int, default=None, help="413 for larger request bodies")
    parser.add_argument(
        "--max-listing-bytes", type=int, default=None, help="504 for item listing pages larger than this"
    )
    parser.add_argument(
        "--drop-first-job-start-response",
        action="store_true",
        help="the first upload-job start creates its job but answers 504",
    )
    parser.add_argument(
        "--concurrent-jobs-race",
        action="store_true",
        help="overlapping upload jobs do not see each other's items as duplicates",
    )
    parser.add_argument(
        "--rate-limit-header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="a header added to every signed response",
    )
    parser.add_argument(
        "--behaviour-file",
        type=Path,
        help="JSON written by `python -m encord_provider.contract`; options given on the command line win",
    )
    parser.add_argument(
        "--integration",
        action="append",
        default=[],
        type=parse_integration,
        metavar="TITLE[:PROVIDER[:UUID]]",
        help="create a cloud integration at start-up",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="ROUTE:STATUS[:TIMES[:RETRY_AFTER[:DELAY_S]]]",
        help="inject a fault at start-up, e.g. items.patch_bulk:503:2",
    )
    return parser


def parse_integration(spec: str) -> tuple[str, str, str | None]:
    """``TITLE[:PROVIDER[:UUID]]`` -> (title, provider, uuid or None); the provider defaults to AWS."""
    title, provider, uuid = [*spec.split(":", 2), "", ""][:3]
    if not title:
        raise argparse.ArgumentTypeError(f"{spec!r}: expected TITLE[:PROVIDER[:UUID]], e.g. demo-s3:AWS")
    return title, provider or "AWS", uuid or None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keys = [k for path in args.public_key_file for k in parse_public_keys_text(Path(path).read_text())]
    keys += [parse_public_key(k) for k in args.public_key]
    if not keys and not args.accept_any_key:
        keys.append(parse_public_key(_write_dev_key(args.dev_key_out)))
    server = EmulatorServer.start(keys, host=args.host, port=args.port, **_options(args))
    print(f"Encord emulator listening on {server.url}", flush=True)
    _seed(server, args)
    print(
        f"Encord emulator accepts key ids: {', '.join(server.admin.health()['key_ids']) or 'any'}", flush=True
    )
    print("Encord emulator ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options = {
        "patch_semantics": args.patch_semantics,
        "normalise_urls": args.normalise_urls,
        "duplicates_as": args.duplicates_as,
        "job_duration_s": args.job_duration,
        "persist_path": args.persist,
        "max_long_poll_s": args.max_long_poll,
        "max_signature_age_s": args.max_signature_age or None,
        "accept_any_key": args.accept_any_key,
        "report_skipped_duplicates": args.report_skipped_duplicates,
        "error_job_keeps_good_units": not args.discard_good_units_on_error,
        "list_group_frames": args.list_group_frames,
        "schema_enforcement": args.schema_enforcement,
        "folder_search": args.folder_search,
        "max_body_bytes": args.max_body_bytes,
        "max_listing_bytes": args.max_listing_bytes,
        "drop_job_start_responses": 1 if args.drop_first_job_start_response else 0,
        "concurrent_jobs_deduplicate": not args.concurrent_jobs_race,
        "rate_limit_headers": dict(h.split(":", 1) for h in args.rate_limit_header),
    }
    return _with_behaviour(options, args.behaviour_file)


def _with_behaviour(options: dict[str, Any], behaviour_file: Path | None) -> dict[str, Any]:
    """The measured behaviour where the command line left an option at its default."""
    if behaviour_file is None:
        return options
    defaults = _options(build_parser().parse_args([]))
    measured = behaviour_options(behaviour_file)
    chosen = {k: v for k, v in measured.items() if k not in options or options[k] == defaults.get(k)}
    print(f"Encord emulator behaviour from {behaviour_file}: {chosen}", flush=True)
    return {**options, **chosen}


def _seed(server: EmulatorServer, args: argparse.Namespace) -> None:
    for title, provider, uuid in args.integration:
        created = server.admin.add_integration(title, provider, uuid)
        print(f"Encord emulator integration {title!r} ({provider}): {created}", flush=True)
    for spec in args.fault:
        parts = spec.split(":")
        server.admin.inject(
            parts[0],
            int(parts[1]),
            times=int(parts[2]) if len(parts) > 2 else 1,
            retry_after=float(parts[3]) if len(parts) > 3 and parts[3] else None,
            delay_s=float(parts[4]) if len(parts) > 4 else 0.0,
        )


def _write_dev_key(path: Path) -> str:
    private, public = generate_ssh_keypair()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(private)
    os.chmod(path, 0o600)
    path.with_suffix(".pub").write_text(public + "\n")
    print(f"Encord emulator: no public key given; wrote a throw-away private key to {path}", flush=True)
    return public


if __name__ == "__main__":
    sys.exit(main())
