"""Errors a person can act on: each names the input or setting at fault and the fix."""

from __future__ import annotations


class TwinError(Exception):
    """Base class for every error the platform raises on purpose."""


class ConfigError(TwinError):
    """A setting is wrong. The message names the setting, what is wrong and how to fix it."""

    def __init__(self, setting: str, problem: str, fix: str) -> None:
        self.setting = setting
        self.problem = problem
        self.fix = fix
        super().__init__(f"{setting}: {problem}. Fix: {fix}")


class StoreError(TwinError):
    """The database could not be reached, started or migrated."""


class MigrationError(StoreError):
    """A schema file failed; the schema is left as it was before that file."""


class ModelError(TwinError):
    """A model could not be resolved, converted or loaded."""
