"""Help for options whose command gave none: one text per option name, so every option of every
climc command says what it does (applied when a command is loaded, climc.group.ClimcGroup); and the
names a user reads: positionals' metavars, and both spellings of options that had two."""
from __future__ import annotations

import click

HELP: dict[str, str] = {
    # alert rules (monitor-commonalert-config)
    "period": "How far back the rule reads: 1m..24h", "comparator": "> >= < <= == (or gt ge lt le eq)",
    "threshold": "The number the reduced metric is compared with",
    "for": "How long the condition must hold before alerting (e.g. 2m; 0: at once)",
    "level": "Severity: normal, important or fatal",
    "desc": "Description", "description": "Description", "name": "Name (new name on update)",
    "order": "Sort direction", "scope": "Whose rows: system, domain or project",
    "details": "Include joined fields (names of referenced rows)", "limit": "Page size", "offset": "Skip this many",
    "order-by": "Sort field (repeatable)", "search": "Fuzzy name match", "filter-any": "OR the filters instead of AND",
    "pending-delete": "Show the recycle bin instead", "service": "Only records of this service (compute, identity...)",
    "action": "Action (audit: only this action; rules: allow or deny)", "obj-type": "Only records about this type",
    "port": "TCP port of the endpoint", "sync-interval-seconds": "Seconds between periodic syncs (0: none)",
    "access-key": "Access key id", "secret": "Secret key (prompted when not given)",
    "type": "Type (e.g. ec2 for credentials; compute, identity ... for services)",
    "storage": "Storage (id or name) to put it on", "zone": "Zone (id or name)", "url": "URL",
    "interface": "public, internal or admin", "region": "Region id", "domain": "Domain (id or name)",
    "cpu": "vCPUs (quota: count; host: CPU count)", "access-ip": "Management address of the host",
    "access-mac": "MAC address of the host's management NIC", "mem-reserved": "Memory kept for the host (MB)",
    "cpu-reserved": "CPUs kept for the host", "mem-cmtbound": "Memory overcommit ratio",
    "cpu-cmtbound": "CPU overcommit ratio", "protected": "Refuse deletion until unprotected",
    "property": "KEY=VALUE property (repeatable)", "servers": "Number of servers", "ips": "Number of IP addresses",
    "images": "Number of images", "user": "User (id or name)", "group": "Group (id or name)",
    "project": "Project (id or name)", "direction": "in or out", "protocol": "any, tcp, udp or icmp",
    "ncpu": "vCPUs", "src-mac-check": "Drop frames whose source MAC is not the NIC's",
    "src-ip-check": "Drop packets whose source address is not the NIC's", "email": "E-mail address",
    "default-project": "Project used when a login names none", "mtu": "MTU of the wire (bytes)",
    "bandwidth": "Bandwidth (Mbps)", "location": "Where it is (free text)",
    "ipmi-username": "The BMC user (bare metal)", "ipmi-password": "The BMC user's password (stored encrypted)",
    "ipmi-ip-addr": "The BMC's IPMI address (bare metal)",
}


# positionals whose Python name is not what a user should read in usage lines
METAVARS: dict[str, str] = {"ident": "ID", "idents": "ID", "pairs": "KEY=VALUE", "macorip": "INDEX|MAC|IP",
                            "instance_id": "SERVER"}


# one thing, one name: each option takes both spellings (Cloudpods' first), whichever its command declared
ALIASES: tuple[tuple[str, str], ...] = (("--desc", "--description"),)


def fill_help(cmd: click.Command) -> click.Command:
    for p in cmd.params:
        if isinstance(p, click.Option):
            taken = {o for q in cmd.params if isinstance(q, click.Option) for o in q.opts}
            for a, b in ALIASES:
                if a in p.opts and b not in taken:
                    p.opts.append(b)
                elif b in p.opts and a not in taken:
                    p.opts.append(a)
        if isinstance(p, click.Argument) and p.metavar is None and (p.name or "") in METAVARS:
            var = METAVARS[p.name or ""]
            var = var if p.required else f"[{var}]"
            p.metavar = var + ("..." if p.nargs != 1 else "")
        if isinstance(p, click.Option) and not p.help and not p.hidden:
            key = max((o.lstrip("-") for o in p.opts if o.startswith("--")), key=len, default=p.name or "")
            p.help = HELP.get(key) or HELP.get((p.name or "").replace("_", "-")) or \
                f"Value of {(p.name or key).replace('_', ' ')}"
    return cmd


def hide_old_spellings(cmd: click.Command) -> None:
    """Help lists only the name to use of an option with an old spelling (climc.vocabulary); the old
    one still parses (click reads ``opts`` when it parses, this only narrows them while help is drawn)."""
    from climc.vocabulary import old_options

    old = old_options(cmd.name or "")
    for p in cmd.params:
        if not isinstance(p, click.Option) or getattr(p, "_old_hidden", False) or not old.keys() & set(p.opts):
            continue
        record = p.get_help_record

        def narrowed(ctx: click.Context, p: click.Option = p, record: object = record) -> tuple[str, str] | None:
            kept = p.opts
            p.opts = [o for o in kept if o not in old]
            try:
                return record(ctx)  # type: ignore[operator, no-any-return]
            finally:
                p.opts = kept
        p.get_help_record = narrowed  # type: ignore[method-assign]
        p._old_hidden = True  # type: ignore[attr-defined]
