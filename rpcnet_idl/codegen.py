"""The code generator: a checked `Program` in, ``{relative path: Python source}`` out.

Pipeline: `model.build_modules` (escaped names and code fragments) -> Jinja2 templates (strict
undefined) -> `black.format_str` in-process. Nothing here reads or writes files other than the
templates; `cli` does the disk work.
"""

from __future__ import annotations

import functools

import black
import jinja2

from . import __version__
from .loader import Program
from .model import MethodModel, ModuleModel, build_modules
from .resources import template_dir

__all__ = ["BLACK_MODE", "format_source", "generate", "render_module"]

#: How generated code is formatted: black's defaults, 100 columns like the project.
BLACK_MODE = black.Mode(line_length=100)


def _pystr(value: str) -> str:
    """A Python string literal of `value` (double-quoted, as black writes them)."""
    text = repr(value)
    if text.startswith("'") and '"' not in value:
        text = '"' + text[1:-1].replace("\\'", "'") + '"'
    return text


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


def _method_doc(method: MethodModel) -> str:
    doc = method.doc or f"Call `{method.path}`."
    if method.deprecated is not None:
        doc += f"\n\n.. deprecated:: {method.deprecated}"
    return doc


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["pystr"] = _pystr
    env.filters["docstring"] = _docstring
    env.filters["method_doc"] = _method_doc
    return env


def format_source(source: str) -> str:
    """`source` formatted by black, in-process."""
    return black.format_str(source, mode=BLACK_MODE)


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
