"""Tasks, quotas, usage, keypairs, security groups, EIPs, snapshots."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from climc.commands.compute_common import S, make_delete, make_list, make_show
from climc.output import output_options, show_object
from climc.params import LIMIT_MB
from climc.wait import wait_options

task_list = make_list("task-list", "tasks", ["id", "task_name", "obj_type", "obj_name", "stage", "status", "reason",
                                             "created_at"], "List tasks",
                      [("status", "status"), ("obj-id", "obj_id"), ("obj-type", "obj_type")])
task_show = make_show("task-show", "tasks", "task", "Show a task with its stages")
keypair_list = make_list("keypair-list", "keypairs", ["id", "name", "scheme", "fingerprint", "created_at"],
                         "List keypairs")
keypair_show = make_show("keypair-show", "keypairs", "keypair", "Show a keypair")
keypair_delete = make_delete("keypair-delete", "keypairs", "keypair", "Delete keypairs")
secgroup_list = make_list("secgroup-list", "secgroups", ["id", "name", "rules", "created_at"],
                          "List security groups")
secgroup_show = make_show("secgroup-show", "secgroups", "secgroup", "Show a security group and its rules")
secgroup_delete = make_delete("secgroup-delete", "secgroups", "secgroup", "Delete unused security groups")
eip_list = make_list("eip-list", "eips", ["id", "name", "ip_addr", "bandwidth", "status", "associate_name", "manager"],
                     "List elastic IPs")
eip_show = make_show("eip-show", "eips", "eip", "Show an elastic IP")
eip_delete = make_delete("eip-delete", "eips", "eip", "Delete elastic IPs", waitable=True)
snapshot_list = make_list("snapshot-list", "snapshots", ["id", "name", "disk", "size", "status", "created_at"],
                          "List snapshots", [("disk", "disk")])


@click.command("keypair-create")
@click.argument("name")
@click.option("--public-key", "public_key", default=None,
              help="The key, or @FILE to read it from a file; without it a pair is generated")
@click.option("--scheme", type=click.Choice(["RSA", "ED25519"]), default="RSA", show_default=True,
              help="Of a generated pair")
@click.option("--private-key-file", type=click.Path(dir_okay=False), default=None,
              help="Write a generated private key here (mode 0600) instead of printing it")
@output_options
@click.pass_obj
def keypair_create(obj: Any, name: str, public_key: str | None, scheme: str, private_key_file: str | None) -> None:
    """Import an OpenSSH public key, or generate a pair (the private key is shown this once only)."""
    import os

    body: dict[str, Any] = {"name": name}
    if public_key:
        body["public_key"] = Path(public_key[1:]).expanduser().read_text() if public_key.startswith("@") \
            else public_key
    else:
        body["scheme"] = scheme
    if private_key_file and os.path.exists(private_key_file):
        raise click.UsageError(f"{private_key_file} exists: give a new file for the private key")
    out = obj.client().post(S, "/keypairs", json={"keypair": body})["keypair"]
    if private_key_file and out.get("private_key"):
        fd = os.open(private_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(out.pop("private_key"))
        out["private_key"] = f"(written to {private_key_file})"
    show_object(out)


@click.command("secgroup-create")
@click.argument("name")
@click.option("--desc", default=None)
@output_options
@click.pass_obj
def secgroup_create(obj: Any, name: str, desc: str | None) -> None:
    """Create a security group."""
    body = {"name": name, **({"description": desc} if desc else {})}
    show_object(obj.client().post(S, "/secgroups", json={"secgroup": body})["secgroup"])


def _rule_options(create: bool) -> Any:
    """The rule fields as options (Cloudpods' names); on update every one is optional."""
    def deco(fn: Any) -> Any:
        d = (lambda v: v) if create else (lambda v: None)
        for opt in reversed([
            click.option("--direction", type=click.Choice(["in", "out"]), default=d("in"), show_default=create),
            click.option("--action", type=click.Choice(["allow", "deny"]), default=d("allow"), show_default=create),
            click.option("--protocol", type=click.Choice(["any", "tcp", "udp", "icmp"]), default=d("any"),
                         show_default=create),
            click.option("--ports", default=None, help="tcp/udp ports: 22, 80-443 or 22,80"),
            click.option("--cidr", default=None, help="remote addresses (IPv4 CIDR); none: any"),
            click.option("--peer-secgroup", "peer_secgroup", default=None,
                         help="remote side: the guests of this security group (instead of --cidr)"),
            click.option("--priority", type=click.IntRange(1, 100), default=d(1), show_default=create,
                         help="1..100, the larger wins"),
            click.option("--desc", "description", default=None),
        ]):
            fn = opt(fn)
        return fn
    return deco


def _rule_body(rule: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rule.items() if v is not None}


@click.command("secgroup-add-rule")
@click.argument("secgroup")
@click.argument("positional", nargs=-1, metavar="[DIRECTION PROTOCOL ACTION PRIORITY]")
@_rule_options(True)
@output_options
@click.pass_obj
def secgroup_add_rule(obj: Any, secgroup: str, positional: tuple[str, ...], **rule: Any) -> None:
    """Add a rule to a security group (shows the group): SG in tcp allow 10 --ports 22 as Cloudpods'
    climc, or SG --direction in --protocol tcp ..."""
    if positional:
        if len(positional) != 4:
            raise click.UsageError("give all of DIRECTION PROTOCOL ACTION PRIORITY (e.g. in tcp allow 10), or none")
        d, p, a, pr = positional
        for val, allowed, what in ((d, ("in", "out"), "DIRECTION"), (p, ("any", "tcp", "udp", "icmp"), "PROTOCOL"),
                                   (a, ("allow", "deny"), "ACTION")):
            if val not in allowed:
                raise click.BadParameter(f"{val!r} is not one of {', '.join(allowed)}", param_hint=what)
        if not pr.isdigit() or not 1 <= int(pr) <= 100:
            raise click.BadParameter(f"{pr!r} is not 1..100", param_hint="PRIORITY")
        rule.update(direction=d, protocol=p, action=a, priority=int(pr))
    show_object(obj.client().post(S, f"/secgroups/{secgroup}/add-rule", json=_rule_body(rule))["secgroup"])


def parse_rule(text: str) -> dict[str, Any]:
    """Cloudpods' rule string, ``in|out:allow|deny [CIDR|IP] any|icmp|tcp|udp [PORTS]`` (e.g.
    ``in:allow tcp 22``, ``out:deny 10.0.0.0/8 any``, ``in:allow 192.168.1.5 udp 53,123``); the
    server validates the CIDR and the ports as for the options."""
    import ipaddress

    hint = "RULE"
    direction, sep, rest = text.strip().partition(":")
    if not sep or direction not in ("in", "out"):
        raise click.BadParameter(f"{text!r}: a rule starts with in: or out: (e.g. 'in:allow tcp 22')", param_hint=hint)
    words = rest.split()
    if not words or words[0] not in ("allow", "deny"):
        raise click.BadParameter(f"{text!r}: after {direction}: comes allow or deny", param_hint=hint)
    out: dict[str, Any] = {"direction": direction, "action": words.pop(0)}
    if words:
        try:
            ipaddress.ip_network(words[0], strict=False)
            out["cidr"] = words.pop(0)
        except ValueError:
            pass
    if not words or words[0] not in ("any", "icmp", "tcp", "udp"):
        raise click.BadParameter(f"{text!r}: give the protocol: any, icmp, tcp or udp (tcp/udp then PORTS)",
                                 param_hint=hint)
    out["protocol"] = words.pop(0)
    if words and out["protocol"] in ("tcp", "udp"):
        out["ports"] = words.pop(0)
    if words:
        raise click.BadParameter(f"{text!r}: {' '.join(words)!r} after the "
                                 f"{'ports' if 'ports' in out else 'protocol'} is not part of a rule", param_hint=hint)
    return out


@click.command("secgroup-rule-create")
@click.argument("secgroup")
@click.argument("rule_text", required=False, metavar="[RULE]")
@_rule_options(True)
@output_options
@click.pass_obj
def secgroup_rule_create(obj: Any, secgroup: str, rule_text: str | None, **rule: Any) -> None:
    """Create a rule in a security group; applied on the hosts of its servers within a second.
    RULE is Cloudpods' rule string: in|out:allow|deny [CIDR|IP] any|icmp|tcp|udp [PORTS], e.g.
    'in:allow tcp 22' (quoted); or give --direction/--action/--protocol/--ports/--cidr."""
    if rule_text is not None:
        if rule.get("ports") is not None or rule.get("cidr") is not None:
            raise click.UsageError("RULE names the ports and addresses: give RULE or --ports/--cidr, not both")
        rule.update(parse_rule(rule_text))
    body = {"secgroup_id": secgroup, **_rule_body(rule)}
    show_object(obj.client().post(S, "/secgrouprules", json={"secgrouprule": body})["secgrouprule"])


@click.command("secgroup-rule-update")
@click.argument("ident")
@_rule_options(False)
@output_options
@click.pass_obj
def secgroup_rule_update(obj: Any, ident: str, **rule: Any) -> None:
    """Change a security group rule."""
    body = _rule_body(rule)
    if not body:
        raise click.UsageError("nothing to update: give at least one option")
    show_object(obj.client().put(S, f"/secgrouprules/{ident}", json={"secgrouprule": body})["secgrouprule"])


secgroup_rule_delete = make_delete("secgroup-rule-delete", "secgrouprules", "secgrouprule",
                                   "Delete security group rules")
secgroup_rule_show = make_show("secgroup-rule-show", "secgrouprules", "secgrouprule", "Show a security group rule")
secgroup_rule_list = make_list("secgroup-rule-list", "secgrouprules",
                               ["id", "secgroup_id", "direction", "priority", "action", "protocol", "ports", "cidr",
                                "peer_secgroup_id"], "List security group rules", [("secgroup", "secgroup_id")])


@click.command("eip-create")
@click.argument("name")
@click.argument("network_arg", metavar="[NETWORK]", required=False)
@click.option("--network", default=None, help="The eip network (or the NETWORK positional)")
@click.option("--manager", default=None, help="Cloudprovider to allocate the elastic IP in (a cloud account's)")
@click.option("--cloudregion", "--region", "cloudregion", default=None,
              help="Cloud region to allocate in (default: the account's default or only region)")
@click.option("--bandwidth", type=int, default=0, help="Bandwidth in Mbps (0: unlimited)")
@click.option("--ip-addr", "--ip", "ip", default=None, help="This address of the network (default: any free one)")
@click.option("--charge-type", type=click.Choice(["traffic", "bandwidth"]), default=None,
              help="Bandwidth charge type  [default: bandwidth]")
@wait_options()
@output_options
@click.pass_obj
def eip_create(obj: Any, name: str, network_arg: str | None, network: str | None, manager: str | None,
               cloudregion: str | None, bandwidth: int, ip: str | None, charge_type: str | None, wait: bool = False,
               wait_timeout: float = 900.0) -> None:
    """Allocate an elastic IP: from an eip network (NAME NETWORK or NAME --network NET), or in a
    cloud (--manager/--region), as Cloudpods."""
    body: dict[str, Any] = {"name": name, "bandwidth": bandwidth}
    if charge_type:
        body["charge_type"] = charge_type
    if manager or cloudregion:
        if network or network_arg or ip:
            raise click.UsageError("a cloud's elastic IP (--manager/--region) takes no network nor --ip-addr")
        body.update({k: v for k, v in (("manager", manager), ("cloudregion", cloudregion)) if v})
    else:
        if bool(network_arg) == bool(network):
            raise click.UsageError("give the network once: NAME NETWORK or NAME --network NETWORK "
                                   "(or --manager/--region for a cloud's elastic IP)")
        body["network"] = network or network_arg
    if ip:
        body["ip_addr"] = ip
    eip = obj.client().post(S, "/eips", json={"eip": body})["eip"]
    _eip_done(obj, eip, "EipAllocateTask", set(), wait, wait_timeout)


def _eip_task_ids(obj: Any, ident: str, task_name: str, wait: bool) -> tuple[dict[str, Any], set[str]]:
    """Before a verb on a cloud's eip (its work runs as a task the answer does not name): the eip and
    the ids of its ``task_name`` tasks so far, so --wait can tell which task the verb queued."""
    if not wait:
        return {}, set()
    from climc.wait import tasks_on

    eip = obj.client().get(S, f"/eips/{ident}")["eip"]
    return eip, tasks_on(obj.client(), eip["id"], task_name) if eip.get("manager_id") else set()


def _eip_done(obj: Any, answer: dict[str, Any], task_name: str, before: set[str], wait: bool,
              timeout: float) -> None:
    """Show the eip; with --wait and a cloud's eip, follow the task the verb queued first (an eip
    network's eip is done when the answer comes) and show the eip as it ended."""
    eip = answer.get("eip", answer)
    if wait and eip.get("manager_id"):
        from climc.wait import Target, follow, tasks_on
        from core.errors import ResourceNotFoundError

        c = obj.client()
        task = next(iter(sorted(tasks_on(c, eip["id"], task_name) - before)), "")
        follow(c, [Target(f"eip {eip.get('name') or eip['id']}", task)], timeout)
        try:
            eip = c.get(S, f"/eips/{eip['id']}")["eip"]
        except ResourceNotFoundError:  # dissociate --auto-delete: released
            click.echo(f"eip {eip.get('name') or eip['id']}: released", err=True)
    show_object(eip)


@click.command("eip-update")
@click.argument("ident")
@click.option("--name", default=None, help="New name")
@click.option("--desc", "--description", "desc", default=None, help="Description")
@click.option("--bandwidth", type=click.IntRange(0), default=None, help="Bandwidth in Mbps (0: unlimited)")
@click.option("--auto-dellocate", type=click.Choice(["true", "false"]), default=None,
              help="Release the elastic IP when it is dissociated from its server (e.g. the server's delete)")
@output_options
@click.pass_obj
def eip_update(obj: Any, ident: str, name: str | None, desc: str | None, bandwidth: int | None,
               auto_dellocate: str | None) -> None:
    """Update an elastic IP (Cloudpods' eip-update)."""
    body = {k: v for k, v in (("name", name), ("description", desc), ("bandwidth", bandwidth),
                              ("auto_dellocate", auto_dellocate)) if v is not None}
    if not body:
        raise click.UsageError("nothing to update: give at least one option")
    show_object(obj.client().put(S, f"/eips/{ident}", json={"eip": body})["eip"])


@click.command("secgroup-update")
@click.argument("ident")
@click.option("--name", default=None, help="New name")
@click.option("--desc", "--description", "desc", default=None, help="Description")
@output_options
@click.pass_obj
def secgroup_update(obj: Any, ident: str, name: str | None, desc: str | None) -> None:
    """Rename a security group or change its description (Cloudpods' secgroup-update)."""
    body = {k: v for k, v in (("name", name), ("description", desc)) if v is not None}
    if not body:
        raise click.UsageError("nothing to update: give --name or --desc")
    show_object(obj.client().put(S, f"/secgroups/{ident}", json={"secgroup": body})["secgroup"])


@click.command("secgroup-clone")
@click.argument("ident")
@click.argument("name")
@click.option("--desc", "--description", "desc", default=None, help="Description (default: the source's)")
@output_options
@click.pass_obj
def secgroup_clone(obj: Any, ident: str, name: str, desc: str | None) -> None:
    """Copy security group IDENT and its rules into a new group NAME of your project (Cloudpods'
    secgroup-clone); a rule naming IDENT itself ("from the same group") names the copy."""
    body = {"name": name, **({"description": desc} if desc is not None else {})}
    show_object(obj.client().post(S, f"/secgroups/{ident}/clone", json={"secgroup": body})["secgroup"])


@click.command("eip-associate")
@click.argument("ident")
@click.argument("instance_id")
@click.option("--instance-type", type=click.Choice(["server"]), default="server", show_default=True,
              help="What INSTANCE_ID names (Cloudpods' option; servers only here)")
@wait_options()
@output_options
@click.pass_obj
def eip_associate(obj: Any, ident: str, instance_id: str, instance_type: str, wait: bool = False,
                  wait_timeout: float = 900.0) -> None:
    """Associate an elastic IP with a server (on a KVM host, or of the eip's cloud account)."""
    eip, before = _eip_task_ids(obj, ident, "EipAssociateTask", wait)
    out = obj.client().post(S, f"/eips/{eip.get('id') or ident}/associate",
                            json={"eip": {"instance_id": instance_id, "instance_type": instance_type}})
    _eip_done(obj, out.get("eip") or eip or out, "EipAssociateTask", before, wait, wait_timeout)


@click.command("eip-dissociate")
@click.argument("ident")
@click.option("--auto-delete", is_flag=True, help="Release the elastic IP once dissociated")
@wait_options()
@output_options
@click.pass_obj
def eip_dissociate(obj: Any, ident: str, auto_delete: bool, wait: bool = False, wait_timeout: float = 900.0) -> None:
    """Dissociate an elastic IP from its server."""
    eip, before = _eip_task_ids(obj, ident, "EipDissociateTask", wait)
    out = obj.client().post(S, f"/eips/{eip.get('id') or ident}/dissociate",
                            json={"eip": {"auto_delete": auto_delete}})
    _eip_done(obj, out.get("eip") or eip or out, "EipDissociateTask", before, wait, wait_timeout)


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
