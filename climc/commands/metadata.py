"""Metadata and user tags of any resource that has them: show, add/change (KEY=VALUE; KEY= removes)."""
from __future__ import annotations

from typing import Any

import click

from climc.commands.compute_common import S
from climc.output import output_options, show_object


def _pairs(items: tuple[str, ...]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for it in items:
        key, eq, value = it.partition("=")
        if not eq or not key:
            raise click.UsageError(f"{it!r}: give KEY=VALUE (KEY= removes the key)")
        out[key] = value or None
    return out


def make_metadata_show(name: str, plural: str, keyword: str) -> click.Command:
    @click.command(name, help=f"Show a {keyword}'s metadata (user tags are the user: keys)")
    @click.argument("ident")
    @output_options
    @click.pass_obj
    def cmd(obj: Any, ident: str) -> None:
        show_object(obj.client().get(S, f"/{plural}/{ident}/metadata")["metadata"])
    return cmd


def make_metadata_set(name: str, plural: str, keyword: str, action: str, help_: str) -> click.Command:
    @click.command(name, help=help_)
    @click.argument("ident")
    @click.argument("pairs", nargs=-1, required=action != "set-user-metadata")
    @output_options
    @click.pass_obj
    def cmd(obj: Any, ident: str, pairs: tuple[str, ...]) -> None:
        show_object(obj.client().post(S, f"/{plural}/{ident}/{action}", json=_pairs(pairs))["metadata"])
    return cmd


server_metadata = make_metadata_show("server-metadata", "servers", "server")
server_set_metadata = make_metadata_set("server-set-metadata", "servers", "server", "metadata",
                                        "Add or change a server's metadata: KEY=VALUE ... (KEY= removes)")
server_add_user_metadata = make_metadata_set("server-add-user-metadata", "servers", "server", "user-metadata",
                                             "Add or change a server's user tags: KEY=VALUE ... (KEY= removes)")
server_set_user_metadata = make_metadata_set("server-set-user-metadata", "servers", "server", "set-user-metadata",
                                             "Make a server's user tags exactly KEY=VALUE ... (none: clear them)")
disk_metadata = make_metadata_show("disk-metadata", "disks", "disk")
disk_set_metadata = make_metadata_set("disk-set-metadata", "disks", "disk", "metadata",
                                      "Add or change a disk's metadata: KEY=VALUE ... (KEY= removes)")
