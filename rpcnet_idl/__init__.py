"""rpcnet's IDL toolkit: the `.rpc` parser, checker, code generator and schema checks."""

__version__ = "0.1.0"
