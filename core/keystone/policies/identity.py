"""Identity rules (Keystone's defaults: admins manage, readers read the catalog)."""
from __future__ import annotations

from core.keystone.policy import Rule, register

RULES = (
    Rule("identity:services:list", "reader", description="List services in the catalog."),
    Rule("identity:endpoints:list", "reader", description="List endpoints in the catalog."),
    Rule("identity:actions:list", "reader", description="List audit records (own tenant unless system)."),
)
register(RULES)
register((
    Rule("identity:tokens:validate", "reader", ("system",), description="Validate another user's token."),
    Rule("identity:tokens:revoke", "admin", ("system",), description="Revoke another user's token."),
))
