"""The code generator: a checked `Program` in, ``{relative path: Python source}`` out.

Pipeline: `model.build_modules` (escaped names and code fragments) -> Jinja2 templates (strict
undefined) -> `black.format_str` in-process. Nothing here reads or writes files other than the
templates; `cli` does the disk work. The conventions of the generated code (defaults, enums,
unions, escaping) and the measurements behind its shape are in ``docs/perf/codegen.md``.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jinja2

from . import __version__
from .caches import template_cache
from .loader import Program
from .model import MethodModel, ModuleModel, build_modules
from .resources import template_dir
from .wirecode import pystr

__all__ = ["LINE_LENGTH", "black_mode", "format_source", "generate", "render_module"]

LINE_LENGTH = 100
"""Generated code is formatted by black with its defaults but 100 columns, like the project."""


@functools.cache
def black_mode() -> Any:
    """The `black.Mode` of generated code (black is imported only when it has work to do)."""
    import black

    return black.Mode(line_length=LINE_LENGTH)


def _black(source: str) -> str:
    import black

    text: str = black.format_str(source, mode=black_mode())
    return text


def _pytuple(items: list[str] | tuple[str, ...]) -> str:
    """A tuple display of the expressions `items`, as black writes it."""
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def _docstring(text: str, indent: int) -> str:
    """`text` as a docstring literal whose continuation lines are indented by `indent`."""
    body = text.strip().replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if body.endswith('"'):
        body = body[:-1] + '\\"'
    lines = [line.rstrip() for line in body.splitlines()] or [""]
    if len(lines) == 1:
        return f'"""{lines[0]}"""'
    pad = " " * indent
    rest = "\n".join(pad + line if line else "" for line in lines[1:])
    return f'"""{lines[0]}\n{rest}\n{pad}"""'


def _def_line(head: str, params: list[str], ret: str, indent: int) -> str:
    """A ``def`` line split the way black splits it when it is too long (continuation lines
    indented for a body at `indent`); what black would split further is left long for it."""
    limit = LINE_LENGTH
    pad, inner = " " * indent, " " * (indent + 4)
    one = f"{head}({', '.join(params)}) -> {ret}:"
    if indent + len(one) <= limit:
        return one
    closing = f") -> {ret}:"
    hugged = ", ".join(params)
    if len(inner) + len(hugged) <= limit and indent + len(closing) <= limit:
        return f"{head}(\n{inner}{hugged}\n{pad}{closing}"
    if all(len(inner) + len(p) + 1 <= limit for p in params) and indent + len(closing) <= limit:
        body = "".join(f"{inner}{p},\n" for p in params)
        return f"{head}(\n{body}{pad}{closing}"
    return one


def _call_line(head: str, args: list[str], indent: int) -> str:
    """A call statement split the way black splits it when it is too long."""
    limit = LINE_LENGTH
    one = f"{head}({', '.join(args)})"
    if indent + len(one) <= limit:
        return one
    hugged = ", ".join(args)
    if indent + 4 + len(hugged) <= limit:
        return f"{head}(\n{' ' * (indent + 4)}{hugged}\n{' ' * indent})"
    return one


def _method_doc(method: MethodModel) -> str:
    doc = method.doc or f"Call `{method.path}`."
    if method.deprecated is not None:
        doc += f"\n\n.. deprecated:: {method.deprecated}"
    return doc


_ENV_OPTIONS: dict[str, Any] = {
    "undefined": jinja2.StrictUndefined,
    "trim_blocks": True,
    "lstrip_blocks": True,
    "keep_trailing_newline": True,
    "autoescape": False,
    "auto_reload": False,  # the templates do not change during a run: no stat per include
}


@functools.cache
def _environment() -> jinja2.Environment:
    """The one Jinja2 environment; compiled templates are cached per user (`caches`)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        # Jinja2 keys an entry by the template's path too: one cache version per install.
        bytecode_cache=template_cache(f"{template_dir()}\0{sorted(_ENV_OPTIONS.items())!r}"),
        **_ENV_OPTIONS,
    )
    env.filters["pystr"] = pystr
    env.filters["pytuple"] = _pytuple
    env.filters["docstring"] = _docstring
    env.filters["method_doc"] = _method_doc
    env.globals["def_line"] = _def_line
    env.globals["call_line"] = _call_line
    return env


def format_source(source: str, *, full: bool = False) -> str:
    """`source` as black formats it, in-process.

    The templates already write black's style, so black only runs on the top-level blocks
    (separated by two blank lines) that have a line over the limit, where it has real work to
    do; black costs about a millisecond per line, which made it nearly all of rpcnet-gen's time
    (docs/perf/codegen.md). `full` (or ``RPCNET_GEN_FULL_BLACK=1``) formats the whole module.
    The test suite checks that black leaves every generated module unchanged.
    """
    if full or os.environ.get("RPCNET_GEN_FULL_BLACK") == "1":
        return _black(source)
    limit = LINE_LENGTH
    blocks = source.rstrip("\n").split("\n\n\n")
    out = [
        _black(block).rstrip("\n")
        if any(len(line) > limit for line in block.split("\n"))
        else block
        for block in blocks
    ]
    return "\n\n\n".join(out) + "\n"


def render_module(model: ModuleModel, *, fmt: bool = True) -> str:
    """The Python source of one module, black-formatted unless `fmt` is False."""
    template = _environment().get_template("module.py.j2")
    source: str = template.render(m=model, version=__version__)
    return format_source(source) if fmt else source


def _render_init(models: list[ModuleModel], *, fmt: bool = True) -> str:
    template = _environment().get_template("init.py.j2")
    source: str = template.render(modules=models, version=__version__)
    return format_source(source) if fmt else source


def generate(program: Program, *, fmt: bool = True) -> dict[str, str]:
    """Every generated file of `program`, keyed by path relative to the output directory.

    Raises `diagnostics.IdlError` for problems only generation can see (two schemas with one
    module name, colliding Python names).
    """
    models = build_modules(program)
    files = {f"{m.module}.py": render_module(m, fmt=fmt) for m in models}
    files["__init__.py"] = _render_init(models, fmt=fmt)
    return dict(sorted(files.items()))
