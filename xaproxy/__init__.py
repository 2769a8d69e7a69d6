"""xaproxy: a MySQL-protocol sharding proxy with transparent cross-shard atomicity."""

__version__ = "0.1.0"
