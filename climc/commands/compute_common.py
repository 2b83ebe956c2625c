"""Shared pieces of the region (compute) commands: list flags, generic verbs, batch verbs.

No heavy imports here: httpx arrives through ``obj.client()``, rich through climc.output.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

from climc.output import output_options, show_list, show_object

S = "compute_v2"


def names_of(plural: str, service: str = S) -> Any:
    """``shell_complete=`` for an argument naming ``plural`` rows: TAB lists their names (climc.completion,
    imported only when a shell asks)."""
    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> Any:
        from climc.completion import resource_completer

        return resource_completer(service, f"/{plural}")(ctx, param, incomplete)
    return complete


def _tags(values: tuple[str, ...], prefix: str = "") -> list[tuple[str, list[str]]]:
    """Cloudpods' ``--tags "k=v;k2"`` (repeatable): [(key, [values])]; a bare key matches any value."""
    out: list[tuple[str, list[str]]] = []
    for v in values:
        for pair in filter(None, (p.strip() for p in v.split(";"))):
            k, sep, val = pair.partition("=")
            if not k:
                raise click.BadParameter(f"{pair!r}: give KEY=VALUE or KEY", param_hint="--tags")
            out.append((prefix + k, [val] if sep else []))
    return out


def owner_flags(skip: tuple[str, ...] = ()) -> list[Callable[..., Any]]:
    """Cloudpods' BaseListOptions about whose rows and which fields (identity lists take these too);
    ``skip``: the ones (by first option name, e.g. "--admin") a command defines itself."""
    return [opt for name, opt in (
        ("--admin", click.option("--admin", is_flag=True, help="Every project's rows you may see (scope system)")),
        ("--system", click.option("--system", is_flag=True,
                                  help="Also system resources (Cloudpods; every row is listed here)")),
        ("--project", click.option("--project", "--tenant", "tenant", default=None,
                                   help="Only rows of this project (id or name)")),
        ("--project-domain", click.option("--project-domain", default=None,
                                          help="Only rows of projects in this domain")),
        ("--tags", click.option("--tags", "tags", multiple=True, metavar="K=V;K2",
                                help="Only rows with these metadata tags (K=V pairs or keys, ';'-separated, "
                                     "repeatable)")),
        ("--user-tags", click.option("--user-tags", multiple=True, metavar="K=V;K2", help="As --tags, for user tags")),
        ("--no-tags", click.option("--no-tags", multiple=True, metavar="K=V;K2", help="Only rows without these tags")),
        ("--field", click.option("--field", "fields", multiple=True,
                                 help="Only these fields in the answer (repeatable)")),
    ) if name not in skip]


def list_flags(f: Callable[..., Any]) -> Callable[..., Any]:
    """The list options every ``*-list`` has, named as in Cloudpods' climc (BaseListOptions)."""
    opts = [
        click.option("--limit", type=int, default=20, show_default=True, help="Page size"),
        click.option("--offset", type=int, default=0, help="Skip this many"),
        click.option("--order-by", multiple=True, help="Sort field (repeatable)"),
        click.option("--order", type=click.Choice(["asc", "desc"]), default=None, help="Sort direction"),
        click.option("--search", default=None, help="Fuzzy name match"),
        click.option("--filter", "filters", multiple=True, help="field.op(args), e.g. status.equals(running)"),
        click.option("--filter-any", is_flag=True, help="OR the filters instead of AND"),
        click.option("--scope", type=click.Choice(["system", "domain", "project", "user", "max"]), default=None,
                     help="Whose rows: system|domain|project, user (yours), max (all you may see)"),
        click.option("--details/--no-details", default=True, help="Joined fields (host, zone, ips...)"),
        click.option("--pending-delete", is_flag=True, help="Show the recycle bin instead"),
    ]
    for opt in reversed(opts[:8] + owner_flags() + opts[8:]):
        f = opt(f)
    return f


def list_params(kw: dict[str, Any], **extra: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"limit": kw.get("limit", 20), "offset": kw.get("offset", 0),
                         "details": "true" if kw.get("details", True) else "false"}
    for k in ("order", "search", "scope", "tenant", "project_domain"):
        if kw.get(k):
            p[k] = kw[k]
    if kw.get("admin") and not kw.get("scope"):
        p["scope"] = "system"
    if kw.get("order_by"):
        p["order_by"] = list(kw["order_by"])
    if kw.get("filters"):
        p["filter"] = list(kw["filters"])
    if kw.get("filter_any"):
        p["filter_any"] = "true"
    if kw.get("pending_delete"):
        p["pending_delete"] = "true"
    if kw.get("fields"):
        p["field"] = list(kw["fields"])
    for key, tags in (("tags", _tags(kw.get("tags", ())) + _tags(kw.get("user_tags", ()), "user:")),
                      ("no_tags", _tags(kw.get("no_tags", ())))):
        for i, (k, vals) in enumerate(tags):
            p[f"{key}.{i}.key"] = k
            if vals:
                p[f"{key}.{i}.value"] = vals
    p.update({k: v for k, v in extra.items() if v not in (None, "", ())})
    return p


def run_list(obj: Any, path: str, key: str, columns: Sequence[str], kw: dict[str, Any], **extra: Any) -> None:
    params = list_params(kw, **extra)
    data = obj.client().get(S, path, params=params)
    show_list(data.get(key, []), columns=columns, total=data.get("total", 0), limit=params["limit"],
              offset=params["offset"])


def batch(obj: Any, idents: Sequence[str], what: str, verb: str, fn: Callable[[str], Any], *,
          wait: bool = False, timeout: float = 900.0, refetch: Callable[[str], Any] | None = None,
          gone: Callable[[str], str] | None = None) -> None:
    """Run ``fn`` per id; continue past failures, then exit 1 naming how many failed (3 when every
    failure was "not found").

    With ``wait``, follow the task each answer points at (climc.wait) and, for one id, show the
    object as it ended (``refetch``) instead of as it was when the task was queued. A delete whose
    answer names no task is waited for until ``gone(id)`` (its path) answers 404."""
    from core.cli_errors import BatchFailure, message_for
    from core.errors import CloudpodsError

    failed: list[CloudpodsError] = []
    targets = []
    going: list[tuple[str, str]] = []  # (label, path) of deletes followed until they answer 404
    for ident in idents:
        try:
            out = fn(ident)
            if wait:
                from climc.wait import Target, task_of

                if task_of(out) or gone is None:
                    targets.append(Target(f"{what} {ident}", task_of(out)))
                else:
                    going.append((f"{what} {ident}", gone(ident)))
                if refetch is None and len(idents) == 1 and isinstance(out, dict):
                    show_object(_inner(out))
            elif isinstance(out, dict) and len(idents) == 1:
                show_object(_inner(out))
            else:
                click.echo(f"{what} {ident}: {verb} ok", err=True)
        except CloudpodsError as e:
            failed.append(e)
            click.echo(f"{what} {ident}: {message_for(e)}", err=True)
    if targets:
        from climc.wait import follow

        follow(obj.client(), targets, timeout)
        if refetch is not None and len(idents) == 1 and not failed:
            from core.errors import ResourceNotFoundError

            try:
                show_object(_inner(refetch(idents[0])))
            except ResourceNotFoundError:  # a delete's task ended with the object: nothing stale to show
                click.echo(f"{what} {idents[0]}: deleted", err=True)
    if going:
        from climc.wait import follow_gone

        for label, path in going:
            follow_gone(obj.client(), S, path, label, timeout=timeout)
    if failed:
        raise BatchFailure(failed, len(idents), what, verb)


def _inner(out: dict[str, Any]) -> dict[str, Any]:
    """``{"server": {...}}`` -> the server; anything else as it is."""
    if len(out) == 1 and isinstance(next(iter(out.values())), dict):
        return next(iter(out.values()))  # type: ignore[no-any-return]
    return out


def make_list(name: str, plural: str, columns: Sequence[str], help_: str,
              filters: Sequence[tuple[str, str]] = ()) -> click.Command:
    """``<res>-list`` with the standard flags plus ``--<filter>`` options mapped to query keys."""
    @click.command(name, help=help_)
    @list_flags
    @output_options
    @click.pass_obj
    def cmd(obj: Any, **kw: Any) -> None:
        extra = {q: kw.pop(opt.replace("-", "_"), None) for opt, q in filters}
        run_list(obj, f"/{plural}", plural, columns, kw, **extra)

    if not any(opt == "status" for opt, _q in filters):
        filters = [*filters, ("status", "status")]
    for opt, _q in reversed(filters):
        cmd = click.option(f"--{opt}", default=None, multiple=opt == "status",
                           help=f"Only rows with this {opt}" + (" (repeatable)" if opt == "status" else ""))(cmd)
    return cmd


def make_show(name: str, plural: str, keyword: str, help_: str) -> click.Command:
    @click.command(name, help=help_)
    @click.argument("ident", shell_complete=names_of(plural))
    @output_options
    @click.pass_obj
    def cmd(obj: Any, ident: str) -> None:
        show_object(obj.client().get(S, f"/{plural}/{ident}")[keyword])
    return cmd


def make_delete(name: str, plural: str, keyword: str, help_: str, *, waitable: bool = False) -> click.Command:
    """``<res>-delete ID...``; ``waitable``: the delete runs as a task, so --wait follows it."""
    return _make_batch(name, plural, keyword, "delete", help_, waitable,
                       lambda c, i: c.delete(S, f"/{plural}/{i}"), gone=lambda i: f"/{plural}/{i}")


def make_action(name: str, plural: str, keyword: str, action: str, help_: str, *,
                waitable: bool = False) -> click.Command:
    """``<res>-<action> ID...``; ``waitable``: the action runs as a task, so --wait follows it."""
    return _make_batch(name, plural, keyword, action, help_, waitable,
                       lambda c, i: c.post(S, f"/{plural}/{i}/{action}", json={}))


def _make_batch(name: str, plural: str, keyword: str, verb: str, help_: str, waitable: bool,
                send: Callable[[Any, str], Any], gone: Callable[[str], str] | None = None) -> click.Command:
    """A command sending ``send(client, id)`` for each of its ids (``batch``)."""
    @click.command(name, help=help_)
    @click.argument("idents", nargs=-1, required=True, shell_complete=names_of(plural))
    @output_options
    @click.pass_obj
    def cmd(obj: Any, idents: tuple[str, ...], wait: bool = False, wait_timeout: float = 900.0) -> None:
        c = obj.client()
        batch(obj, idents, keyword, verb, lambda i: send(c, i), wait=wait, timeout=wait_timeout, gone=gone,
              refetch=lambda i: c.get(S, f"/{plural}/{i}"))
    if waitable:
        from climc.wait import wait_options

        cmd = wait_options()(cmd)
    return cmd


def send_update(obj: Any, plural: str, keyword: str, ident: str, fields: dict[str, Any],
                hint: str = "give at least one option") -> None:
    """Every ``*-update`` verb: PUT the options that were given (a usage error when none was) and show
    the answer."""
    body = {k: v for k, v in fields.items() if v is not None}
    if not body:
        raise click.UsageError(f"nothing to update: {hint}")
    show_object(obj.client().put(S, f"/{plural}/{ident}", json={keyword: body})[keyword])


def make_update(name: str, plural: str, keyword: str, fields: Sequence[tuple[str, Any]], help_: str) -> click.Command:
    @click.command(name, help=help_)
    @click.argument("ident", shell_complete=names_of(plural))
    @output_options
    @click.pass_obj
    def cmd(obj: Any, ident: str, **kw: Any) -> None:
        send_update(obj, plural, keyword, ident, kw)

    for fname, ftype in reversed(fields):
        cmd = click.option(f"--{fname.replace('_', '-')}", fname, type=ftype, default=None)(cmd)
    return cmd


def in_turn(obj: Any, label: str, items: Sequence[str], call: Callable[[str], dict[str, Any]], *,
            wait: bool = False, timeout: float = 900.0, refetch: str | None = None) -> None:
    """``call`` for each item on one object that runs one task at a time (Cloudpods' ``SERVER
    NETDESC...``): each but the last is followed to its end before the next is sent; the last is shown
    as ``finish`` shows one. A refusal or a failed task stops the rest (what was done stays done)."""
    from climc.wait import Target, follow, task_of

    for item in items[:-1]:
        follow(obj.client(), [Target(label, task_of(call(item)))], timeout)
    finish(obj, label, _inner(call(items[-1])), wait=wait, timeout=timeout, refetch=refetch)


def finish(obj: Any, label: str, answer: dict[str, Any], *, wait: bool = False, timeout: float = 900.0,
           refetch: str | None = None) -> None:
    """Show what a one-object async command answered; with ``wait``, follow its task first and show
    ``refetch`` (the object's path) as it ended."""
    if not wait:
        show_object(answer)
        return
    from climc.wait import Target, follow, task_of

    follow(obj.client(), [Target(label, task_of(answer))], timeout)
    show_object(_inner(obj.client().get(S, refetch)) if refetch else answer)
