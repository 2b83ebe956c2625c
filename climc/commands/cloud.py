"""Public clouds: cloud accounts, their cloud providers and the images cached in clouds."""
from __future__ import annotations

import time
from typing import Any

import click

from climc.commands.compute_common import S, make_action, make_delete, make_list, make_show, make_update
from climc.output import output_options, show_object

ACCOUNT_COLUMNS = ["id", "name", "provider", "account", "status", "sync_status", "enabled", "last_sync",
                   "guest_count"]

cloud_account_list = make_list("cloud-account-list", "cloudaccounts", ACCOUNT_COLUMNS, "List cloud accounts",
                               [("provider", "provider"), ("status", "status")])
cloud_account_show = make_show("cloud-account-show", "cloudaccounts", "cloudaccount",
                               "Show a cloud account (its secret is never shown)")
cloud_account_delete = make_delete("cloud-account-delete", "cloudaccounts", "cloudaccount",
                                   "Delete disabled cloud accounts and what their sync made here (the cloud keeps it)")
cloud_account_enable = make_action("cloud-account-enable", "cloudaccounts", "cloudaccount", "enable",
                                   "Enable cloud accounts (periodic sync)")
cloud_account_disable = make_action("cloud-account-disable", "cloudaccounts", "cloudaccount", "disable",
                                    "Disable cloud accounts (no sync)")
cloud_account_update = make_update("cloud-account-update", "cloudaccounts", "cloudaccount",
                                   [("name", str), ("description", str), ("sync_interval_seconds", int)],
                                   "Update a cloud account")
cloudprovider_list = make_list("cloudprovider-list", "cloudproviders",
                               ["id", "name", "provider", "cloudaccount", "account", "status", "last_sync"],
                               "List cloud providers (one per account or sub-account)",
                               [("cloudaccount", "cloudaccount")])


def sync_wait_options(f: Any) -> Any:
    """``--wait``/``--timeout`` of the verbs that start a sync (cloud-account-sync, cloud-account-create-*)."""
    f = click.option("--timeout", type=click.FloatRange(min=0.1), default=1800.0, show_default=True,
                     help="With --wait: give up waiting after this many seconds (the sync goes on)")(f)
    return click.option("--wait", is_flag=True, help="Wait for the sync to end, show its phases and its report; "
                        "exit 1 if the account ends up not connected")(f)


def account_create_options(f: Any) -> Any:
    """The last options of every ``cloud-account-create-*`` (after its own and ``--sync-interval``):
    --no-sync, --desc, --wait/--timeout, the output flags; they reach ``create_account`` as they are."""
    f = output_options(click.pass_obj(f))
    f = sync_wait_options(f)
    f = click.option("--desc", default=None)(f)
    return click.option("--no-sync", is_flag=True, help="Do not start the first sync now")(f)


def create_account(obj: Any, provider: str, name: str, account: str, secret: str, access_url: str,
                   options: dict[str, Any], *, no_sync: bool, sync_interval: int | None, desc: str | None,
                   wait: bool, timeout: float) -> None:
    """POST the account (every ``cloud-account-create-*``); with --wait, follow its first sync to the end
    and show its report."""
    body: dict[str, Any] = {"name": name, "provider": provider, "account": account, "secret": secret,
                            "access_url": access_url, "options": options, "auto_sync": not no_sync}
    if sync_interval is not None:
        body["sync_interval_seconds"] = sync_interval
    if desc:
        body["description"] = desc
    if wait and not body.get("auto_sync"):
        raise click.UsageError("--wait follows the first sync: drop --no-sync (or --wait)")
    acct = obj.client().post(S, "/cloudaccounts", json={"cloudaccount": body})["cloudaccount"]
    if not wait:
        show_object(acct)
        return
    click.echo(f"cloud account {acct.get('name')}: created; first sync queued", err=True)
    await_sync(obj.client(), acct["id"], acct.get("last_sync"), timeout)


cachedimage_list = make_list("cachedimage-list", "cachedimages",
                             ["id", "name", "external_id", "status", "os_type", "size", "manager"],
                             "List images cached in clouds (usable as server-create --disk on their cloud)")


@click.command("cloud-account-create-aws")
@click.argument("name")
@click.option("--access-key", required=True, help="AWS access key id")
@click.option("--secret", prompt=True, hide_input=True, envvar="CLOUDPODS_CLOUD_SECRET",
              help="AWS secret access key (prompted, or $CLOUDPODS_CLOUD_SECRET; avoid it on the command line)")
@click.option("--access-url", default="", help="Endpoint URL (empty: AWS itself)")
@click.option("--region", "regions", multiple=True, help="Regions to sync (repeatable; default: every region)")
@click.option("--image-owner", "image_owners", multiple=True,
              help="Whose images to sync: self (default), amazon, an account id (repeatable)")
@click.option("--sync-interval", type=int, default=None, help="Seconds between periodic syncs (0: none)")
@click.option("--page-size", type=click.IntRange(5, 1000), default=None,
              help="Objects per listing call (default 500)")
@account_create_options
def cloud_account_create_aws(obj: Any, name: str, access_key: str, secret: str, access_url: str,
                             regions: tuple[str, ...], image_owners: tuple[str, ...], page_size: int | None,
                             **account: Any) -> None:
    """Create an AWS cloud account (the keys are checked against the cloud first)."""
    options: dict[str, Any] = {}
    if regions:
        options["regions"] = list(regions)
    if image_owners:
        options["image_owners"] = list(image_owners)
    if page_size:
        options["page_size"] = page_size
    create_account(obj, "Aws", name, access_key, secret, access_url, options, **account)


@click.command("cloud-account-create-cloudpods")
@click.argument("name")
@click.option("--auth-url", "access_url", required=True, help="The other controller's URL (http(s)://host:port)")
@click.option("--user", required=True, help="A user of the other controller")
@click.option("--password", prompt=True, hide_input=True, envvar="CLOUDPODS_CLOUD_SECRET",
              help="Its password (prompted, or $CLOUDPODS_CLOUD_SECRET)")
@click.option("--project", default=None, help="Project there (default: system)")
@click.option("--domain", default=None, help="Domain there (default: Default)")
@click.option("--sync-interval", type=int, default=None, help="Seconds between periodic syncs (0: none)")
@account_create_options
def cloud_account_create_cloudpods(obj: Any, name: str, access_url: str, user: str, password: str,
                                   project: str | None, domain: str | None, **account: Any) -> None:
    """Create an account on another Cloudpods controller (the login is checked first)."""
    options = {k: v for k, v in (("project", project), ("domain", domain)) if v}
    create_account(obj, "Cloudpods", name, user, password, access_url, options, **account)


@click.command("cloud-account-update-credential")
@click.argument("ident")
@click.option("--access-key", required=True)
@click.option("--secret", prompt=True, hide_input=True, envvar="CLOUDPODS_CLOUD_SECRET")
@output_options
@click.pass_obj
def cloud_account_update_credential(obj: Any, ident: str, access_key: str, secret: str) -> None:
    """Replace a cloud account's keys (checked against the cloud first; refused keys change nothing)."""
    out = obj.client().post(S, f"/cloudaccounts/{ident}/update-credential",
                            json={"cloudaccount": {"account": access_key, "secret": secret}})
    show_object(out.get("cloudaccount", out))


@click.command("cloud-account-sync")
@click.argument("ident")
@click.option("--region", "regions", multiple=True, help="Only sync this region (repeatable; deletes nothing)")
@click.option("--resources", multiple=True, type=click.Choice(["compute", "network", "eip", "image"]),
              help="Only sync these resource types (repeatable)")
@click.option("--force", is_flag=True, help="Accepted for Cloudpods' syntax: every sync here is a full one")
@click.option("--full-sync", is_flag=True, help="Accepted for Cloudpods' syntax: every sync here is a full one")
@sync_wait_options
@output_options
@click.pass_obj
def cloud_account_sync(obj: Any, ident: str, regions: tuple[str, ...], resources: tuple[str, ...], force: bool,
                       full_sync: bool, wait: bool, timeout: float) -> None:
    """Sync a cloud account now: a task (task-show <sync_task_id>); exit 1 when it ends partial or unhealthy."""
    c = obj.client()
    before = c.get(S, f"/cloudaccounts/{ident}")["cloudaccount"]
    body: dict[str, Any] = {k: v for k, v in (("region", list(regions)), ("resources", list(resources)),
                                              ("force", force), ("full_sync", full_sync)) if v}
    out = c.post(S, f"/cloudaccounts/{ident}/sync", json={"cloudaccount": body})
    acct = out.get("cloudaccount", out)
    if not wait:
        show_object(acct)
        return
    await_sync(c, ident, before.get("last_sync"), timeout)


def await_sync(c: Any, ident: str, last_sync: Any, timeout: float) -> None:
    """Until the account's sync after ``last_sync`` ends: its phases on stderr, then its report;
    exit 1 when the account is not connected (partial or unhealthy) or time runs out."""
    end = time.monotonic() + timeout
    last_phase = ""
    while True:
        acct = c.get(S, f"/cloudaccounts/{ident}")["cloudaccount"]
        if acct.get("sync_status") == "idle" and acct.get("last_sync") != last_sync:
            break
        phase = (acct.get("sync_report") or {}).get("phase", "")
        if acct.get("sync_status") == "syncing" and phase and phase != last_phase:
            click.echo(f"syncing {phase} ...", err=True)
            last_phase = phase
        if time.monotonic() > end:
            raise click.ClickException(f"cloud account {ident}: the sync did not end in {timeout:.0f} s "
                                       f"(it goes on; see cloud-account-show)")
        time.sleep(0.5)
    report = acct.get("sync_report") or {}
    rows = {k: {x: v.get(x) for x in ("seen", "created", "updated", "deleted")} | {"errors": len(v.get("errors", []))}
            for k, v in (report.get("kinds") or {}).items()}
    show_object({"status": acct.get("status"), "reason": acct.get("status_reason", ""),
                 "sync_task_id": acct.get("sync_task_id") or "", "seconds": report.get("seconds"),
                 "changed": report.get("changed"), **rows})
    if acct.get("status") != "connected":
        raise click.ClickException(f"cloud account {acct.get('name')} is {acct.get('status')}: "
                                   f"{acct.get('status_reason') or 'see cloud-account-show'}")
