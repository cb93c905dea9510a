"""Per-invocation state: settings are loaded and the keyring built only when a command needs them."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from fieldcrypt import config
from fieldcrypt.cli.output import Output
from fieldcrypt.keyring import Keyring


class State:
    def __init__(self, config_path: str | None, flags: dict[str, Any], out: Output) -> None:
        self.config_path = config_path
        self.flags = flags
        self.out = out

    @cached_property
    def settings(self) -> config.Settings:
        return config.load(self.config_path, **self.flags)

    @cached_property
    def keyring(self) -> Keyring:
        """The configured keyring; with ``--tenant``, that tenant's keyring of the TenantKeyrings
        named by ``--keyring`` (the application supplies its master key: none is configured here)."""
        if self.settings.tenant:
            return config.tenant_keyring(self.settings)
        return config.build_keyring(self.settings)

    @property
    def engine(self) -> Any:
        return config.database_engine(self.settings)
