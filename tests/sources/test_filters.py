"""Skip rules and include/exclude globs."""

from __future__ import annotations

import pytest

from encord_ingest.errors import ConfigError
from encord_ingest.sources import FilterConfig, KeyFilter, ObjectInfo, SkipReason
from encord_ingest.sources.filters import compile_globs


def obj(key: str, size: int = 10) -> ObjectInfo:
    return ObjectInfo(key=key, size=size, version="v")


@pytest.mark.parametrize(
    ("key", "size", "reason"),
    [
        ("raw/cam1/", 0, SkipReason.FOLDER_MARKER),
        ("raw/cam1/", 12, SkipReason.FOLDER_MARKER),
        ("raw/cam1_$folder$", 0, SkipReason.FOLDER_MARKER),
        ("raw/.DS_Store", 10, SkipReason.HIDDEN),
        ("raw/cam1/._clip.mp4", 10, SkipReason.HIDDEN),
        ("raw/.git/objects/ab", 10, SkipReason.HIDDEN),
        ("raw/clip.mp4.tmp", 10, SkipReason.TEMPORARY),
        ("raw/clip.mp4.partial", 10, SkipReason.TEMPORARY),
        ("raw/clip.mp4.part", 10, SkipReason.TEMPORARY),
        ("raw/clip.mp4~", 10, SkipReason.TEMPORARY),
        ("raw/~$report.docx", 10, SkipReason.TEMPORARY),
        ("raw/clip.mp4", 10, None),
        ("raw/empty.jpg", 0, None),  # empty objects are kept unless skip_empty
        ("raw/clip.tmp.mp4", 10, None),
        ("raw/a.b/c.jpg", 10, None),
    ],
)
def test_default_skip_rules(key: str, size: int, reason: SkipReason | None) -> None:
    assert KeyFilter(roots=["raw/"]).rule_reason(obj(key, size)) == reason


def test_hidden_is_judged_below_the_root_only() -> None:
    key_filter = KeyFilter(roots=[".staging/raw/"])
    assert key_filter.rule_reason(obj(".staging/raw/a.jpg")) is None
    assert key_filter.rule_reason(obj(".staging/raw/.a.jpg")) == SkipReason.HIDDEN


def test_rules_are_configurable() -> None:
    config = FilterConfig(skip_hidden=False, skip_empty=True, temp_suffixes=[".inprogress"], temp_prefixes=[])
    key_filter = KeyFilter(config)
    assert key_filter.rule_reason(obj(".DS_Store")) is None
    assert key_filter.rule_reason(obj("a.jpg", 0)) == SkipReason.EMPTY
    assert key_filter.rule_reason(obj("a.jpg.inprogress")) == SkipReason.TEMPORARY
    assert key_filter.rule_reason(obj("a.jpg.tmp")) is None
    assert key_filter.rule_reason(obj("~$x.docx")) is None
    assert key_filter.rule_reason(obj("marker/")) == SkipReason.FOLDER_MARKER


def _whole_key_reason(key_filter: KeyFilter, info: ObjectInfo) -> SkipReason | None:
    """The rules of the module docstring, from the whole key relative to its glob root: what the
    per-folder shortcut of :meth:`KeyFilter.rule_reason` must equal."""
    config, relative = key_filter.config, key_filter.relative(info.key)
    if config.skip_hidden and (relative.startswith(".") or "/." in relative):
        return SkipReason.HIDDEN
    name = relative.rsplit("/", 1)[-1]
    if name.endswith(tuple(config.temp_suffixes)) or name.startswith(tuple(config.temp_prefixes)):
        return SkipReason.TEMPORARY
    if config.skip_empty and info.size == 0:
        return SkipReason.EMPTY
    return None


def test_rules_judged_per_folder_match_the_rules_judged_per_key() -> None:
    """rule_reason works out a folder's root and hidden state once for consecutive keys of one
    folder: in any order of keys, under roots that end inside a folder or a name, and with a
    prefix template, it says what the rules say of each whole key."""
    keys = [
        "raw/a.jpg",
        "raw/.a.jpg",
        "raw/cam/a.jpg",
        "raw/cam/.b.jpg",
        "raw/.cam/a.jpg",
        "raw/cam/x/~$a.docx",
        "raw/cam/x/a.jpg.tmp",
        "raw/ca",
        "raw/cam.jpg",
        ".staging/raw/a.jpg",
        ".staging/raw/.git/b",
        "a.jpg",
        ".a.jpg",
        "raw/2026/.x/a.jpg",
        "raw/2026/a.jpg",
        "raw/2026/01/a.jpg",
        "raw/2026/01/.a.jpg",
        "raw/2026/.01/a.jpg",
        "raw/cam1_$folder$",
        "raw/cam/",
        "raw/img_.h/a/x.jpg",
        "raw/img_x.jpg",
    ]
    filters = [
        KeyFilter(roots=["raw/"]),
        KeyFilter(roots=["raw/cam", "raw/ca", "raw/", ""]),
        KeyFilter(roots=[".staging/raw/", "raw/cam/x"]),
        KeyFilter(FilterConfig(skip_empty=True), roots=["raw/2026/01/"], template="raw/{yyyy}/{mm}/"),
        KeyFilter(roots=["raw/"], template="raw/{yyyy}/{mm}/"),  # a prefix override: roots by template
        KeyFilter(roots=["raw/img_.h/a/"], template="raw/img_"),  # a file-name prefix: per key
    ]
    for key_filter in filters:
        for order in (keys, sorted(keys), list(reversed(keys))):
            for key in order:
                for size in (0, 10):
                    info = obj(key, size)
                    marker = key.endswith(("/", "_$folder$"))
                    expected = SkipReason.FOLDER_MARKER if marker else _whole_key_reason(key_filter, info)
                    assert key_filter.rule_reason(info) == expected, (key, size)


GLOB_CASES = [
    # pattern, key (relative), matches
    ("*.mp4", "clip.mp4", True),
    ("*.mp4", "a/b/clip.mp4", True),  # no '/': the name at any depth
    ("*.mp4", "clip.mp4.json", False),
    ("/*.mp4", "clip.mp4", True),  # leading '/': anchored at the root
    ("/*.mp4", "a/clip.mp4", False),
    ("cam1/*.jpg", "cam1/x.jpg", True),
    ("cam1/*.jpg", "cam1/sub/x.jpg", False),  # '*' never crosses '/'
    ("cam1/*.jpg", "other/cam1/x.jpg", False),  # with '/': anchored at the root
    ("cam1/**", "cam1/sub/deeper/x.jpg", True),
    ("cam1/**", "cam10/x.jpg", False),
    ("**/frames/*.png", "frames/0001.png", True),  # '**' is zero or more segments
    ("**/frames/*.png", "a/b/frames/0001.png", True),
    ("raw/**/*.jpg", "raw/a.jpg", True),
    ("raw/**/*.jpg", "raw/x/y/a.jpg", True),
    ("raw/**/*.jpg", "rawx/a.jpg", False),
    ("img?.jpg", "img1.jpg", True),
    ("img?.jpg", "img10.jpg", False),
    ("img[0-4].jpg", "img3.jpg", True),
    ("img[0-4].jpg", "img7.jpg", False),
    ("img[!0-4].jpg", "img7.jpg", True),
    ("img[!0-4].jpg", "img3.jpg", False),
    ("a[!x]b", "a/b", False),  # a set never matches "/"
    ("*.{mp4,mov}", "x/clip.mov", True),
    ("*.{mp4,mov}", "x/clip.avi", False),
    ("{cam1,cam2}/*.jpg", "cam2/a.jpg", True),
    ("{cam1,cam2}/*.jpg", "cam3/a.jpg", False),
    ("*.JPG", "a.jpg", False),  # case-sensitive by default
    ("*+*.jpg", "a+b.jpg", True),  # regex metacharacters are literal
    ("(x).jpg", "(x).jpg", True),
    ("[]]x", "]x", True),  # a leading ']' in a set is literal
]


@pytest.mark.parametrize(("pattern", "key", "matches"), GLOB_CASES)
def test_glob_semantics(pattern: str, key: str, matches: bool) -> None:
    matcher = compile_globs([pattern])
    assert matcher is not None
    assert bool(matcher.fullmatch(key)) is matches


def test_include_exclude_precedence_and_roots() -> None:
    config = FilterConfig(include=["*.jpg", "*.mp4"], exclude=["thumbs/**", "*_small.jpg"])
    key_filter = KeyFilter(config, roots=["raw/2024/01/01/", "raw/2024/01/02/"])
    assert key_filter.glob_reason("raw/2024/01/01/a.jpg") is None
    assert key_filter.glob_reason("raw/2024/01/02/cam/b.mp4") is None
    assert key_filter.glob_reason("raw/2024/01/01/a.json") == SkipReason.NOT_INCLUDED
    assert key_filter.glob_reason("raw/2024/01/02/thumbs/a.jpg") == SkipReason.EXCLUDED
    assert key_filter.glob_reason("raw/2024/01/01/a_small.jpg") == SkipReason.EXCLUDED
    assert key_filter.skip_reason(obj("raw/2024/01/01/.a.jpg")) == SkipReason.HIDDEN
    assert key_filter.skip_reason(obj("raw/2024/01/01/ok.jpg")) is None


def test_ignore_case() -> None:
    key_filter = KeyFilter(FilterConfig(include=["*.jpg"], ignore_case=True))
    assert key_filter.glob_reason("A.JPG") is None


def test_empty_include_keeps_everything() -> None:
    assert KeyFilter().glob_reason("anything/at/all.bin") is None


@pytest.mark.parametrize("pattern", ["img[0-4.jpg", "{a,b.jpg", "", "a[/]b"])
def test_invalid_globs_are_rejected(pattern: str) -> None:
    with pytest.raises(ConfigError, match="include: invalid glob"):
        compile_globs([pattern], field="include")
    with pytest.raises(ValueError, match="glob"):
        FilterConfig(include=[pattern])
