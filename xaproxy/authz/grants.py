"""A user's grants as the allowlist reads them: plain data built once at login."""

from __future__ import annotations

from dataclasses import dataclass

from ..config.model import Config, UserConfig


@dataclass(frozen=True, slots=True)
class UserGrants:
    """What one proxy user may do (users[] of the config), and how errors name it."""

    user: str
    host: str
    schemas: frozenset[str]  # lower-case databases it may use: logical schemas, granted system ones
    read_only: bool = False
    ddl: bool = False
    admin: bool = False
    # every logical schema of the config (lower case): a database outside these, the server's
    # and the bookkeeping one is unknown (1049), as the proxy shows no other
    known: frozenset[str] = frozenset()

    @property
    def account(self) -> str:
        """`'user'@'host'`, as MariaDB's access errors name an account."""
        return f"'{self.user}'@'{self.host}'"


def grants_for(account: UserConfig, config: Config, host: str) -> UserGrants:
    """The grants of a logged-in user: its `schemas` list, or every logical schema."""
    schemas = account.schemas if account.schemas is not None else frozenset(config.schemas)
    return UserGrants(
        user=account.user,
        host=host,
        schemas=frozenset(schemas),
        read_only=account.read_only,
        ddl=account.ddl,
        admin=account.admin,
        known=frozenset(config.schemas),
    )
