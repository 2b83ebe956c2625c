"""One vocabulary: where a command or option has two spellings, the one Cloudpods' climc uses for that
command is the name (help shows only it); the other still works for a release, and using it prints
one line on stderr naming the new one (stdout is untouched, so scripts that parse it keep working).

Where Cloudpods has neither spelling, ``--desc`` wins over ``--description`` (what Cloudpods says on
nearly every command). tests/unit/climc/test_vocabulary.py checks this table against Cloudpods' syntax
(tests/data/cloudpods_climc_syntax.json). Plain data: read on every command, so it costs no import.
"""
from __future__ import annotations

from climc.command_table import ALIASES

# old command name -> the name to use: ours, now that Cloudpods' names (command_table.ALIASES) are the names
COMMANDS: dict[str, str] = {old: new for new, old in ALIASES.items()}

# on every command, unless the command's own table below prefers the other spelling
EVERYWHERE: dict[str, str] = {"--description": "--desc"}

# command -> {old option spelling: the spelling to use}
OPTIONS: dict[str, dict[str, str]] = {
    "eip-create": {"--cloudregion": "--region", "--ip": "--ip-addr"},
    "host-create": {"--ipmi-ip": "--ipmi-addr", "--ipmi-username": "--ipmi-user", "--bmc-username": "--ipmi-user",
                    "--ipmi-password": "--ipmi-passwd", "--bmc-password": "--ipmi-passwd"},
    "host-update": {"--desc": "--description"},
    "image-download": {"--file": "--output"},
    "image-list": {"--disk-format": "--format"},
    "image-update": {"--desc": "--description"},
    "network-create": {"--guest-gateway": "--gateway", "--guest-dns": "--dns", "--vlan": "--vlan-id"},
    "network-update": {"--guest-gateway": "--gateway", "--guest-dns": "--dns", "--guest-ip-start": "--start-ip",
                       "--guest-ip-end": "--end-ip", "--guest-ip-mask": "--netmask"},
    "quota-set": {"--mem-spec": "--memory"},
    "scheduler-forecast": {"--vmem": "--mem-spec", "--iso": "--cdrom", "--prefer-host": "--host",
                           "--prefer-zone": "--zone", "--prefer-region": "--region", "--prefer-manager": "--manager",
                           "--secgroup": "--secgroups"},
    "secgroup-add-rule": {"--desc": "--description"},
    "server-change-config": {"--mem-spec": "--vmem"},
    "server-create": {"--vmem": "--mem-spec", "--cdrom": "--iso", "--prefer-host": "--host", "--prefer-zone": "--zone",
                      "--prefer-region": "--region", "--prefer-manager": "--manager", "--secgroup": "--secgroups"},
    "server-live-migrate": {"--host": "--prefer-host"},
    "server-migrate": {"--host": "--prefer-host"},
    "server-set-boot-index": {"--disk": "--disks", "--cdrom": "--cdroms"},
    "server-stop": {"--is-force": "--force"},
}


def old_options(command: str) -> dict[str, str]:
    """Old spelling -> new one, for ``command`` (its canonical name)."""
    own = OPTIONS.get(command, {})
    out = {old: new for old, new in EVERYWHERE.items() if old not in own.values()}
    out.update(own)
    return out


def notes(command: str, used_name: str, args: list[str]) -> list[str]:
    """One line per old spelling in this command line (``args``: what follows the command name)."""
    out = []
    if used_name in COMMANDS:
        out.append(f"climc: {used_name} is an old name: use {COMMANDS[used_name]} (the old one goes in a later "
                   "release)")
    old = old_options(command)
    seen: set[str] = set()
    for a in args:
        if a == "--":
            break
        flag = a.split("=", 1)[0]
        if flag in old and flag not in seen:
            seen.add(flag)
            out.append(f"climc: {used_name} {flag} is an old spelling: use {old[flag]} (the old one goes in a "
                       "later release)")
    return out
