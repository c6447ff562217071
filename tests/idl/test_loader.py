"""The loader: files on disk, include directories, import errors and the Program API."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpcnet_idl import ast
from rpcnet_idl.diagnostics import IdlError, Severity
from rpcnet_idl.loader import Program, load, load_checked, load_text

COMMON = "package acme.common.v1;\nmessage Money { int64 units = 1; }\n"


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _uses(imp: str, body: str = "acme.common.v1.Money cost = 1;") -> str:
    return f'package acme.orders.v1;\nimport "{imp}";\nmessage Order {{\n  {body}\n}}\n'


def test_imports_resolve_relative_to_the_importing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, {"api/orders.rpc": _uses("common.rpc"), "api/common.rpc": COMMON})
    monkeypatch.chdir(tmp_path)
    result = load(["api/orders.rpc"])
    assert result.ok, result.diagnostics
    program = result.program
    assert [s.path for s in program.roots] == ["api/orders.rpc"]
    assert sorted(s.path for s in program.schemas.values()) == ["api/common.rpc", "api/orders.rpc"]
    assert set(program.schemas) == {
        str((tmp_path / "api/orders.rpc").resolve()),
        str((tmp_path / "api/common.rpc").resolve()),
    }
    order = program.roots[0]
    assert program.key_of(order) == str((tmp_path / "api/orders.rpc").resolve())
    assert [s.package for s in program.imports_of(order)] == ["acme.common.v1"]
    assert "acme.common.v1.Money" in program.symbols
    assert program.symbols["acme.orders.v1.Order"].schema is order


def test_include_directories_are_searched_in_order_after_the_file_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = COMMON.replace("Money", "Cash")
    _write(
        tmp_path,
        {
            "src/orders.rpc": _uses("lib/common.rpc"),
            "first/lib/common.rpc": COMMON,
            "second/lib/common.rpc": other,
        },
    )
    monkeypatch.chdir(tmp_path)
    result = load(["src/orders.rpc"], include_dirs=["first", "second"])
    assert result.ok, result.diagnostics
    assert sorted(s.path for s in result.program.schemas.values()) == [
        "first/lib/common.rpc",
        "src/orders.rpc",
    ]
    # A file beside the importer wins over every include directory.
    _write(tmp_path, {"src/lib/common.rpc": other})
    shadowed = load(["src/orders.rpc"], include_dirs=["first"])
    assert [d.code for d in shadowed.diagnostics] == ["unknown-type"]


def test_missing_import_names_the_directories_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, {"src/orders.rpc": _uses("nope.rpc")})
    monkeypatch.chdir(tmp_path)
    result = load(["src/orders.rpc"], include_dirs=["inc", Path("vendor")])
    missing = [d for d in result.diagnostics if d.code == "missing-import"]
    assert len(missing) == 1
    assert missing[0].location == "src/orders.rpc:2:1"
    assert missing[0].hint == "searched src, inc, vendor"
    assert not result.ok


def test_a_file_reached_twice_is_loaded_once(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "top.rpc": 'package t.v1;\nimport "left.rpc";\nimport "right.rpc";\n',
            "left.rpc": 'package l.v1;\nimport "common.rpc";\n',
            "right.rpc": 'package r.v1;\nimport "./common.rpc";\n',
            "common.rpc": COMMON,
        },
    )
    result = load([tmp_path / "top.rpc", tmp_path / "common.rpc", tmp_path / "top.rpc"])
    assert result.ok, result.diagnostics
    assert len(result.program.schemas) == 4
    assert [s.package for s in result.program.roots] == ["t.v1", "acme.common.v1"]
    left = result.program.imports_of(result.program.roots[0])[0]
    right = result.program.imports_of(result.program.roots[0])[1]
    assert result.program.imports_of(left)[0] is result.program.imports_of(right)[0]


def test_a_missing_root_file_is_a_diagnostic_not_an_exception(tmp_path: Path) -> None:
    result = load([tmp_path / "absent.rpc"])
    assert [d.code for d in result.diagnostics] == ["missing-file"]
    assert result.program.roots == []
    assert not result.ok


def test_a_syntax_error_in_an_import_is_reported_in_that_file(tmp_path: Path) -> None:
    _write(tmp_path, {"a.rpc": _uses("broken.rpc"), "broken.rpc": "package b.v1;\nmessage {\n"})
    result = load([tmp_path / "a.rpc"])
    codes = [(Path(d.path).name, d.code) for d in result.diagnostics]
    assert codes == [("a.rpc", "unknown-type"), ("broken.rpc", "syntax")]
    assert len(result.program.schemas) == 1


def test_diagnostics_come_in_file_then_line_order() -> None:
    files = {"z.rpc": "package z.v1;\nmessage Z {\n  Nope a = 1;\n  Nada b = 2;\n}\n"}
    text = 'package a.v1;\nimport "z.rpc";\nmessage A {\n  Gone b = 2;\n  Lost a = 1;\n}\n'
    result = load_text(text, "a.rpc", files)
    assert [(d.path, d.span.line) for d in result.diagnostics] == [
        ("a.rpc", 4),
        ("a.rpc", 5),
        ("z.rpc", 3),
        ("z.rpc", 4),
    ]


def test_load_checked_raises_every_error_and_returns_the_program_when_clean(
    tmp_path: Path,
) -> None:
    _write(tmp_path, {"bad.rpc": "package b.v1;\nmessage M {\n  X a = 0;\n}\n", "ok.rpc": COMMON})
    with pytest.raises(IdlError) as raised:
        load_checked([tmp_path / "bad.rpc"])
    assert [d.code for d in raised.value.diagnostics] == ["unknown-type", "field-number-range"]
    assert all(d.severity is Severity.ERROR for d in raised.value.diagnostics)
    assert "bad.rpc:3:3" in str(raised.value)
    program = load_checked([tmp_path / "ok.rpc"])
    assert isinstance(program, Program)
    assert list(program.symbols) == ["acme.common.v1.Money"]


def test_load_text_resolves_in_memory_imports_in_subdirectories() -> None:
    files = {"proto/lib/common.rpc": COMMON}
    result = load_text(_uses("lib/common.rpc"), "proto/orders.rpc", files)
    assert result.ok, result.diagnostics
    order = result.program.roots[0]
    money = result.program.imports_of(order)[0]
    assert money.path == "proto/lib/common.rpc"
    field = order.declarations[0]
    assert isinstance(field, ast.Message)
    ref = field.fields[0].type
    assert isinstance(ref, ast.NamedType)
    symbol = result.program.resolve(order, ref)
    assert symbol is not None and symbol.fqn == "acme.common.v1.Money"
    assert symbol.schema is money


def test_imports_are_not_transitive() -> None:
    files = {"mid.rpc": 'package m.v1;\nimport "common.rpc";\n', "common.rpc": COMMON}
    result = load_text(_uses("mid.rpc"), "o.rpc", files)
    assert [d.code for d in result.diagnostics] == ["unknown-type"]
    order = result.program.roots[0]
    assert [s.path for s in result.program.imports_of(order)] == ["mid.rpc"]


def test_unreadable_files_are_diagnostics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "latin1.rpc").write_bytes(b"package p.v1;\n// caf\xe9\n")
    _write(tmp_path, {"a.rpc": _uses("latin1.rpc", "int32 x = 1;")})
    monkeypatch.chdir(tmp_path)
    root = load(["latin1.rpc"])
    assert [(d.code, d.message) for d in root.diagnostics] == [
        ("missing-file", "cannot read 'latin1.rpc': not UTF-8 text (line 2)")
    ]
    imported = load(["a.rpc"])
    assert [(d.code, d.location, d.message) for d in imported.diagnostics] == [
        (
            "missing-import",
            "a.rpc:2:1",
            "cannot read imported file 'latin1.rpc': not UTF-8 text (line 2)",
        )
    ]
    directory = load(["."])
    assert [d.message for d in directory.diagnostics] == ["cannot find '.'"]


def test_load_text_searches_in_memory_include_directories() -> None:
    files = {"vendor/acme/common.rpc": COMMON}
    found = load_text(_uses("acme/common.rpc"), "api/o.rpc", files, include_dirs=["vendor"])
    assert found.ok, found.diagnostics
    assert [s.path for s in found.program.schemas.values()] == [
        "api/o.rpc",
        "vendor/acme/common.rpc",
    ]
    missing = load_text(_uses("acme/common.rpc"), "api/o.rpc", files)
    assert [d.code for d in missing.diagnostics] == ["missing-import", "unknown-type"]
