"""Messages from Jinja2 templates, one file per medium, language and kind (templates/<medium>/<language>/<kind>.j2).

FLEETDESK_TEMPLATES_DIR may name a folder of the same shape whose files take precedence (a company's own wording).
Templates are strict: a missing value is an error that parks the event, never a message with a hole in it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
)

BUILT_IN = Path(__file__).resolve().parent / "templates"
_LANGUAGE_FOLDER = re.compile(r"[a-z]{2}")  # the shape users.preferred_language allows


class TemplateProblem(Exception):
    """A template is missing or cannot be rendered; the message names which one and why."""


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    body: str


def _folders() -> tuple[Path, ...]:
    """Where templates are looked for, first match first: the company's own (FLEETDESK_TEMPLATES_DIR), ours."""
    override = os.environ.get("FLEETDESK_TEMPLATES_DIR", "")
    return (Path(override), BUILT_IN) if override else (BUILT_IN,)


@cache
def _environment(folders: tuple[Path, ...]) -> Environment:
    return Environment(loader=ChoiceLoader([FileSystemLoader(folder) for folder in folders]),
                       undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, trim_blocks=True)


def environment() -> Environment:
    return _environment(_folders())


def render(medium: str, language: str, kind: str, context: dict[str, Any]) -> Rendered:
    """The message of this kind for one medium ("email": subject and body, "sms": body) and language."""
    name = f"{medium}/{language}/{kind}.j2"
    try:
        template = environment().get_template(name)
        if medium == "email":
            blocks = template.new_context(context)
            subject = "".join(template.blocks["subject"](blocks)).strip()
            body = "".join(template.blocks["body"](blocks)).strip() + "\n"
            return Rendered(subject, body)
        return Rendered(None, template.render(context).strip())
    except TemplateNotFound:
        raise TemplateProblem(f"there is no template {name}; add it, or remove {language!r} from the branch's "
                              "languages") from None
    except KeyError as missing:
        raise TemplateProblem(f"template {name} has no {{% block {missing.args[0]} %}}") from None
    except TemplateError as error:
        raise TemplateProblem(f"template {name} failed: {error}") from None


def has_template(medium: str, language: str, kind: str) -> bool:
    try:
        environment().get_template(f"{medium}/{language}/{kind}.j2")
    except TemplateNotFound:
        return False
    return True


def available_languages() -> list[str]:
    """The languages we can write email in: the language folders of the built-in and the company's own templates."""
    roots = [folder / "email" for folder in _folders()]
    return sorted({language.name for root in roots if root.is_dir() for language in root.iterdir()
                   if language.is_dir() and _LANGUAGE_FOLDER.fullmatch(language.name)})
