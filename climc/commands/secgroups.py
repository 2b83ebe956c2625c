"""Security groups and their rules (Cloudpods' positional and --flag forms of a rule)."""
from __future__ import annotations

from typing import Any

import click

from climc.commands.compute_common import S, make_delete, make_list, make_show, send_update
from climc.output import output_options, show_object

secgroup_list = make_list("secgroup-list", "secgroups", ["id", "name", "rules", "created_at"],
                          "List security groups")
secgroup_show = make_show("secgroup-show", "secgroups", "secgroup", "Show a security group and its rules")
secgroup_delete = make_delete("secgroup-delete", "secgroups", "secgroup", "Delete unused security groups")


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
    send_update(obj, "secgrouprules", "secgrouprule", ident, _rule_body(rule))


secgroup_rule_delete = make_delete("secgroup-rule-delete", "secgrouprules", "secgrouprule",
                                   "Delete security group rules")
secgroup_rule_show = make_show("secgroup-rule-show", "secgrouprules", "secgrouprule", "Show a security group rule")
secgroup_rule_list = make_list("secgroup-rule-list", "secgrouprules",
                               ["id", "secgroup_id", "direction", "priority", "action", "protocol", "ports", "cidr",
                                "peer_secgroup_id"], "List security group rules", [("secgroup", "secgroup_id")])


@click.command("secgroup-update")
@click.argument("ident")
@click.option("--name", default=None, help="New name")
@click.option("--desc", "--description", "desc", default=None, help="Description")
@output_options
@click.pass_obj
def secgroup_update(obj: Any, ident: str, name: str | None, desc: str | None) -> None:
    """Rename a security group or change its description (Cloudpods' secgroup-update)."""
    send_update(obj, "secgroups", "secgroup", ident, {"name": name, "description": desc}, "give --name or --desc")


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
