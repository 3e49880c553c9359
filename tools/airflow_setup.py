"""``python tools/airflow_setup.py``: prepare a metadata DB for ``airflow standalone`` in ONE process.

Creates the DB as ``airflow standalone`` would (``initdb``), sets pools and imports connections
(``airflow connections import --overwrite``'s own code). Separate ``airflow db migrate``, ``airflow
pools set`` and ``airflow connections import`` commands start Airflow and its CLI three times
(~30 s each on a loaded 2-core machine). Airflow's settings come from the environment.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def pool_spec(text: str) -> tuple[str, int, str]:
    """``NAME:SLOTS:DESCRIPTION`` (an argparse type)."""
    name, slots, description = [*text.split(":", 2), ""][:3]
    if not name or not slots.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME:SLOTS[:DESCRIPTION], got {text!r}")
    return name, int(slots), description


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=pool_spec, action="append", default=[], help="NAME:SLOTS:DESCRIPTION")
    parser.add_argument("--connections", type=Path, help="a file for `airflow connections import`")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from airflow.models.pool import Pool
    from airflow.utils import db

    db.initdb()
    for name, slots, description in args.pool:
        Pool.create_or_update_pool(name, slots, description, include_deferred=False)
        print(f"Pool {name}: {slots} slots")
    if args.connections:
        from airflow.cli.commands.connection_command import connections_import

        connections_import(argparse.Namespace(file=str(args.connections), overwrite=True, verbose=False))


if __name__ == "__main__":
    main()
