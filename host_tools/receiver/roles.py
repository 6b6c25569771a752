"""Who may do what at the centre: the roles, their rights, the acting person.

    actor = Actor("alice", "operator")
    require(actor, LIVE_ALERTS)          # Forbidden unless the role has that right

Roles (docs/operator-guide.md):
- operator:   the live queue, an open alert's location and audio, acknowledge, device commands;
- supervisor: what an operator may, plus closed alerts, close, export, statistics;
- auditor:    the audit log, the access ledger, purge and holds; no audio, no live location;
- admin:      devices and operator accounts; no alert content;
- cli:        a `sotto` command on the centre's host (whoever can run it owns the database file
              anyway); it may do everything and is logged as such.
The server checks these on every request; the page only hides what a role cannot use.
"""

from __future__ import annotations

from dataclasses import dataclass

from host_tools.errors import SottoError

OPERATOR, SUPERVISOR, AUDITOR, ADMIN, CLI = "operator", "supervisor", "auditor", "admin", "cli"
ROLES = (OPERATOR, SUPERVISOR, AUDITOR, ADMIN)  # console accounts

# rights
LIVE_ALERTS = "live-alerts"  # queue, open alerts' location and audio, acknowledge, commands
CLOSED_ALERTS = "closed-alerts"  # closed alerts' detail, location and audio
CLOSE = "close"
EXPORT = "export"
STATISTICS = "statistics"
AUDIT_LOG = "audit-log"  # the audit log and the access ledger
RETENTION = "retention"  # purge, holds
DEVICES = "devices"
ACCOUNTS = "accounts"

RIGHTS: dict[str, frozenset[str]] = {
    OPERATOR: frozenset({LIVE_ALERTS}),
    SUPERVISOR: frozenset({LIVE_ALERTS, CLOSED_ALERTS, CLOSE, EXPORT, STATISTICS}),
    AUDITOR: frozenset({AUDIT_LOG, RETENTION}),
    ADMIN: frozenset({DEVICES, ACCOUNTS}),
    CLI: frozenset(
        {LIVE_ALERTS, CLOSED_ALERTS, CLOSE, EXPORT, STATISTICS, AUDIT_LOG, RETENTION, DEVICES, ACCOUNTS}
    ),
}


class Forbidden(SottoError, PermissionError):
    """The acting person's role does not have that right (HTTP 403)."""


@dataclass(frozen=True)
class Actor:
    """Who is acting, as the audit log records it."""

    name: str
    role: str

    def may(self, right: str) -> bool:
        return right in RIGHTS.get(self.role, frozenset())


def require(actor: Actor, right: str) -> None:
    """Forbidden unless actor's role has `right`."""
    if not actor.may(right):
        raise Forbidden(f"the {actor.role} role may not do this ({right}); ask someone whose role may")


def check_role(role: str) -> str:
    """A console role name; SottoError (UsageError) naming the valid ones otherwise."""
    from host_tools.errors import UsageError

    if role not in ROLES:
        raise UsageError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    return role
