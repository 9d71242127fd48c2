"""Persistence: models, sessions, read queries and migrations."""
