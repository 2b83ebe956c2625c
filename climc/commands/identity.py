"""Identity commands: catalog, tokens."""
from __future__ import annotations

from typing import Any

import click

from climc.output import output_options, show_list, show_object


@click.command("service-list")
@output_options
@click.pass_obj
def service_list(obj: Any) -> None:
    """List services in the catalog."""
    data = obj.client().get("identity", "/services")
    items = data.get("services", [])
    show_list(items, columns=["id", "name", "type", "enabled", "description"])


@click.command("endpoint-list")
@click.option("--interface", type=click.Choice(["public", "internal", "admin"]), help="Only this interface")
@click.option("--region", help="Only this region")
@output_options
@click.pass_obj
def endpoint_list(obj: Any, interface: str | None, region: str | None) -> None:
    """List service endpoints in the catalog."""
    params = {k: v for k, v in (("interface", interface), ("region_id", region)) if v}
    items = obj.client().get("identity", "/endpoints", params=params).get("endpoints", [])
    show_list(items, columns=["id", "region_id", "service_name", "service_type", "interface", "url", "enabled"])


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
