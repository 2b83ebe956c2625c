"""Alert rules, their history and notify configs (Cloudpods' monitor-commonalert-*,
monitor-alertrecord-*, notify-config-*)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from climc.commands.compute_common import S, make_action, make_delete, make_list, make_show, make_update
from climc.output import output_options, show_object

commonalert_list = make_list(
    "monitor-commonalert-list", "commonalerts",
    ["id", "name", "scope", "metric", "reduce", "comparator", "threshold", "period", "for", "level", "enabled",
     "alert_state"], "List alert rules")
commonalert_show = make_show("monitor-commonalert-show", "commonalerts", "commonalert",
                             "Show an alert rule with each watched object's state")
commonalert_delete = make_delete("monitor-commonalert-delete", "commonalerts", "commonalert",
                                 "Delete alert rules (their records stay as history)")
commonalert_enable = make_action("monitor-commonalert-enable", "commonalerts", "commonalert", "enable",
                                 "Evaluate these alert rules again")
commonalert_disable = make_action("monitor-commonalert-disable", "commonalerts", "commonalert", "disable",
                                  "Stop evaluating these alert rules (their states are forgotten)")
commonalert_config = make_update(
    "monitor-commonalert-config", "commonalerts", "commonalert",
    [("period", str), ("comparator", str), ("threshold", str), ("for", str), ("level", str)],
    "Change an alert rule's window (--period 5m), comparator, threshold, for-duration or level")
alertrecord_list = make_list(
    "monitor-alertrecord-list", "alertrecords",
    ["id", "created_at", "alert_name", "res_type", "res_name", "prev_state", "state", "value", "comparator",
     "threshold", "level", "notify_status"],
    "List alert history: every state change of every rule (newest first with --order desc)",
    [("alert-id", "alert_id"), ("state", "state"), ("res-id", "res_id"), ("res-type", "res_type"),
     ("level", "level")])
alertrecord_show = make_show("monitor-alertrecord-show", "alertrecords", "alertrecord",
                             "Show an alert record and how its notifications went")
notify_config_list = make_list("notify-config-list", "notifyconfigs", ["id", "name", "type", "created_at"],
                               "List notify configs (secrets never shown)", [("type", "type")])
notify_config_show = make_show("notify-config-show", "notifyconfigs", "notifyconfig",
                               "Show a notify config (its password/secret only as *_set)")
notify_config_delete = make_delete("notify-config-delete", "notifyconfigs", "notifyconfig",
                                   "Delete notify configs no alert rule uses")
notify_config_update = make_update("notify-config-update", "notifyconfigs", "notifyconfig",
                                   [("name", str), ("description", str)], "Rename a notify config")


@click.command("monitor-commonalert-create")
@click.argument("name")
@click.option("--metric", required=True, help="cpu_percent, mem_mb, disk_read_bps, ... (host: load_1m, "
              "disk_used_percent)")
@click.option("--comparator", required=True, help="> >= < <= == (or gt ge lt le eq)")
@click.option("--threshold", required=True, help="The number the reduced value is compared with")
@click.option("--period", "--window", "window", default="5m", show_default=True,
              help="How far back the reducer reads (1m..24h)")
@click.option("--for", "for_", default="0", show_default=True,
              help="How long the condition must hold before the rule alerts (pending until then)")
@click.option("--reduce", type=click.Choice(["avg", "max", "min"]), default="avg", show_default=True,
              help="How the window's minute samples become one value")
@click.option("--level", type=click.Choice(["normal", "important", "fatal"]), default="normal", show_default=True,
              help="Severity, carried by the record and every notification")
@click.option("--scope", type=click.Choice(["project", "server", "host"]), default="project", show_default=True,
              help="project: every server of your project; server/host: the one named by --server/--host")
@click.option("--server", default=None, help="The server watched (scope server)")
@click.option("--host", default=None, help="The host watched (scope host; system admins)")
@click.option("--notify-config", "notify_configs", multiple=True, help="Notify config id or name (repeatable)")
@click.option("--disabled", is_flag=True, help="Create it without evaluating it yet")
@click.option("--desc", default=None)
@output_options
@click.pass_obj
def commonalert_create(obj: Any, name: str, metric: str, comparator: str, threshold: str, window: str, for_: str,
                       reduce: str, level: str, scope: str, server: str | None, host: str | None,
                       notify_configs: tuple[str, ...], disabled: bool, desc: str | None) -> None:
    """Create an alert rule: REDUCE(METRIC) over --period compared with --threshold."""
    if scope in ("server", "host") and not (server if scope == "server" else host):
        raise click.UsageError(f"--scope {scope} needs --{scope} NAME")
    body: dict[str, Any] = {"name": name, "metric": metric, "comparator": comparator, "threshold": threshold,
                            "window": window, "for": for_, "reduce": reduce, "level": level, "scope": scope,
                            "notify_configs": list(notify_configs), "enabled": not disabled}
    if server:
        body["server"] = server
    if host:
        body["host"] = host
    if desc:
        body["description"] = desc
    show_object(obj.client().post(S, "/commonalerts", json={"commonalert": body})["commonalert"])


def _secret(value: str | None, what: str, required: bool) -> str:
    """``@FILE`` reads it from a file (keeps it out of the process list); nothing given: prompt."""
    if value and value.startswith("@"):
        return Path(value[1:]).expanduser().read_text().strip()
    if value:
        return value
    if not required:
        return ""
    return str(click.prompt(what, hide_input=True))


@click.command("notify-config-create")
@click.argument("name")
@click.option("--type", "type_", type=click.Choice(["email", "webhook"]), required=True)
@click.option("--hostname", default=None, help="email: the SMTP server")
@click.option("--hostport", type=int, default=587, show_default=True, help="email: its port")
@click.option("--username", default="", help="email: SMTP user (empty: no AUTH)")
@click.option("--password", default=None, help="email: SMTP password, or @FILE")
@click.option("--sender", default=None, help="email: the From address")
@click.option("--to", "to", multiple=True, help="email: a recipient (repeatable)")
@click.option("--starttls/--no-starttls", default=True, show_default=True, help="email: upgrade with STARTTLS")
@click.option("--ssl", "ssl_", is_flag=True, help="email: implicit TLS (port 465) instead of STARTTLS")
@click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="email: a PEM file of CAs to trust for the SMTP server (besides the system's)")
@click.option("--url", default=None, help="webhook: where to POST")
@click.option("--secret", default=None, help="webhook: the HMAC-SHA256 key (16+ chars), or @FILE; prompted if absent")
@click.option("--desc", default=None)
@output_options
@click.pass_obj
def notify_config_create(obj: Any, name: str, type_: str, hostname: str | None, hostport: int, username: str,
                         password: str | None, sender: str | None, to: tuple[str, ...], starttls: bool, ssl_: bool,
                         ca_cert: str | None, url: str | None, secret: str | None, desc: str | None) -> None:
    """Create where alerts are sent: mail through SMTP, or a signed webhook."""
    content: dict[str, Any]
    if type_ == "email":
        if not hostname or not sender or not to:
            raise click.UsageError("--type email needs --hostname, --sender and at least one --to")
        content = {"hostname": hostname, "hostport": hostport, "username": username, "sender": sender,
                   "to": list(to), "starttls": starttls, "ssl": ssl_,
                   "password": _secret(password, "SMTP password", bool(username))}
        if ca_cert:
            content["ca_cert"] = Path(ca_cert).read_text()
    else:
        if not url:
            raise click.UsageError("--type webhook needs --url")
        content = {"url": url, "secret": _secret(secret, "webhook secret", True)}
    body: dict[str, Any] = {"name": name, "type": type_, "content": content}
    if desc:
        body["description"] = desc
    show_object(obj.client().post(S, "/notifyconfigs", json={"notifyconfig": body})["notifyconfig"])
