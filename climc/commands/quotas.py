"""Quotas (show, set) and resource usage."""
from __future__ import annotations

from typing import Any

import click

from climc.commands.compute_common import S
from climc.output import output_options, show_object
from climc.params import LIMIT_MB


@click.command("quota-show")
@click.option("--project", default=None, help="Another project (id or name; admins)")
@output_options
@click.pass_obj
def quota_show(obj: Any, project: str | None) -> None:
    """Show a project's quota and usage."""
    show_object(obj.client().get(S, "/quotas", params={"project": project} if project else {})["quota"])


@click.command("quota-set")
@click.option("--project", default=None, help="Project (id or name; default: the current one)")
@click.option("--cpu", type=int, default=None)
@click.option("--memory", "--mem-spec", "memory", type=LIMIT_MB, default=None,
              help="Memory: 2g, 512m or MB (-1: unlimited)")
@click.option("--storage", type=LIMIT_MB, default=None, help="Disk: 500g, 2t or MB (-1: unlimited)")
@click.option("--servers", type=int, default=None)
@click.option("--ips", type=int, default=None)
@click.option("--images", type=int, default=None)
@click.option("--snapshot", type=int, default=None, help="Disk snapshots")
@click.option("--eip", type=int, default=None, help="EIPs on eip networks (eip-create, server-create --eip-bw)")
@click.option("--domain", default=None,
              help="Cap a domain instead (name or id; system admins): its projects together stay within it")
@output_options
@click.pass_obj
def quota_set(obj: Any, project: str | None, domain: str | None, **limits: Any) -> None:
    """Set quota limits (-1 = unlimited; with --domain, -1 removes the domain's own cap)."""
    body: dict[str, Any] = {"quota": {k: v for k, v in limits.items() if v is not None}}
    if not body["quota"]:
        raise click.UsageError("give at least one limit")
    if domain:
        if project:
            raise click.UsageError("give --project or --domain, not both")
        show_object(obj.client().post(S, f"/quotas/domains/{domain}", json={"quotas": body["quota"]})["quota"])
        return
    if project:
        body["project"] = project
    show_object(obj.client().post(S, "/quotas", json=body)["quota"])


@click.command("usage")
@click.option("--scope", type=click.Choice(["system", "project"]), default=None)
@output_options
@click.pass_obj
def usage(obj: Any, scope: str | None) -> None:
    """Show resource usage (the project's, or the cloud's for system admins)."""
    show_object(obj.client().get(S, "/usages", params={"scope": scope} if scope else {})["usage"])
