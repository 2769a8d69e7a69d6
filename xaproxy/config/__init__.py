"""Proxy configuration: the YAML file's shape, its validation, and the resulting values.

Other packages import from here rather than from the modules, so the split
between ``model`` (the values) and ``loader`` (reading and checking) can change.
"""

from xaproxy.config.loader import ConfigError, check_config, load_config, parse_config
from xaproxy.config.model import (
    ALGORITHMS,
    AUTH_PLUGINS,
    TRANSACTION_MODES,
    Config,
    RangeBound,
    SchemaConfig,
    ShardConfig,
    ShardTls,
    TableConfig,
    TlsConfig,
    TransactionsConfig,
    UserConfig,
)

__all__ = [
    "ALGORITHMS",
    "AUTH_PLUGINS",
    "TRANSACTION_MODES",
    "Config",
    "ConfigError",
    "RangeBound",
    "SchemaConfig",
    "ShardConfig",
    "ShardTls",
    "TableConfig",
    "TlsConfig",
    "TransactionsConfig",
    "UserConfig",
    "check_config",
    "load_config",
    "parse_config",
]
