"""Subcommands of `fleetdesk`; each module has `register(subparsers)`."""
