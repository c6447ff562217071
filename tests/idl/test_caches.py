"""The per-user caches (Lark tables, compiled templates): used when valid, rebuilt silently."""

from __future__ import annotations

import os
from pathlib import Path

import jinja2
import jinja2.bccache
import lark
import pytest

from rpcnet_idl import caches
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
    assert _names(caches.load_lark(GRAMMAR, **OPTIONS)) == ["ab", "cd"]
    [entry] = cache.iterdir()
    assert entry == caches.cache_path(GRAMMAR, OPTIONS)
    if hasattr(os, "getuid"):
        assert cache.stat().st_mode & 0o077 == 0
    _forbid_building(monkeypatch)
    assert _names(caches.load_lark(GRAMMAR, **OPTIONS)) == ["ab", "cd"]


def test_key_depends_on_grammar_and_options(cache: Path) -> None:
    key = caches.cache_path(GRAMMAR, OPTIONS)
    assert key is not None and key.parent == cache
    assert caches.cache_path(GRAMMAR + "\n", OPTIONS) != key
    assert caches.cache_path(GRAMMAR, {**OPTIONS, "lexer": "basic"}) != key


def test_corrupt_cache_file_is_rebuilt(cache: Path) -> None:
    path = caches.cache_path(GRAMMAR, OPTIONS)
    assert path is not None
    cache.mkdir(mode=0o700)
    path.write_bytes(b"not a pickle at all")
    assert _names(caches.load_lark(GRAMMAR, **OPTIONS)) == ["ab", "cd"]
    assert path.read_bytes() != b"not a pickle at all"  # replaced by a valid entry


def test_unusable_directory_falls_back_silently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("RPCNET_CACHE_DIR", str(blocker / "cache"))
    assert _names(caches.load_lark(GRAMMAR, **OPTIONS)) == ["ab", "cd"]
    assert capsys.readouterr() == ("", "")


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_shared_directory_is_not_trusted(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache.mkdir()
    cache.chmod(0o777)
    assert _names(caches.load_lark(GRAMMAR, **OPTIONS)) == ["ab", "cd"]
    assert list(cache.iterdir()) == []


def test_empty_setting_turns_the_cache_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPCNET_CACHE_DIR", "")
    assert caches.cache_dir() is None
    assert caches.cache_path(GRAMMAR, OPTIONS) is None


def test_default_directory_is_per_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RPCNET_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert caches.cache_dir() == tmp_path / "rpcnet"


def _environment(settings: str = "s") -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.DictLoader({"t.j2": "{{ x }}!"}),
        bytecode_cache=caches.template_cache(settings),
        autoescape=False,
    )


def test_compiled_templates_are_reused(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _environment().get_template("t.j2").render(x=1) == "1!"
    assert len(list(cache.glob("jinja2-*.cache"))) == 1
    fresh = _environment()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the template was compiled, not loaded")

    monkeypatch.setattr(fresh, "compile", refuse)
    assert fresh.get_template("t.j2").render(x=2) == "2!"


def test_template_cache_keyed_by_settings(cache: Path) -> None:
    _environment("a").get_template("t.j2")
    _environment("b").get_template("t.j2")
    assert len(list(cache.glob("jinja2-*.cache"))) == 2


def test_corrupt_template_cache_is_recompiled(cache: Path) -> None:
    _environment().get_template("t.j2")
    [entry] = cache.glob("jinja2-*.cache")
    magic = len(jinja2.bccache.bc_magic)  # a valid header, then garbage
    entry.write_bytes(entry.read_bytes()[:magic] + b"garbage")
    assert _environment().get_template("t.j2").render(x=3) == "3!"


def test_no_template_cache_when_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPCNET_CACHE_DIR", "")
    assert caches.template_cache("s") is None


def test_parser_spans_with_keywords_kept() -> None:
    schema = parse(
        "package p;\n@deprecated message M {\n  list<int64> a = 1; reserved 2 to max;\n}\n", "m.rpc"
    )
    [message] = schema.declarations
    assert message.span.line == 2 and message.span.column == 1
    assert (message.span.end_line, message.span.end_column) == (4, 2)


def test_rpcnet_parser_same_from_cache_and_fresh(cache: Path) -> None:
    """The real grammar and callbacks: built fresh, saved, then loaded, parse alike."""
    from rpcnet_idl import ast, ast_builder, parser, resources

    grammar = resources.read_text("grammars", "rpcnet.lark")
    text = 'package p.v1;\n@x(1, k = "v") message M { optional string s = 1; }\n'
    built = caches.load_lark(grammar, ast_builder.Builder(), **parser._OPTIONS)
    assert caches.cache_path(grammar, parser._OPTIONS) in list(cache.iterdir())
    loaded = caches.load_lark(grammar, ast_builder.Builder(), **parser._OPTIONS)
    fresh, cached = built.parse(text), loaded.parse(text)
    assert isinstance(fresh, ast_builder.SchemaParts) and isinstance(
        cached, ast_builder.SchemaParts
    )
    assert (fresh.package.name, fresh.package.span) == (cached.package.name, cached.package.span)
    assert fresh.declarations == cached.declarations
    message = cached.declarations[0]
    assert isinstance(message, ast.Message) and message.fields[0].optional
    assert message.annotations[0].named[0][0] == "k"


def _entries(directory: Path, pattern: str) -> set[str]:
    return {p.name for p in directory.glob(pattern)}


def _old_entries(directory: Path, names: list[str]) -> None:
    """Regular files `names` in `directory`, the first written longest ago."""
    directory.mkdir(mode=0o700, exist_ok=True)
    for age, name in enumerate(names):
        (directory / name).write_bytes(b"old")
        stamp = (1_000 + age) * 10**9
        os.utime(directory / name, ns=(stamp, stamp))


def _lark_name(n: int) -> str:
    return f"lark-{n:032x}.pickle"


def test_new_lark_entry_prunes_old_versions(cache: Path) -> None:
    old = [_lark_name(n) for n in range(5)]
    _old_entries(cache, old)
    (cache / "notes.txt").write_text("not ours")
    (cache / "lark-short.pickle").write_text("does not match the pattern")
    caches.load_lark(GRAMMAR, **OPTIONS)
    current = caches.cache_path(GRAMMAR, OPTIONS)
    assert current is not None
    kept = set(old[-(caches.KEEP - 1) :])  # the most recently written other versions
    assert _entries(cache, "lark-*.pickle") == kept | {current.name, "lark-short.pickle"}
    assert (cache / "notes.txt").read_text() == "not ours"


def test_cache_hit_does_not_prune(cache: Path) -> None:
    caches.load_lark(GRAMMAR, **OPTIONS)
    old = [_lark_name(n) for n in range(caches.KEEP + 2)]
    _old_entries(cache, old)
    caches.load_lark(GRAMMAR, **OPTIONS)
    assert _entries(cache, "lark-*.pickle") >= set(old)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="symlinks")
def test_prune_leaves_symlinks_and_directories(cache: Path, tmp_path: Path) -> None:
    _old_entries(cache, [_lark_name(n) for n in range(4)])
    outside = tmp_path / "outside.pickle"
    outside.write_text("keep me")
    (cache / _lark_name(10)).symlink_to(outside)
    (cache / _lark_name(11)).mkdir()
    removed = caches.prune(cache, caches._LARK_ENTRY, f"{3:032x}", keep=1)
    assert removed == 3
    assert _entries(cache, "lark-*") == {_lark_name(3), _lark_name(10), _lark_name(11)}
    assert outside.read_text() == "keep me"


def test_prune_skips_a_file_removed_meanwhile(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _old_entries(cache, [_lark_name(n) for n in range(4)])
    real_unlink = os.unlink
    raced: list[str] = []

    def racing_unlink(name: str, **kwargs: object) -> None:
        if not raced:  # another process removes the first file just before we do
            raced.append(name)
            real_unlink(name, **kwargs)  # type: ignore[arg-type]
        real_unlink(name, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "unlink", racing_unlink)
    monkeypatch.setattr(os, "supports_dir_fd", os.supports_dir_fd | {racing_unlink})
    assert caches.prune(cache, caches._LARK_ENTRY, f"{3:032x}", keep=1) == 2
    assert len(raced) == 1
    assert _entries(cache, "lark-*") == {_lark_name(3)}


def test_prune_without_directory_descriptors(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _old_entries(cache, [_lark_name(n) for n in range(4)])
    monkeypatch.setattr(os, "supports_fd", set())  # as on Windows
    assert caches.prune(cache, caches._LARK_ENTRY, f"{0:032x}", keep=2) == 2
    assert _entries(cache, "lark-*") == {_lark_name(0), _lark_name(3)}


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_prune_refuses_a_shared_directory(cache: Path) -> None:
    _old_entries(cache, [_lark_name(n) for n in range(4)])
    cache.chmod(0o777)
    assert caches.prune(cache, caches._LARK_ENTRY, f"{0:032x}", keep=1) == 0
    assert len(_entries(cache, "lark-*")) == 4


def test_prune_of_a_missing_directory_is_harmless(tmp_path: Path) -> None:
    assert caches.prune(tmp_path / "gone", caches._LARK_ENTRY, "x") == 0


def test_new_template_cache_prunes_other_keys(cache: Path) -> None:
    old = [f"jinja2-{n:016x}-{t:040x}.cache" for n in range(4) for t in range(2)]
    _old_entries(cache, old)
    _environment().get_template("t.j2")
    kept = set(old[-2 * (caches.KEEP - 1) :])  # both files of each newest other key
    [current] = _entries(cache, "jinja2-*.cache") - set(old)
    assert _entries(cache, "jinja2-*.cache") == kept | {current}
