"""Identity rules, after Keystone's defaults with scope enforcement on.

Reads need ``reader`` in any scope; what a reader sees is cut by visibility (another tenant's row
is 404, see ``core/keystone/routes/_common.py``). Writes need ``admin``: the catalog, domains, roles
and policies in system scope only; projects, users and groups in system or domain scope; grants in
any scope, further limited to roles the caller holds on targets it reaches (routes/grants.py).
"""
from __future__ import annotations

from core.keystone.policy import Rule, register

SYSTEM = ("system",)
SYSTEM_DOMAIN = ("system", "domain")


def _crud(resource: str, write_scopes: tuple[str, ...], what: str, read_scopes: tuple[str, ...] | None = None
          ) -> tuple[Rule, ...]:
    reads = read_scopes or ("system", "domain", "project")
    return (
        Rule(f"identity:{resource}:list", "reader", reads, description=f"List {what} the caller can see."),
        Rule(f"identity:{resource}:get", "reader", reads, description=f"Show one of the {what}."),
        Rule(f"identity:{resource}:create", "admin", write_scopes, description=f"Create {what}."),
        Rule(f"identity:{resource}:update", "admin", write_scopes, description=f"Update {what}."),
        Rule(f"identity:{resource}:delete", "admin", write_scopes, description=f"Delete {what}."),
    )


RULES = (
    *_crud("domains", SYSTEM, "domains"),
    *_crud("projects", SYSTEM_DOMAIN, "projects (domain admins: in their domain)"),
    *_crud("users", SYSTEM_DOMAIN, "users (domain admins: in their domain)"),
    *_crud("groups", SYSTEM_DOMAIN, "groups (domain admins: in their domain)"),
    *_crud("roles", SYSTEM, "roles"),
    *_crud("services", SYSTEM, "catalog services"),
    *_crud("endpoints", SYSTEM, "catalog endpoints"),
    *_crud("regions", SYSTEM, "regions"),
    *_crud("policies", SYSTEM, "policy blobs", read_scopes=SYSTEM),
    Rule("identity:users:unlock", "admin", SYSTEM_DOMAIN, description="Clear a user's login lockout."),
    Rule("identity:group_users:list", "reader", description="List a group's members / a user's groups."),
    Rule("identity:group_users:add", "admin", SYSTEM_DOMAIN, description="Add a user to a group."),
    Rule("identity:group_users:remove", "admin", SYSTEM_DOMAIN, description="Remove a user from a group."),
    Rule("identity:implied_roles:list", "reader", description="List role inference rules."),
    Rule("identity:implied_roles:create", "admin", SYSTEM, description="Make one role imply another."),
    Rule("identity:implied_roles:delete", "admin", SYSTEM, description="Remove a role inference rule."),
    Rule("identity:grants:list", "reader", description="List or check grants on a visible target."),
    Rule("identity:grants:create", "admin",
         description="Grant a role the caller holds, on a target within the caller's scope."),
    Rule("identity:grants:revoke", "admin",
         description="Revoke a role the caller holds, on a target within the caller's scope."),
    Rule("identity:role_assignments:list", "reader", description="List role assignments on visible targets."),
    Rule("identity:credentials:list", "reader", description="List own credentials (system: all)."),
    Rule("identity:credentials:get", "reader", description="Show an own credential (system: any)."),
    Rule("identity:credentials:create", "reader", description="Create a credential for oneself."),
    Rule("identity:credentials:update", "reader", description="Update an own credential."),
    Rule("identity:credentials:delete", "reader", description="Delete an own credential."),
    Rule("identity:credentials:manage_others", "admin", SYSTEM,
         description="Create, update or delete another user's credentials."),
    Rule("identity:application_credentials:create", "reader", ("project",),
         description="Create an application credential for oneself on the token's project."),
    Rule("identity:application_credentials:list", "reader", description="List own application credentials "
         "and access rules."),
    Rule("identity:application_credentials:get", "reader", description="Show an own application credential or "
         "access rule."),
    Rule("identity:application_credentials:delete", "reader", description="Delete an own application credential "
         "or unused access rule."),
    Rule("identity:application_credentials:list_others", "reader", SYSTEM,
         description="List another user's application credentials and access rules."),
    Rule("identity:application_credentials:get_others", "reader", SYSTEM,
         description="Show another user's application credential or access rule."),
    Rule("identity:application_credentials:delete_others", "admin", SYSTEM,
         description="Delete another user's application credential or access rule."),
    Rule("identity:actions:list", "reader", description="List audit records (own tenant unless system)."),
    Rule("identity:usages:get", "reader", description="Count the identity resources the caller can see."),
    Rule("identity:services:list", "reader", description="List services in the catalog."),
    Rule("identity:endpoints:list", "reader", description="List endpoints in the catalog."),
    Rule("identity:tokens:validate", "reader", SYSTEM, description="Validate another user's token."),
    Rule("identity:tokens:revoke", "admin", SYSTEM, description="Revoke another user's token."),
)
register(RULES)
