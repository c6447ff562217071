"""The per-user cache of Lark parse tables: used when valid, rebuilt silently otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import lark
import pytest

from rpcnet_idl import lark_cache
from rpcnet_idl.parser import parse

GRAMMAR = """
start: NAME+
NAME: /[a-z]+/
%ignore " "
"""
OPTIONS = {"parser": "lalr", "lexer": "contextual"}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("RPCNET_CACHE_DIR", str(directory))
    return directory


def _names(parser: lark.Lark) -> list[str]:
    return [str(t) for t in parser.parse("ab cd").children]


def _forbid_building(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: lark.Lark) -> None:
        raise AssertionError("the tables were built, not loaded")

    monkeypatch.setattr(lark.Lark, "_build_parser", refuse)


def test_second_load_reads_the_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _names(lark_cache.load_lark(GRAMMAR, **OPTIONS)) == ["ab", "cd"]
    [entry] = cache.iterdir()
    assert entry == lark_cache.cache_path(GRAMMAR, OPTIONS)
    if hasattr(os, "getuid"):
        assert cache.stat().st_mode & 0o077 == 0
    _forbid_building(monkeypatch)
    assert _names(lark_cache.load_lark(GRAMMAR, **OPTIONS)) == ["ab", "cd"]


def test_key_depends_on_grammar_and_options(cache: Path) -> None:
    key = lark_cache.cache_path(GRAMMAR, OPTIONS)
    assert key is not None and key.parent == cache
    assert lark_cache.cache_path(GRAMMAR + "\n", OPTIONS) != key
    assert lark_cache.cache_path(GRAMMAR, {**OPTIONS, "lexer": "basic"}) != key


def test_corrupt_cache_file_is_rebuilt(cache: Path) -> None:
    path = lark_cache.cache_path(GRAMMAR, OPTIONS)
    assert path is not None
    cache.mkdir(mode=0o700)
    path.write_bytes(b"not a pickle at all")
    assert _names(lark_cache.load_lark(GRAMMAR, **OPTIONS)) == ["ab", "cd"]
    assert path.read_bytes() != b"not a pickle at all"  # replaced by a valid entry


def test_unusable_directory_falls_back_silently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("RPCNET_CACHE_DIR", str(blocker / "cache"))
    assert _names(lark_cache.load_lark(GRAMMAR, **OPTIONS)) == ["ab", "cd"]
    assert capsys.readouterr() == ("", "")


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_shared_directory_is_not_trusted(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache.mkdir()
    cache.chmod(0o777)
    assert _names(lark_cache.load_lark(GRAMMAR, **OPTIONS)) == ["ab", "cd"]
    assert list(cache.iterdir()) == []


def test_empty_setting_turns_the_cache_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPCNET_CACHE_DIR", "")
    assert lark_cache.cache_dir() is None
    assert lark_cache.cache_path(GRAMMAR, OPTIONS) is None


def test_default_directory_is_per_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RPCNET_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert lark_cache.cache_dir() == tmp_path / "rpcnet"


def test_parser_spans_with_keywords_kept() -> None:
    schema = parse(
        "package p;\n@deprecated message M {\n  list<int64> a = 1; reserved 2 to max;\n}\n", "m.rpc"
    )
    [message] = schema.declarations
    assert message.span.line == 2 and message.span.column == 1
    assert (message.span.end_line, message.span.end_column) == (4, 2)
