"""The shard scan: list, classify, pair, group, type metadata, diff against the ledger, write.

:func:`~.scanner.scan_shard` streams a shard's listing folder by folder (:class:`~.grouping.FolderWalker`)
and writes into the run's folder (a :class:`~encord_ingest.storage.BlobStore`)::

    manifests/shard-<i>-<n>.json    items to register (Encord's documented import JSON)
    metadata/shard-<i>-<n>.jsonl    metadata changes (:class:`~encord_ingest.sync.MetadataChange`)
    outcomes/shard-<i>-<n>.parquet  one row per object: the outcome table (:data:`~.outcomes.OUTCOME_COLUMNS`)
    summaries/shard-<i>.json        the :class:`~.config.ShardSummary`, written last

Modules:

- :mod:`.config`: :class:`~.config.PlanningConfig` (one per source), :class:`~.config.ShardSummary`;
- :mod:`.writers`: chunk writers (manifests, metadata changes, outcome rows);
- :mod:`.outcomes`: the per-object outcome table, its Parquet encoding and its reader;
- :mod:`.inputs`: folder-level inputs (defaults files, tables) along the walk, sidecar reads;
- :mod:`.item_metadata`: an item's typed, merged ``clientMetadata`` from its layers;
- :mod:`.items`: a grouping draft turned into a manifest item;
- :mod:`.scanner`: :class:`~.scanner.ScanContext`, :class:`~.scanner.ShardScanner`,
  :func:`~.scanner.scan_shard`.

Import from the modules (this package imports nothing, so ``config`` stays light for
:mod:`encord_ingest.config`).

Chunks are written as they fill, so memory holds one folder chain, one chunk of each kind and the
ledger rows of the shard (plus DICOM files waiting for their series with ``series_uid``). Names
are deterministic: a retried scan rewrites the same files and deletes its own leftovers.

Accounting: every listed object gets exactly one row and one outcome (:class:`~.ledger.Outcome`):

- data files: the outcome of their item (``new``, ``data_changed``, ``metadata_changed``,
  ``unchanged``) or ``failed`` with the item's error (every member of a failed group fails);
- sidecars are objects too: ``sidecar`` when they are an input of some item (a per-file sidecar
  paired with its data file, a folder defaults file or table), ``failed`` when they cannot be
  parsed (the items they feed fail too), ``skipped`` when nothing uses them (code
  ``orphan_sidecar`` for a per-file sidecar without its data file; per-frame sidecars of groups
  and DICOM files, and sidecars of data files skipped by a glob, with the reason);
- ``skipped`` by rule (hidden, temporary, folder marker, empty, excluded, not included, unknown
  kind) with the rule as its code;
- ``gone``: rows of the ledger in this shard's ranges that the listing did not return. They are
  not part of the objects seen, so ``sum(counts) - gone == objects``.

Decisions:

- ``data_changed``: Encord skips URLs it already has (``skip_duplicate_urls``), so a rewritten
  file is not registered again; the scan syncs its metadata only (when it differs) and says so
  in the row's ``warning``. Re-registering needs a new URL (or a manual delete in Encord).
- New items carry their ``clientMetadata`` in the manifest and, by default
  (``sync_new_items``), also get a metadata-change row: if a run registered an item and crashed
  before committing the ledger, the rerun sees it as new again, registration skips the duplicate
  URL and keeps the old metadata (``upsert_metadata`` is off); the sync row makes it converge,
  and the sync compares with what Encord holds, so it writes nothing in the common case.
- Titles: the object key for files, the folder path for groups and folder series (see
  :mod:`.grouping`). Independent of the run prefix, so they never change between runs.
- A metadata change's ``object_url`` is the item's key URL (its first object URL).
- Groups and series: a frame added, removed or rewritten makes the whole item ``data_changed``
  (Encord does not change the frames of an existing item); a removed frame's row is ``gone``.
- ``dicom_series: series_uid`` reads each DICOM header on every run (the UID is not in the
  listing) and joins series within one shard only: keep a series inside one shard (shard by
  study folder), or two items with one title result.
"""
