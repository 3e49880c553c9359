"""Which listed objects are data: skip rules and include/exclude globs.

Listing yields every object; :class:`KeyFilter` says why one is skipped (a :class:`SkipReason`)
or ``None`` if it is kept, so a skipped object is counted as "skipped by rule", never dropped
silently. Rules and globs are separate on purpose: apply :meth:`KeyFilter.rule_reason` to
everything listed (a ``clip.json.tmp`` is never a sidecar) and :meth:`KeyFilter.glob_reason` to
data files only, after sidecars have been paired (``include: ["*.mp4"]`` must not hide
``clip.mp4.json``).

Rules, checked in this order, on the key *relative to its listing root*: the run's prefix, or,
given the source's prefix template, the rendering of it that the key lies under. So a manual run
that lists a deeper (or shallower) prefix than the template renders sees the same relative keys,
and skips the same objects, as the scheduled run that lists the rendering:


1. ``folder_marker``: the key ends with ``/`` (any size) or with ``_$folder$``.
2. ``hidden`` (``skip_hidden``): a path segment starts with ``.`` (``.DS_Store``, ``.git/x``,
   ``._clip.mp4``).
3. ``temporary``: the file name ends with one of ``temp_suffixes`` or starts with one of
   ``temp_prefixes``.
4. ``empty`` (``skip_empty``, off by default): the object has zero bytes. Off, an empty data
   file fails later with a precise reason instead.

Globs (matched against the relative key, case-sensitive unless ``ignore_case``):

- ``*`` matches any run of characters except ``/``; ``?`` one character except ``/``;
  ``[abc]``, ``[a-z]``, ``[!abc]`` one character of (not of) a set; ``{mp4,mov}`` alternatives.
- ``**`` as a whole segment matches zero or more segments: ``raw/**/*.jpg`` matches
  ``raw/a.jpg`` and ``raw/x/y/a.jpg``; ``cam1/**`` matches everything below ``cam1/``.
- A pattern without ``/`` matches the file name at any depth (``*.mp4`` == ``**/*.mp4``); a
  leading ``/`` anchors a pattern to the root (``/*.mp4`` matches top-level files only).
- A key is kept if it matches no ``exclude`` pattern and (``include`` is empty or it matches one
  ``include`` pattern). Exclusion wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from encord_ingest.errors import ConfigError
from encord_ingest.sources.base import ObjectInfo, folder_of
from encord_ingest.sources.prefix import ancestors_pattern, ends_exactly, template_pattern

DEFAULT_TEMP_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".download", "~")
DEFAULT_TEMP_PREFIXES = ("~$",)
FOLDER_MARKER_SUFFIX = "_$folder$"
_MARKER_ENDS = ("/", FOLDER_MARKER_SUFFIX)


class SkipReason(StrEnum):
    """Why a listed object is not ingested (reported as "skipped by rule")."""

    FOLDER_MARKER = "folder_marker"
    HIDDEN = "hidden"
    TEMPORARY = "temporary"
    EMPTY = "empty"
    EXCLUDED = "excluded"
    NOT_INCLUDED = "not_included"


class FilterConfig(BaseModel):
    """Per-source filter settings (see the module docstring for the exact semantics)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    ignore_case: bool = False
    skip_hidden: bool = True
    skip_empty: bool = False
    temp_suffixes: list[str] = Field(default_factory=lambda: list(DEFAULT_TEMP_SUFFIXES))
    temp_prefixes: list[str] = Field(default_factory=lambda: list(DEFAULT_TEMP_PREFIXES))

    @field_validator("include", "exclude")
    @classmethod
    def _globs_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            glob_to_regex(pattern)
        return patterns


def _brace_alternatives(pattern: str) -> list[str]:
    """Expand the first top-level ``{a,b}`` group (recursively), ``["x"]`` if there is none."""
    depth = 0
    start = -1
    for index, char in enumerate(pattern):
        if char == "{":
            if depth == 0:
                start = index
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                return _expand_group(pattern, start, index)
    if depth:
        raise ValueError(f"unbalanced '{{' in glob {pattern!r}")
    return [pattern]


def _expand_group(pattern: str, start: int, end: int) -> list[str]:
    body, options, depth, last = pattern[start + 1 : end], [], 0, 0
    for index, char in enumerate(body):
        depth += char == "{"
        depth -= char == "}"
        if char == "," and depth == 0:
            options.append(body[last:index])
            last = index + 1
    options.append(body[last:])
    head, tail = pattern[:start], pattern[end + 1 :]
    return [expanded for option in options for expanded in _brace_alternatives(head + option + tail)]


def _class_end(segment: str, start: int) -> int:
    """Index of the ``]`` closing the set opened at ``start`` (a leading ``]`` is literal), or -1."""
    index = start + 1
    if segment[index : index + 1] in ("!", "^"):
        index += 1
    if segment[index : index + 1] == "]":
        index += 1
    return segment.find("]", index)


def _segment_regex(segment: str, pattern: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(segment):
        char = segment[index]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            close = _class_end(segment, index)
            if close < 0:
                raise ValueError(f"unclosed '[' in glob {pattern!r}")
            body = segment[index + 1 : close]
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            escaped = "".join("\\" + c if c in "\\^[]" else c for c in body)
            out.append(f"[^/{escaped}]" if negate else f"(?!/)[{escaped}]")
            index = close
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)


def _single_glob_regex(pattern: str) -> str:
    if pattern.startswith("/"):
        pattern = pattern[1:]
    elif "/" not in pattern:
        pattern = "**/" + pattern
    segments = pattern.split("/")
    out = ""
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        if segment == "**":
            out += ".*" if last else "(?:[^/]*/)*"
        else:
            out += _segment_regex(segment, pattern) + ("" if last else "/")
    return out


def glob_to_regex(pattern: str) -> str:
    """The regular expression (to be full-matched) for one glob pattern."""
    if not pattern:
        raise ValueError("empty glob pattern")
    return "|".join(f"(?:{_single_glob_regex(option)})" for option in _brace_alternatives(pattern))


def compile_globs(
    patterns: Iterable[str], *, ignore_case: bool = False, field: str = "globs"
) -> re.Pattern[str] | None:
    """One compiled matcher for a list of patterns (``None`` for an empty list)."""
    regexes: list[str] = []
    for pattern in patterns:
        try:
            regexes.append(glob_to_regex(pattern))
        except (ValueError, re.error) as exc:
            raise ConfigError(
                f"{field}: invalid glob {pattern!r} ({exc}); expected a glob like 'raw/**/*.jpg'"
            ) from exc
    if not regexes:
        return None
    return re.compile(
        "|".join(f"(?:{regex})" for regex in regexes), re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    )


def _hidden_path(relative: str) -> bool:
    """Whether a relative path has a segment starting with ``.`` (``.x``, ``a/.x/``)."""
    return relative.startswith(".") or "/." in relative


def _renderings(pattern: re.Pattern[str], roots: Sequence[str]) -> bool:
    """Whether every root is exactly a rendering of the template ``pattern`` matches."""
    return all((match := pattern.match(root)) is not None and match.end() == len(root) for root in roots)


class KeyFilter:
    """Applies a :class:`FilterConfig` to keys listed under one or more roots (run prefixes)."""

    def __init__(
        self, config: FilterConfig | None = None, roots: Sequence[str] = ("",), *, template: str | None = None
    ):
        self.config = config or FilterConfig()
        self.roots = sorted(set(roots) or {""}, key=len, reverse=True)
        self._pattern = template_pattern(template) if template is not None else None
        self._ancestors = ancestors_pattern(template) if template is not None else None
        # A rendering is a folder ("" too: the bucket root, a source without prefix), or a
        # file-name prefix a key's match ends exactly at: text of its own at the end (``raw/img_``,
        # ``raw/{{ data_interval_start:%Y%m }}_``) or fixed-width placeholders in its last segment
        # (``raw/{{ data_interval_start:%Y%m }}``). A placeholder of no fixed width at the very end
        # would match into the file name (config load refuses it together with globs).
        self._folders = template is not None and (not template or template.endswith("/"))
        exact = self._folders or (template is not None and ends_exactly(template))
        self._template = (
            None
            if not exact or self._pattern is None or _renderings(self._pattern, self.roots)
            else self._pattern
        )
        """Set only when a root is not a rendering of the template (a prefix override)."""
        self._include = compile_globs(
            self.config.include, ignore_case=self.config.ignore_case, field="include"
        )
        self._exclude = compile_globs(
            self.config.exclude, ignore_case=self.config.ignore_case, field="exclude"
        )
        self._temp_suffixes = tuple(self.config.temp_suffixes)
        self._temp_prefixes = tuple(self.config.temp_prefixes)
        self._skip_hidden, self._skip_empty = self.config.skip_hidden, self.config.skip_empty
        self._last_folder: tuple[str, bool | None] = ("\x00", None)
        """The folder of the last key :meth:`rule_reason` saw, and :meth:`_folder_hidden` of it."""

    def rendering(self, key: str) -> str | None:
        """The rendering of the prefix template that ``key`` lies under (``None``: none, or no template)."""
        match = self._pattern.match(key) if self._pattern is not None else None
        return match.group(0) if match is not None else None

    def scheduled(self, key: str, *, folder_input: bool) -> bool:
        """Whether a scheduled run reads ``key``: it lies under a rendering of the prefix template,
        or it is a folder defaults file or table (``folder_input``) of a folder some rendering lies
        in (``raw/_defaults.yaml``, ``raw/2026/_defaults.yaml``). ``True`` without a template."""
        if self._pattern is None or self._ancestors is None or self._pattern.match(key) is not None:
            return True
        return folder_input and self._ancestors.fullmatch(folder_of(key)) is not None

    def root(self, key: str) -> str:
        """Where rules and globs start for ``key`` (its glob root, for scans and event runs alike):
        the template's rendering it lies under when a root is not a rendering, else the longest
        root it starts with, else ``""``."""
        if self._template is not None and (match := self._template.match(key)) is not None:
            return match.group(0)
        return next((root for root in self.roots if key.startswith(root)), "")

    def relative(self, key: str) -> str:
        """``key`` without its glob root (:meth:`root`)."""
        return key[len(self.root(key)) :]

    def rule_reason(self, info: ObjectInfo) -> SkipReason | None:
        """The skip rule that ``info`` falls under, if any (globs not considered). What depends
        on the key's folder only (its glob root, a hidden folder) is worked out once for
        consecutive keys of one folder (a listing's order); the file name is checked per key."""
        key = info.key
        if key.endswith(_MARKER_ENDS):
            return SkipReason.FOLDER_MARKER
        cut = key.rfind("/") + 1
        folder, hidden = self._last_folder
        if len(folder) != cut or not key.startswith(folder):
            folder = key[:cut]
            hidden = self._folder_hidden(folder)
            self._last_folder = (folder, hidden)  # one assignment: other threads see a whole pair
        if hidden is None:  # a root ends inside this folder's names: judged from the whole key
            relative = self.relative(key)
            cut = relative.rfind("/") + 1
            hidden, name = _hidden_path(relative[:cut]), relative[cut:]
        else:
            name = key[cut:]
        if self._skip_hidden and (hidden or name.startswith(".")):
            return SkipReason.HIDDEN
        if name.endswith(self._temp_suffixes) or name.startswith(self._temp_prefixes):
            return SkipReason.TEMPORARY
        if self._skip_empty and info.size == 0:
            return SkipReason.EMPTY
        return None

    def _folder_hidden(self, folder: str) -> bool | None:
        """Whether ``folder``, relative to the glob root of its keys, is hidden (``.x/`` or
        ``a/.x/``); ``None`` when that root may differ between its keys (a root that ends inside
        the folder's names). A template's rendering ends with ``/``: a key and its folder lie
        under the same one."""
        if any(len(root) > len(folder) and root.startswith(folder) for root in self.roots):
            return None
        if self._template is not None and not self._folders:  # it may end inside a file name
            return None
        return _hidden_path(folder[len(self.root(folder)) :])

    @property
    def has_globs(self) -> bool:
        """Whether include or exclude globs are set (else :meth:`glob_reason` is always ``None``)."""
        return self._exclude is not None or self._include is not None

    def glob_reason(self, key: str) -> SkipReason | None:
        """``EXCLUDED`` or ``NOT_INCLUDED`` by the globs, ``None`` if the key is selected."""
        if self._exclude is None and self._include is None:
            return None
        relative = self.relative(key)
        if self._exclude is not None and self._exclude.fullmatch(relative):
            return SkipReason.EXCLUDED
        if self._include is not None and not self._include.fullmatch(relative):
            return SkipReason.NOT_INCLUDED
        return None

    def skip_reason(self, info: ObjectInfo) -> SkipReason | None:
        """Rules first, then globs; ``None`` when the object is kept."""
        return self.rule_reason(info) or self.glob_reason(info.key)
