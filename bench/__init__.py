"""Benchmarks of xaproxy against direct MariaDB, haproxy and hand-written XA.

Run from the repository root with the project's Python: ``python -m bench``
(``--help`` for the options; ``bench/README.md`` for what is measured).
"""
