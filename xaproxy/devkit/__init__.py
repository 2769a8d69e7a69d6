"""Development and test tooling: local MariaDB shards, proxy processes, the demo.

Kept apart from the proxy proper (protocol, session, routing, execution,
transactions, recovery, config, server), which never imports it: devkit needs
PyMySQL and a local ``mariadbd``, the proxy needs neither. ``xaproxy demo``
imports it only when the command runs.
"""
