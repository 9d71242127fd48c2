"""Which pages exist, which roles each serves, and the navigation a signed-in person gets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from db.models import UserRole
from services.actors import ROLE_LABELS, Actor

PAGES_DIR = Path(__file__).resolve().parents[1] / "pages"
DESK, FLEET, PRICING, ADMIN = (UserRole.DESK_AGENT, UserRole.FLEET_MANAGER, UserRole.PRICING_ANALYST,
                               UserRole.ADMIN)
ALL_STAFF = (DESK, FLEET, PRICING, ADMIN)


@dataclass(frozen=True)
class PageSpec:
    file: str
    title: str
    icon: str
    url_path: str
    section: str
    roles: tuple[UserRole, ...]  # admin may open every page

    def serves(self, actor: Actor) -> bool:
        return actor.role == ADMIN or actor.role in self.roles


PAGES: tuple[PageSpec, ...] = (
    PageSpec("fleet_map.py", "Fleet map", ":material/map:", "fleet-map", "Fleet", ALL_STAFF),
    PageSpec("branches.py", "Branches", ":material/storefront:", "branches", "Fleet", ALL_STAFF),
    PageSpec("vehicles.py", "Vehicles", ":material/directions_car:", "vehicles", "Fleet", (FLEET,)),
    PageSpec("maintenance.py", "Maintenance", ":material/build:", "maintenance", "Fleet", (FLEET,)),
    PageSpec("rebalancing.py", "Rebalancing", ":material/swap_horiz:", "rebalancing", "Fleet", (FLEET,)),
    PageSpec("transfers.py", "Transfers", ":material/local_shipping:", "transfers", "Fleet", (FLEET,)),
    PageSpec("analytics.py", "Analytics", ":material/monitoring:", "analytics", "Analytics", (FLEET, PRICING)),
    PageSpec("walk_in.py", "Walk-in desk", ":material/point_of_sale:", "walk-in", "Desk", (DESK,)),
    PageSpec("returns.py", "Returns", ":material/assignment_return:", "returns", "Desk", (DESK,)),
    PageSpec("bookings.py", "Bookings", ":material/event_note:", "bookings", "Desk", (DESK,)),
    PageSpec("availability.py", "Availability", ":material/event_available:", "availability", "Desk", ALL_STAFF),
    PageSpec("customers.py", "Customers", ":material/badge:", "customers", "Desk", (DESK,)),
    PageSpec("payments.py", "Payments", ":material/payments:", "payments", "Desk", (DESK,)),
    PageSpec("notifications.py", "Notifications", ":material/mail:", "notifications", "Desk", (DESK,)),
    PageSpec("pricing.py", "Pricing", ":material/sell:", "pricing", "Pricing", (PRICING,)),
    PageSpec("pricing_rules.py", "Pricing rules", ":material/rule:", "pricing-rules", "Pricing", (PRICING,)),
    PageSpec("promotions.py", "Promotions", ":material/loyalty:", "promotions", "Pricing", (PRICING,)),
    PageSpec("staff.py", "Staff and API tokens", ":material/group:", "staff", "Admin", (ADMIN,)),
    PageSpec("audit_log.py", "Audit log", ":material/history:", "audit-log", "Admin", (ADMIN,)),
)


def render_refusal(spec: PageSpec, actor: Actor) -> None:
    allowed = ", ".join(ROLE_LABELS[r].lower() + "s" for r in spec.roles if r != ADMIN) or "admins"
    st.title(spec.title)
    st.error(f"**{spec.title}** is for {allowed}. You are signed in as {actor.label} "
             f"({ROLE_LABELS[actor.role].lower()}); ask an admin if you need access.", icon=":material/block:")


def spec_for(page: st.Page) -> PageSpec | None:
    return next((spec for spec in PAGES if spec.url_path == page.url_path), None)


def pages_for(actor: Actor) -> dict[str, list[st.Page]]:
    """Sections of every page; those the actor may not open are hidden (and refused by the router)."""
    sections: dict[str, list[st.Page]] = {}
    default_set = False
    for spec in PAGES:
        served = spec.serves(actor)
        page = st.Page(PAGES_DIR / spec.file, title=spec.title, icon=spec.icon, url_path=spec.url_path,
                       default=served and not default_set, visibility="visible" if served else "hidden")
        default_set = default_set or served
        sections.setdefault(spec.section, []).append(page)
    return sections


def sign_in_pages() -> list[st.Page]:
    """The sign-in screen, also under every page's address so a deep link survives signing in."""
    from app.ui.sign_in import render_sign_in

    pages = [st.Page(render_sign_in, title="Sign in", url_path="sign-in", default=True)]
    pages += [st.Page(render_sign_in, title="Sign in", url_path=spec.url_path, visibility="hidden")
              for spec in PAGES]
    return pages
