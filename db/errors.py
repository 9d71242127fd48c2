"""Errors of the persistence layer that a person can act on."""


class DatabaseSetupError(Exception):
    """The database cannot be used as configured; the message says what to do."""
