"""Notifications to customers: composed from domain events, rendered from templates, sent at most once per channel.

compose: which messages an event means; rendering: Jinja2 templates per medium and language; channels: SMTP,
SendGrid, Twilio and the development mailbox; delivery: claiming and sending; records: what the staff see.
"""
