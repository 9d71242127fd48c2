"""Who is acting: a signed-in staff member, an API token's owner, or the command line."""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from db.models import User, UserRole
from services.errors import FleetdeskError

STAFF_ROLES = (UserRole.DESK_AGENT, UserRole.FLEET_MANAGER, UserRole.PRICING_ANALYST, UserRole.ADMIN)
ROLE_LABELS = {UserRole.DESK_AGENT: "Desk agent", UserRole.FLEET_MANAGER: "Fleet manager",
               UserRole.PRICING_ANALYST: "Pricing analyst", UserRole.ADMIN: "Admin", UserRole.CUSTOMER: "Customer"}


class Forbidden(FleetdeskError):
    """The actor's role does not allow this."""


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    label: str  # the email of a person, or e.g. "cli:root"
    role: UserRole
    name: str = ""

    @classmethod
    def of(cls, user: User) -> Actor:
        """The signed-in staff member `user`, as they are in the database now."""
        return cls(user.id, user.email, user.role, user.full_name)

    @classmethod
    def command_line(cls) -> Actor:
        """Whoever runs `fleetdesk` on the server: an operator with admin rights, audited by OS user."""
        try:
            who = getpass.getuser()
        except OSError:
            who = "unknown"
        return cls(user_id=None, label=f"cli:{who}", role=UserRole.ADMIN, name=f"command line ({who})")

    def may(self, *roles: UserRole | str) -> bool:
        return self.role == UserRole.ADMIN or self.role in {UserRole(r) for r in roles}


def require_role(actor: Actor, *roles: UserRole | str, doing: str) -> None:
    """Refuse unless the actor has one of the roles (admin always may)."""
    if not actor.may(*roles):
        allowed = ", ".join(ROLE_LABELS[UserRole(r)].lower() for r in roles)
        raise Forbidden(f"{ROLE_LABELS[actor.role]}s cannot {doing}; it needs the {allowed} role "
                        "(ask an admin).")
