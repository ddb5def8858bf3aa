"""Errors meant for people: each names the file or subject at fault and what to do."""

from __future__ import annotations


class BrainSegFounderError(Exception):
    """Base class of every error this package raises on purpose.

    Command lines catch it and print its message without a traceback (:func:`brainsegfounder.utils.cli.command`).
    """


class ConfigError(BrainSegFounderError):
    """A setting is unknown or out of range (names the setting and what it accepts)."""


class DataError(BrainSegFounderError):
    """Input data is missing, unreadable or inconsistent (names the subject and file)."""


class WeightsError(BrainSegFounderError):
    """A weights file cannot be read or does not fit the network."""
