"""What a client's statement is: tokenized once, classified, split, templated.

The bottom layer of the proxy's SQL handling: it imports only sqlglot, the stdlib
and xaproxy.errors, so routing, session and execution can all use it.
"""

from .split import split_statements
from .statement import Kind, Statement, analyze

__all__ = ["Kind", "Statement", "analyze", "split_statements"]
