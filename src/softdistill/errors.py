"""The package's error types that every layer may raise (imports nothing of the package)."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A configuration value, file or command line is invalid (a usage error, exit code 2)."""
