"""Identity commands: domains, projects, users, groups, roles, assignments, catalog, credentials, audit.

Names are accepted wherever an id is (the server resolves them), so ``climc project-add-user demo alice
member`` works. Batch verbs (``*-delete a b c``) continue past failures and exit 1 naming how many failed.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import click

from climc.output import output_options, show_list, show_object

ID = "identity"
COLUMNS = {
    "domains": ["id", "name", "enabled", "description"],
    "projects": ["id", "name", "domain_id", "enabled", "description"],
    "users": ["id", "name", "domain_id", "enabled", "locked", "email", "default_project_id"],
    "groups": ["id", "name", "domain_id", "description"],
    "roles": ["id", "name", "domain_id", "description"],
    "services": ["id", "name", "type", "enabled", "description"],
    "endpoints": ["id", "region_id", "service_name", "service_type", "interface", "url", "enabled"],
    "credentials": ["id", "type", "user_id", "project_id", "access"],
    "actions": ["start_time", "user", "tenant", "service", "action", "obj_type", "obj_name", "success", "notes"],
}


# ---- shared plumbing ---------------------------------------------------------------------------
def list_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The common list flags (API.md §7)."""
    opts = [
        click.option("--limit", type=click.IntRange(0), default=20, show_default=True, help="Page size (0: all)"),
        click.option("--offset", type=click.IntRange(0), default=0, help="Skip this many"),
        click.option("--order-by", multiple=True, help="Sort field (repeatable)"),
        click.option("--order", type=click.Choice(["asc", "desc"]), default=None),
        click.option("--search", default=None, help="Fuzzy name match"),
        click.option("--filter", "filters", multiple=True, metavar="FIELD.OP(ARGS)", help="Repeatable filter"),
        click.option("--filter-any", is_flag=True, help="OR the filters instead of AND"),
        click.option("--scope", type=click.Choice(["system", "domain", "project"]), default=None),
        click.option("--details/--no-details", default=True),
        click.option("--pending-delete", is_flag=True, hidden=True, help="(no recycle bin for identity)"),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def owner_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Cloudpods' BaseListOptions that its climc gives every list (rc files and scripts pass them):
    the server narrows to a project's or domain's rows; identity rows carry no tags, so --tags
    matches none; --admin/--system change nothing (you already see all you may)."""
    from climc.commands.compute_common import owner_flags

    for opt in reversed(owner_flags()):
        f = opt(f)
    return f


def list_params(kw: dict[str, Any]) -> dict[str, Any]:
    from climc.commands.compute_common import list_params as owner_params

    owner = owner_params({k: kw.pop(k) for k in ("admin", "tenant", "project_domain", "tags", "user_tags",
                                                  "no_tags", "fields") if k in kw})
    for k in ("limit", "offset", "details"):
        owner.pop(k, None)
    if kw.pop("system", False):
        owner["system"] = "true"
    p: dict[str, Any] = {**owner, "limit": kw.pop("limit"), "offset": kw.pop("offset")}
    if kw.get("order_by"):
        p["order_by"] = list(kw["order_by"])
    for k in ("order", "search", "scope"):
        if kw.get(k):
            p[k] = kw[k]
    if kw.get("filters"):
        p["filter"] = list(kw["filters"])
    if kw.get("filter_any"):
        p["filter_any"] = "true"
    if not kw.get("details", True):
        p["details"] = "false"
    for k in ("order_by", "order", "search", "scope", "filters", "filter_any", "details", "pending_delete"):
        kw.pop(k, None)
    return p


def do_list(obj: Any, path: str, key: str, params: dict[str, Any], columns: list[str] | None = None,
            transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
    data = obj.client().get(ID, path, params={k: v for k, v in params.items() if v is not None})
    items = data.get(key, [])
    if params.get("field"):
        columns = list(params["field"])
    if transform:
        items = [transform(i) for i in items]
    show_list(items, columns=columns or COLUMNS.get(key), total=data.get("total", len(items)),
              limit=data.get("limit") if params.get("limit") else None, offset=data.get("offset", 0))


def batch(refs: Iterable[str], what: str, verb: str, fn: Callable[[str], Any]) -> None:
    """Run ``fn`` on each ref; report each failure; exit 1 naming how many failed."""
    from core.cli_errors import BatchFailure, message_for
    from core.errors import CloudpodsError

    refs = list(refs)
    failed: list[CloudpodsError] = []
    for ref in refs:
        try:
            fn(ref)
            click.echo(f"{what} {ref}: {verb}", err=True)
        except CloudpodsError as e:
            failed.append(e)
            click.echo(f"{what} {ref}: {message_for(e)}", err=True)
    if failed:
        raise BatchFailure(failed, len(refs), what, verb.rstrip("d"))


def body_of(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def enabled_flag(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--enabled/--disabled", "enabled", default=None, help="Enable or disable")(f)


# ---- domains -----------------------------------------------------------------------------------
def _show(keyword: str, help_: str) -> click.Command:
    """``<keyword>-show <KEYWORD>``: one row of ``/<keyword>s``."""
    @click.command(f"{keyword}-show", help=help_)
    @click.argument(keyword)
    @output_options
    @click.pass_obj
    def cmd(obj: Any, **kw: str) -> None:
        show_object(obj.client().get(ID, f"/{keyword}s/{kw[keyword]}")[keyword])
    return cmd


def _delete(keyword: str, help_: str) -> click.Command:
    """``<keyword>-delete <KEYWORD>S...``: each row of ``/<keyword>s`` named (``batch``)."""
    @click.command(f"{keyword}-delete", help=help_)
    @click.argument(f"{keyword}s", nargs=-1, required=True)
    @click.pass_obj
    def cmd(obj: Any, **kw: tuple[str, ...]) -> None:
        c = obj.client()
        batch(kw[f"{keyword}s"], keyword, "deleted", lambda ref: c.delete(ID, f"/{keyword}s/{ref}"))
    return cmd


@click.command("domain-list")
@click.option("--name", default=None)
@list_options
@owner_options
@output_options
@click.pass_obj
def domain_list(obj: Any, name: str | None, **kw: Any) -> None:
    """List domains."""
    do_list(obj, "/domains", "domains", {**list_params(kw), "name": name})


domain_show = _show("domain", "Show a domain.")


@click.command("domain-create")
@click.argument("name")
@click.option("--desc", default=None, help="Description")
@enabled_flag
@output_options
@click.pass_obj
def domain_create(obj: Any, name: str, desc: str | None, enabled: bool | None) -> None:
    """Create a domain."""
    body = body_of(name=name, description=desc, enabled=enabled)
    show_object(obj.client().post(ID, "/domains", json={"domain": body})["domain"])


@click.command("domain-update")
@click.argument("domain")
@click.option("--name", default=None)
@click.option("--desc", default=None)
@enabled_flag
@output_options
@click.pass_obj
def domain_update(obj: Any, domain: str, name: str | None, desc: str | None, enabled: bool | None) -> None:
    """Update a domain (disable it before deleting)."""
    body = body_of(name=name, description=desc, enabled=enabled)
    show_object(obj.client().patch(ID, f"/domains/{domain}", json={"domain": body})["domain"])


domain_delete = _delete("domain", "Delete disabled, empty domains.")


# ---- projects ----------------------------------------------------------------------------------
@click.command("project-list")
@click.option("--domain", default=None, help="Only this domain (id)")
@click.option("--name", default=None)
@click.option("--user", default=None, help="Only projects this user has a role on")
@list_options
@owner_options
@output_options
@click.pass_obj
def project_list(obj: Any, domain: str | None, name: str | None, user: str | None, **kw: Any) -> None:
    """List projects."""
    if user:
        do_list(obj, f"/users/{user}/projects", "projects", {})
        return
    do_list(obj, "/projects", "projects", {**list_params(kw), "domain_id": domain, "name": name})


project_show = _show("project", "Show a project.")


@click.command("project-create")
@click.argument("name")
@click.option("--domain", default=None, help="Owner domain (id or name; default: the caller's)")
@click.option("--desc", default=None)
@enabled_flag
@output_options
@click.pass_obj
def project_create(obj: Any, name: str, domain: str | None, desc: str | None, enabled: bool | None) -> None:
    """Create a project."""
    body = body_of(name=name, domain_id=domain, description=desc, enabled=enabled)
    show_object(obj.client().post(ID, "/projects", json={"project": body})["project"])


@click.command("project-update")
@click.argument("project")
@click.option("--name", default=None)
@click.option("--desc", default=None)
@enabled_flag
@output_options
@click.pass_obj
def project_update(obj: Any, project: str, name: str | None, desc: str | None, enabled: bool | None) -> None:
    """Update a project."""
    body = body_of(name=name, description=desc, enabled=enabled)
    show_object(obj.client().patch(ID, f"/projects/{project}", json={"project": body})["project"])


project_delete = _delete("project", "Delete projects.")


@click.command("project-add-user")
@click.argument("project")
@click.argument("user")
@click.argument("roles", nargs=-1, required=True)
@click.pass_obj
def project_add_user(obj: Any, project: str, user: str, roles: tuple[str, ...]) -> None:
    """Grant USER one or more ROLES on PROJECT."""
    c = obj.client()
    batch(roles, "role", "granted", lambda r: c.put(ID, f"/projects/{project}/users/{user}/roles/{r}"))


@click.command("project-remove-user")
@click.argument("project")
@click.argument("user")
@click.argument("roles", nargs=-1, required=True)
@click.pass_obj
def project_remove_user(obj: Any, project: str, user: str, roles: tuple[str, ...]) -> None:
    """Revoke ROLES of USER on PROJECT."""
    c = obj.client()
    batch(roles, "role", "revoked", lambda r: c.delete(ID, f"/projects/{project}/users/{user}/roles/{r}"))


# ---- users -------------------------------------------------------------------------------------
@click.command("user-list")
@click.option("--domain", default=None, help="Only this domain (id)")
@click.option("--name", default=None)
@click.option("--group", default=None, help="Only members of this group")
@list_options
@owner_options
@output_options
@click.pass_obj
def user_list(obj: Any, domain: str | None, name: str | None, group: str | None, **kw: Any) -> None:
    """List users."""
    if group:
        do_list(obj, f"/groups/{group}/users", "users", {})
        return
    do_list(obj, "/users", "users", {**list_params(kw), "domain_id": domain, "name": name})


user_show = _show("user", "Show a user.")


def _password(value: str | None, prompt: bool, label: str = "Password") -> str | None:
    if value is None and prompt:
        return str(click.prompt(label, hide_input=True, confirmation_prompt=True, err=True))
    return value


@click.command("user-create")
@click.argument("name")
@click.option("--password", default=None, help="Initial password (or --password-prompt)")
@click.option("--password-prompt", is_flag=True, help="Ask for the password")
@click.option("--domain", default=None, help="Owner domain (id or name; default: the caller's)")
@click.option("--email", default=None)
@click.option("--desc", default=None)
@click.option("--default-project", default=None, help="Project used when a login names none")
@enabled_flag
@output_options
@click.pass_obj
def user_create(obj: Any, name: str, password: str | None, password_prompt: bool, domain: str | None,
                email: str | None, desc: str | None, default_project: str | None, enabled: bool | None) -> None:
    """Create a user."""
    body = body_of(name=name, password=_password(password, password_prompt), domain_id=domain, email=email,
                   description=desc, default_project_id=default_project, enabled=enabled)
    show_object(obj.client().post(ID, "/users", json={"user": body})["user"])


@click.command("user-update")
@click.argument("user")
@click.option("--name", default=None)
@click.option("--password", default=None, help="New password")
@click.option("--password-prompt", is_flag=True, help="Ask for the new password")
@click.option("--original-password", default=None,
              help="Change your own password (no admin role needed): give the current one")
@click.option("--email", default=None)
@click.option("--desc", default=None)
@click.option("--default-project", default=None)
@enabled_flag
@output_options
@click.pass_obj
def user_update(obj: Any, user: str, name: str | None, password: str | None, password_prompt: bool,
                original_password: str | None, email: str | None, desc: str | None,
                default_project: str | None, enabled: bool | None) -> None:
    """Update a user; --password sets a new password (admins), with --original-password your own."""
    c = obj.client()
    password = _password(password, password_prompt, "New password")
    if original_password is not None:
        if password is None:
            raise click.UsageError("--original-password needs --password or --password-prompt")
        uid = c.get(ID, f"/users/{user}")["user"]["id"]
        c.post(ID, f"/users/{uid}/password",
               json={"user": {"password": password, "original_password": original_password}})
        click.echo("Password changed; log in again with the new one.", err=True)
        password = None
        if all(v is None for v in (name, email, desc, default_project, enabled)):
            return
    body = body_of(name=name, password=password, email=email, description=desc,
                   default_project_id=default_project, enabled=enabled)
    show_object(c.patch(ID, f"/users/{user}", json={"user": body})["user"])


user_delete = _delete("user", "Delete users.")


@click.command("user-unlock")
@click.argument("users", nargs=-1, required=True)
@click.pass_obj
def user_unlock(obj: Any, users: tuple[str, ...]) -> None:
    """Clear the login lockout of users."""
    c = obj.client()
    batch(users, "user", "unlocked", lambda u: c.post(ID, f"/users/{u}/unlock"))


# ---- groups ------------------------------------------------------------------------------------
@click.command("group-list")
@click.option("--domain", default=None)
@click.option("--user", default=None, help="Only groups this user belongs to")
@list_options
@owner_options
@output_options
@click.pass_obj
def group_list(obj: Any, domain: str | None, user: str | None, **kw: Any) -> None:
    """List groups."""
    if user:
        do_list(obj, f"/users/{user}/groups", "groups", {})
        return
    do_list(obj, "/groups", "groups", {**list_params(kw), "domain_id": domain})


group_show = _show("group", "Show a group.")


@click.command("group-create")
@click.argument("name")
@click.option("--domain", default=None)
@click.option("--desc", default=None)
@output_options
@click.pass_obj
def group_create(obj: Any, name: str, domain: str | None, desc: str | None) -> None:
    """Create a group."""
    body = body_of(name=name, domain_id=domain, description=desc)
    show_object(obj.client().post(ID, "/groups", json={"group": body})["group"])


@click.command("group-update")
@click.argument("group")
@click.option("--name", default=None)
@click.option("--desc", default=None)
@output_options
@click.pass_obj
def group_update(obj: Any, group: str, name: str | None, desc: str | None) -> None:
    """Update a group."""
    show_object(obj.client().patch(ID, f"/groups/{group}", json={"group": body_of(name=name, description=desc)})
                ["group"])


group_delete = _delete("group", "Delete groups.")


@click.command("group-add-user")
@click.argument("group")
@click.argument("users", nargs=-1, required=True)
@click.pass_obj
def group_add_user(obj: Any, group: str, users: tuple[str, ...]) -> None:
    """Add users to a group."""
    c = obj.client()
    batch(users, "user", "added", lambda u: c.put(ID, f"/groups/{group}/users/{u}"))


@click.command("group-remove-user")
@click.argument("group")
@click.argument("users", nargs=-1, required=True)
@click.pass_obj
def group_remove_user(obj: Any, group: str, users: tuple[str, ...]) -> None:
    """Remove users from a group."""
    c = obj.client()
    batch(users, "user", "removed", lambda u: c.delete(ID, f"/groups/{group}/users/{u}"))


# ---- roles and assignments ---------------------------------------------------------------------
@click.command("role-list")
@click.option("--domain", default=None, help="Domain-specific roles of this domain")
@list_options
@output_options
@click.pass_obj
def role_list(obj: Any, domain: str | None, **kw: Any) -> None:
    """List roles."""
    do_list(obj, "/roles", "roles", {**list_params(kw), "domain_id": domain})


role_show = _show("role", "Show a role.")


@click.command("role-create")
@click.argument("name")
@click.option("--domain", default=None, help="Make it a domain-specific role")
@click.option("--desc", default=None)
@output_options
@click.pass_obj
def role_create(obj: Any, name: str, domain: str | None, desc: str | None) -> None:
    """Create a role."""
    body = body_of(name=name, domain_id=domain, description=desc)
    show_object(obj.client().post(ID, "/roles", json={"role": body})["role"])


@click.command("role-update")
@click.argument("role")
@click.option("--name", default=None)
@click.option("--desc", default=None)
@output_options
@click.pass_obj
def role_update(obj: Any, role: str, name: str | None, desc: str | None) -> None:
    """Update a role."""
    show_object(obj.client().patch(ID, f"/roles/{role}", json={"role": body_of(name=name, description=desc)})
                ["role"])


role_delete = _delete("role", "Delete roles (their assignments go with them).")


@click.command("role-implied-list")
@output_options
@click.pass_obj
def role_implied_list(obj: Any) -> None:
    """List role inference rules (prior role implies roles)."""
    rows = obj.client().get(ID, "/role_inferences").get("role_inferences", [])
    items = [{"prior_role": r["prior_role"]["name"], "implies": [i["name"] for i in r["implies"]]} for r in rows]
    show_list(items, columns=["prior_role", "implies"])


@click.command("role-imply-add")
@click.argument("prior")
@click.argument("implied")
@click.pass_obj
def role_imply_add(obj: Any, prior: str, implied: str) -> None:
    """Make role PRIOR imply role IMPLIED."""
    obj.client().put(ID, f"/roles/{prior}/implies/{implied}")
    click.echo(f"{prior} now implies {implied}", err=True)


@click.command("role-imply-remove")
@click.argument("prior")
@click.argument("implied")
@click.pass_obj
def role_imply_remove(obj: Any, prior: str, implied: str) -> None:
    """Remove the rule that PRIOR implies IMPLIED."""
    obj.client().delete(ID, f"/roles/{prior}/implies/{implied}")
    click.echo(f"{prior} no longer implies {implied}", err=True)


def _grant_path(role: str, user: str | None, group: str | None, project: str | None, domain: str | None,
                system: bool) -> str:
    if (user is None) == (group is None):
        raise click.UsageError("give exactly one of --user or --group")
    if sum(x is not None and x is not False for x in (project, domain, system or None)) != 1:
        raise click.UsageError("give exactly one of --project, --domain or --system")
    actor = f"users/{user}" if user else f"groups/{group}"
    target = f"projects/{project}" if project else f"domains/{domain}" if domain else "system"
    return f"/{target}/{actor}/roles/{role}"


def _grant_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for o in reversed([click.option("--user", default=None), click.option("--group", default=None),
                       click.option("--project", default=None), click.option("--domain", default=None),
                       click.option("--system", is_flag=True, help="The system (whole cloud) scope")]):
        f = o(f)
    return f


@click.command("role-grant")
@click.argument("role")
@_grant_options
@click.pass_obj
def role_grant(obj: Any, role: str, **kw: Any) -> None:
    """Grant ROLE to --user/--group on --project/--domain/--system."""
    obj.client().put(ID, _grant_path(role, **kw))
    click.echo(f"granted {role}", err=True)


@click.command("role-revoke")
@click.argument("role")
@_grant_options
@click.pass_obj
def role_revoke(obj: Any, role: str, **kw: Any) -> None:
    """Revoke ROLE of --user/--group on --project/--domain/--system."""
    obj.client().delete(ID, _grant_path(role, **kw))
    click.echo(f"revoked {role}", err=True)


@click.command("role-assignment-list")
@click.option("--user", default=None, help="User id")
@click.option("--group", default=None, help="Group id")
@click.option("--project", default=None, help="Project id")
@click.option("--domain", default=None, help="Domain id")
@click.option("--system", is_flag=True, help="System assignments only")
@click.option("--role", default=None, help="Role id")
@click.option("--effective", is_flag=True, help="Expand groups and implied roles")
@click.option("--names/--no-names", default=True, show_default=True, help="Include names")
@output_options
@click.pass_obj
def role_assignment_list(obj: Any, user: str | None, group: str | None, project: str | None, domain: str | None,
                         system: bool, role: str | None, effective: bool, names: bool) -> None:
    """List role assignments."""
    params: dict[str, Any] = body_of(**{"user.id": user, "group.id": group, "scope.project.id": project,
                                        "scope.domain.id": domain, "role.id": role})
    if system:
        params["scope.system"] = "all"
    if effective:
        params["effective"] = "true"
    if names:
        params["include_names"] = "true"
    rows = obj.client().get(ID, "/role_assignments", params=params).get("role_assignments", [])
    show_list([_flat_assignment(r) for r in rows],
              columns=["role", "user", "group", "project", "domain", "system", "inherited_from"])


def _flat_assignment(r: dict[str, Any]) -> dict[str, Any]:
    def nm(d: dict[str, Any] | None) -> str:
        if not d:
            return ""
        dom = (d.get("domain") or {}).get("name")
        return f"{d.get('name') or d.get('id')}@{dom}" if dom and d.get("name") else str(d.get("name") or d["id"])

    scope = r.get("scope", {})
    return {"role": nm(r.get("role")), "user": nm(r.get("user")), "group": nm(r.get("group")),
            "project": nm(scope.get("project")), "domain": nm(scope.get("domain")),
            "system": "all" if "system" in scope else "",
            "inherited_from": nm(r.get("prior_role")) if r.get("prior_role") else ""}


# ---- catalog -----------------------------------------------------------------------------------
@click.command("service-list")
@click.option("--type", "stype", default=None)
@list_options
@output_options
@click.pass_obj
def service_list(obj: Any, stype: str | None, **kw: Any) -> None:
    """List services in the catalog."""
    do_list(obj, "/services", "services", {**list_params(kw), "type": stype})


service_show = _show("service", "Show a service.")


@click.command("service-create")
@click.argument("type")
@click.argument("name")
@click.option("--desc", default=None)
@enabled_flag
@output_options
@click.pass_obj
def service_create(obj: Any, type: str, name: str, desc: str | None, enabled: bool | None) -> None:
    """Create a service (TYPE NAME)."""
    body = body_of(type=type, name=name, description=desc, enabled=enabled)
    show_object(obj.client().post(ID, "/services", json={"service": body})["service"])


@click.command("service-update")
@click.argument("service")
@click.option("--type", "stype", default=None)
@click.option("--name", default=None)
@click.option("--desc", default=None)
@enabled_flag
@output_options
@click.pass_obj
def service_update(obj: Any, service: str, stype: str | None, name: str | None, desc: str | None,
                   enabled: bool | None) -> None:
    """Update a service."""
    body = body_of(type=stype, name=name, description=desc, enabled=enabled)
    show_object(obj.client().patch(ID, f"/services/{service}", json={"service": body})["service"])


service_delete = _delete("service", "Delete services (and their endpoints).")


@click.command("endpoint-list")
@click.option("--interface", type=click.Choice(["public", "internal", "admin"]), help="Only this interface")
@click.option("--region", help="Only this region")
@click.option("--service", default=None, help="Only this service id")
@list_options
@owner_options
@output_options
@click.pass_obj
def endpoint_list(obj: Any, interface: str | None, region: str | None, service: str | None, **kw: Any) -> None:
    """List service endpoints in the catalog."""
    do_list(obj, "/endpoints", "endpoints",
            {**list_params(kw), "interface": interface, "region_id": region, "service_id": service})


endpoint_show = _show("endpoint", "Show an endpoint.")


@click.command("endpoint-create")
@click.argument("args", nargs=-1, required=True, metavar="SERVICE [REGION] INTERFACE URL")
@click.option("--region", default=None, help="Region id (or the REGION positional, as Cloudpods' climc)")
@enabled_flag
@output_options
@click.pass_obj
def endpoint_create(obj: Any, args: tuple[str, ...], region: str | None, enabled: bool | None) -> None:
    """Create an endpoint: SERVICE [REGION] INTERFACE URL."""
    if len(args) == 4:
        if region:
            raise click.UsageError("REGION given twice (positional and --region)")
        service, region, interface, url = args
    elif len(args) == 3:
        service, interface, url = args
    else:
        raise click.UsageError("give SERVICE [REGION] INTERFACE URL")
    if interface not in ("public", "internal", "admin"):
        raise click.BadParameter(f"{interface!r} is not one of public, internal, admin", param_hint="INTERFACE")
    body = body_of(service_id=service, interface=interface, url=url, region_id=region, enabled=enabled)
    show_object(obj.client().post(ID, "/endpoints", json={"endpoint": body})["endpoint"])


@click.command("endpoint-update")
@click.argument("endpoint")
@click.option("--url", default=None)
@click.option("--interface", type=click.Choice(["public", "internal", "admin"]), default=None)
@click.option("--region", default=None)
@enabled_flag
@output_options
@click.pass_obj
def endpoint_update(obj: Any, endpoint: str, url: str | None, interface: str | None, region: str | None,
                    enabled: bool | None) -> None:
    """Update an endpoint."""
    body = body_of(url=url, interface=interface, region_id=region, enabled=enabled)
    show_object(obj.client().patch(ID, f"/endpoints/{endpoint}", json={"endpoint": body})["endpoint"])


endpoint_delete = _delete("endpoint", "Delete endpoints.")


# ---- credentials -------------------------------------------------------------------------------
def _cred_row(c: dict[str, Any], with_secret: bool = False) -> dict[str, Any]:
    out = {k: c.get(k) for k in ("id", "type", "user_id", "project_id")}
    try:
        blob = json.loads(c.get("blob") or "")
    except ValueError:
        blob = None
    if isinstance(blob, dict) and "access" in blob:
        out["access"] = blob["access"]
        if with_secret:
            out["secret"] = blob.get("secret")
    elif with_secret:
        out["blob"] = c.get("blob")
    return out


@click.command("credential-list")
@click.option("--user", default=None, help="Only this user's (id)")
@click.option("--type", "ctype", default=None)
@list_options
@output_options
@click.pass_obj
def credential_list(obj: Any, user: str | None, ctype: str | None, **kw: Any) -> None:
    """List credentials (secrets are not shown; use credential-show)."""
    do_list(obj, "/credentials", "credentials", {**list_params(kw), "user_id": user, "type": ctype},
            transform=_cred_row)


@click.command("credential-show")
@click.argument("credential")
@output_options
@click.pass_obj
def credential_show(obj: Any, credential: str) -> None:
    """Show a credential, secret included."""
    show_object(_cred_row(obj.client().get(ID, f"/credentials/{credential}")["credential"], with_secret=True))


@click.command("credential-create")
@click.option("--type", "ctype", default="ec2", show_default=True)
@click.option("--user", default=None, help="Owner user id (default: yourself)")
@click.option("--project", default=None, help="Project id (default: your token's)")
@click.option("--blob", default=None, help="Opaque data; for ec2 omit it to generate an access/secret pair")
@output_options
@click.pass_obj
def credential_create(obj: Any, ctype: str, user: str | None, project: str | None, blob: str | None) -> None:
    """Create a credential; by default an EC2-style access/secret pair for scripts."""
    body = body_of(type=ctype, user_id=user, project_id=project, blob=blob)
    show_object(_cred_row(obj.client().post(ID, "/credentials", json={"credential": body})["credential"],
                          with_secret=True))


credential_delete = _delete("credential", "Delete credentials.")


# ---- audit -------------------------------------------------------------------------------------
@click.command("action-list")
@click.option("--since", default=None, help="ISO time or relative (15m, 2h, 7d)")
@click.option("--until", default=None, help="ISO time or relative")
@click.option("--user", default=None, help="User id or name")
@click.option("--project", default=None, help="Project id or name")
@click.option("--service", default=None)
@click.option("--action", default=None)
@click.option("--obj-type", default=None)
@click.option("--success/--failed", "success", default=None, help="Only successes or failures")
@list_options
@output_options
@click.pass_obj
def action_list(obj: Any, since: str | None, until: str | None, user: str | None, project: str | None,
                service: str | None, action: str | None, obj_type: str | None, success: bool | None,
                **kw: Any) -> None:
    """List audit records (newest first)."""
    params = {**list_params(kw), "since": since, "until": until, "user": user, "project": project,
              "service": service, "action": action, "obj_type": obj_type,
              "success": None if success is None else str(success).lower()}
    do_list(obj, "/actions", "actions", params)


# ---- tokens ------------------------------------------------------------------------------------
@click.command("token-issue")
@output_options
@click.pass_obj
def token_issue(obj: Any) -> None:
    """Issue a token and show it."""
    c = obj.client()
    body = c.login(force=True)["token"]
    show_object({
        "id": c.token,
        "expires_at": body.get("expires_at"),
        "user_id": body.get("user", {}).get("id"),
        "user": body.get("user", {}).get("name"),
        "project_id": (body.get("project") or {}).get("id"),
        "project": (body.get("project") or {}).get("name"),
        "domain": (body.get("domain") or {}).get("name"),
        "system": "all" if body.get("system") else None,
        "roles": [r["name"] for r in body.get("roles", [])],
    })
