"""Where messages go: SMTP, SendGrid and Twilio over their real protocols, or the development mailbox (a table).

Every channel has the same shape: `send(message, receipt)` delivers one message and calls `receipt.confirm(id)` at
its point of no return, which records the message as sent. A channel raises TemporaryFailure for what may work
later (server down, rate limit) and PermanentFailure for what never will (address refused, bad credentials).

`retry_in_doubt` says whether a send cut off by a crash before `confirm` can safely be tried again: true for the
mailbox (one transaction) and SMTP (the final "." that makes the server accept the message is only sent after the
confirmation is committed), false for the HTTP APIs, where a request that got no answer may still have been sent.
"""

from __future__ import annotations

import os
import re
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import make_msgid
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
from sqlalchemy.orm import Session

from db.models import DevMailboxMessage

DEFAULT_SENDER = "Fleetdesk <bookings@fleetdesk.demo>"
HTTP_TIMEOUT_S = 10.0


class DeliveryFailed(Exception):
    """The message did not go out; the text says why."""


class TemporaryFailure(DeliveryFailed):
    """Worth trying again later."""


class PermanentFailure(DeliveryFailed):
    """Will not work however often it is tried."""


@dataclass(frozen=True)
class Outgoing:
    notification_id: int
    idempotency_key: str
    medium: str  # "email" | "sms"
    recipient: str
    subject: str | None
    body: str


class Receipt(Protocol):
    session: Session

    def confirm(self, provider_id: str) -> None: ...


class Channel(Protocol):
    name: str
    medium: str
    retry_in_doubt: bool

    def send(self, message: Outgoing, receipt: Receipt) -> None: ...


class MailboxChannel:
    """The development mailbox: the message is stored in the same transaction that marks it sent."""

    retry_in_doubt = True

    def __init__(self, medium: str) -> None:
        self.medium = medium
        self.name = f"mailbox_{medium}"

    def send(self, message: Outgoing, receipt: Receipt) -> None:
        row = DevMailboxMessage(notification_id=message.notification_id, medium=self.medium,
                                recipient=message.recipient, subject=message.subject, body=message.body)
        receipt.session.add(row)
        receipt.session.flush()
        receipt.confirm(f"mailbox:{row.id}")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    tls: str  # "none" | "starttls" | "ssl"
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> SmtpSettings:
        """smtp://[user:password@]host[:port][?starttls=true] or smtps://… (TLS from the start)."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://user:password@host:587?starttls=true or smtps://host")
        query = parse_qs(parts.query)
        starttls = query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes")
        tls = "ssl" if parts.scheme == "smtps" else ("starttls" if starttls else "none")
        return cls(host=parts.hostname, port=parts.port or (465 if tls == "ssl" else 25), tls=tls,
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None)


class SmtpChannel:
    """E-mail over SMTP (stdlib smtplib), with the server's acceptance held back until the send is recorded."""

    name = "smtp"
    medium = "email"
    retry_in_doubt = True

    def __init__(self, settings: SmtpSettings, sender: str = DEFAULT_SENDER, timeout_s: float = 10.0) -> None:
        self.settings, self.sender, self.timeout_s = settings, sender, timeout_s

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.tls == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=self.timeout_s,
                                                  context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=self.timeout_s)
        smtp.ehlo()
        if s.tls == "starttls":
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if s.username:
            smtp.login(s.username, s.password or "")
        return smtp

    def _email(self, message: Outgoing, message_id: str) -> bytes:
        mail = EmailMessage(policy=SMTP_POLICY)
        mail["From"], mail["To"] = self.sender, message.recipient
        mail["Subject"] = message.subject or ""
        mail["Message-ID"] = message_id
        mail["X-Fleetdesk-Key"] = message.idempotency_key
        mail.set_content(message.body)
        return mail.as_bytes()

    def send(self, message: Outgoing, receipt: Receipt) -> None:
        message_id = make_msgid(idstring=f"n{message.notification_id}", domain="fleetdesk")
        data = self._email(message, message_id)
        try:
            smtp = self._connect()
        except (OSError, smtplib.SMTPException) as error:
            raise TemporaryFailure(f"cannot reach the SMTP server {self.settings.host}:{self.settings.port} "
                                   f"({error})") from None
        try:
            _check(*smtp.mail(_address(self.sender)), "MAIL FROM")
            _check(*smtp.rcpt(message.recipient), f"RCPT TO {message.recipient}")
            _check(*smtp.docmd("DATA"), "DATA", expected=354)
            smtp.send(re.sub(rb"(?m)^\.", b"..", data.rstrip(b"\r\n")) + b"\r\n")
            receipt.confirm(message_id)  # recorded as sent before the server may accept it: never twice
            smtp.send(b".\r\n")
            code, reply = smtp.getreply()
            if code != 250:
                raise PermanentFailure(f"the SMTP server refused the message after it was sent: {code} "
                                       f"{reply.decode(errors='replace')}")
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            raise TemporaryFailure(f"the SMTP connection broke ({error})") from None
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()


def _address(sender: str) -> str:
    match = re.search(r"<([^>]+)>", sender)
    return match.group(1) if match else sender


def _check(code: int, reply: bytes, step: str, expected: int | None = None) -> None:
    ok = code == expected if expected else 200 <= code < 300
    if ok:
        return
    text = f"{step}: {code} {reply.decode(errors='replace')}"
    if 400 <= code < 500:
        raise TemporaryFailure(f"the SMTP server asks to try later ({text})")
    raise PermanentFailure(f"the SMTP server refused ({text})")


def _http_failure(service: str, response: httpx.Response) -> DeliveryFailed:
    text = f"{service} answered {response.status_code}: {response.text[:300]}"
    if response.status_code == 429 or response.status_code >= 500:
        return TemporaryFailure(text)
    return PermanentFailure(text)


class SendGridChannel:
    """E-mail through SendGrid's v3 Mail Send API (POST /v3/mail/send, 202 Accepted with X-Message-Id)."""

    name = "sendgrid"
    medium = "email"
    retry_in_doubt = False

    def __init__(self, api_key: str, base_url: str = "https://api.sendgrid.com",
                 sender: str = DEFAULT_SENDER) -> None:
        self.api_key, self.base_url, self.sender = api_key, base_url.rstrip("/"), sender

    def send(self, message: Outgoing, receipt: Receipt) -> None:
        name_match = re.match(r"\s*([^<]+?)\s*<", self.sender)
        sender = {"email": _address(self.sender)} | ({"name": name_match.group(1)} if name_match else {})
        body = {
            "personalizations": [{"to": [{"email": message.recipient}]}],
            "from": sender,
            "subject": message.subject or "",
            "content": [{"type": "text/plain", "value": message.body}],
            "custom_args": {"fleetdesk_key": message.idempotency_key},
        }
        try:
            response = httpx.post(f"{self.base_url}/v3/mail/send", json=body, timeout=HTTP_TIMEOUT_S,
                                  headers={"Authorization": f"Bearer {self.api_key}"})
        except httpx.HTTPError as error:
            raise TemporaryFailure(f"cannot reach SendGrid at {self.base_url} ({error})") from None
        if response.status_code != 202:
            raise _http_failure("SendGrid", response)
        receipt.confirm(response.headers.get("X-Message-Id") or f"sendgrid:{message.idempotency_key}")


class TwilioChannel:
    """SMS through Twilio's Messages API (POST /2010-04-01/Accounts/{sid}/Messages.json, 201 with the sid)."""

    name = "twilio"
    medium = "sms"
    retry_in_doubt = False

    def __init__(self, account_sid: str, auth_token: str, from_number: str,
                 base_url: str = "https://api.twilio.com") -> None:
        self.account_sid, self.auth_token = account_sid, auth_token
        self.from_number, self.base_url = from_number, base_url.rstrip("/")

    def send(self, message: Outgoing, receipt: Receipt) -> None:
        url = f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        try:
            response = httpx.post(url, data={"To": message.recipient, "From": self.from_number,
                                             "Body": message.body},
                                  auth=(self.account_sid, self.auth_token), timeout=HTTP_TIMEOUT_S)
        except httpx.HTTPError as error:
            raise TemporaryFailure(f"cannot reach Twilio at {self.base_url} ({error})") from None
        if response.status_code not in (200, 201):
            raise _http_failure("Twilio", response)
        try:
            sid = response.json()["sid"]
        except (ValueError, KeyError):
            sid = f"twilio:{message.idempotency_key}"
        receipt.confirm(str(sid))


@dataclass(frozen=True)
class Channels:
    """The configured e-mail and SMS channels (None: that medium is off)."""

    email: Channel | None
    sms: Channel | None

    def for_medium(self, medium: str) -> Channel | None:
        return self.email if medium == "email" else self.sms

    def by_name(self, name: str) -> Channel | None:
        return next((c for c in (self.email, self.sms) if c is not None and c.name == name), None)

    @classmethod
    def from_env(cls) -> Channels:
        """FLEETDESK_EMAIL_CHANNEL (smtp|sendgrid|mailbox|off) and FLEETDESK_SMS_CHANNEL (twilio|mailbox|off).

        Unset: SMTP when SMTP_URL is set, else SendGrid when SENDGRID_API_KEY is, else the development mailbox;
        Twilio when TWILIO_ACCOUNT_SID is set, else the mailbox.
        """
        env = os.environ
        sender = env.get("FLEETDESK_MAIL_FROM", DEFAULT_SENDER)
        email_choice = env.get("FLEETDESK_EMAIL_CHANNEL") or (
            "smtp" if env.get("SMTP_URL") else "sendgrid" if env.get("SENDGRID_API_KEY") else "mailbox")
        sms_choice = env.get("FLEETDESK_SMS_CHANNEL") or ("twilio" if env.get("TWILIO_ACCOUNT_SID") else "mailbox")
        email: Channel | None
        if email_choice == "smtp":
            email = SmtpChannel(SmtpSettings.from_url(_required("SMTP_URL")), sender)
        elif email_choice == "sendgrid":
            email = SendGridChannel(_required("SENDGRID_API_KEY"),
                                    env.get("SENDGRID_API_BASE", "https://api.sendgrid.com"), sender)
        elif email_choice == "mailbox":
            email = MailboxChannel("email")
        elif email_choice == "off":
            email = None
        else:
            raise ValueError(f"FLEETDESK_EMAIL_CHANNEL must be smtp, sendgrid, mailbox or off, not {email_choice!r}")
        sms: Channel | None
        if sms_choice == "twilio":
            sms = TwilioChannel(_required("TWILIO_ACCOUNT_SID"), _required("TWILIO_AUTH_TOKEN"),
                                _required("TWILIO_FROM_NUMBER"), env.get("TWILIO_API_BASE", "https://api.twilio.com"))
        elif sms_choice == "mailbox":
            sms = MailboxChannel("sms")
        elif sms_choice == "off":
            sms = None
        else:
            raise ValueError(f"FLEETDESK_SMS_CHANNEL must be twilio, mailbox or off, not {sms_choice!r}")
        return cls(email, sms)


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ValueError(f"{name} is not set; set it, or choose another channel")
    return value
