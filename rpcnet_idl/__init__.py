"""rpcnet's IDL toolkit: the `.rpc` parser, checker, code generator and schema checks."""

__version__ = "0.1.0"  # before the imports: submodules read it

from .diagnostics import Diagnostic, IdlError, Severity
from .loader import LoadResult, Program, load, load_checked, load_text
from .parser import parse

__all__ = [
    "Diagnostic",
    "IdlError",
    "LoadResult",
    "Program",
    "Severity",
    "__version__",
    "load",
    "load_checked",
    "load_text",
    "parse",
]
