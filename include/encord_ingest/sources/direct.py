"""The short way of reading sidecars (``bucket.direct_reads``), switched off where it never works.

S3's presigned GET (:class:`~.s3.PresignedReads`) and GCS's media URL (:class:`~.gcs.MediaReads`)
answer ``None`` whenever the ordinary client call must read an object. Where the short way cannot
work at all (a bucket outside the connection's region, whose presigned URLs are signed for the
wrong one; an S3-compatible store without presigned URLs; a clock far off), every read would then
cost two requests, silently. :class:`DirectReads` gives the short way a trial: if its first
:data:`TRIAL_READS` answers all need the ordinary way, it is switched off for the rest of the
source's life (one task), with a warning that says how to switch it off for good.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

log = logging.getLogger(__name__)

TRIAL_READS = 20
"""Reads the short way gets to answer once before it is switched off (a few missing or empty
objects among them do not switch it off: one answer is enough)."""


class ShortWay(Protocol):
    def read(self, key: str, max_bytes: int) -> bytes | None: ...


class DirectReads:
    """``reader`` with a trial: see the module docstring. Thread-safe (read-ahead threads)."""

    def __init__(self, reader: ShortWay, where: str, trial: int = TRIAL_READS):
        self.reader = reader
        self.where = where
        self.trial = trial
        self.proven = False
        self.off = False
        self._misses = 0
        self._lock = threading.Lock()

    def read(self, key: str, max_bytes: int) -> bytes | None:
        """The first ``max_bytes`` of ``key`` the short way, or ``None``: read it the ordinary way."""
        if self.off:
            return None
        data = self.reader.read(key, max_bytes)
        if data is not None:
            self.proven = True
        elif not self.proven:
            self._miss()
        return data

    def _miss(self) -> None:
        with self._lock:
            self._misses += 1
            if self.off or self.proven or self._misses < self.trial:
                return
            self.off = True
        log.warning(
            "%s: the first %d sidecar reads the short way (bucket.direct_reads) all needed the "
            "ordinary client call, e.g. a bucket outside the connection's region or a store without "
            "presigned URLs; reading the ordinary way from now on. Set bucket.direct_reads: false "
            "to skip the attempt.",
            self.where,
            self.trial,
        )
