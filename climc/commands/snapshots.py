"""Disk snapshots (take, delete, roll a disk back with disk-reset) and disks saved as images."""
from __future__ import annotations

from typing import Any

import click

from climc.commands.compute_common import S, make_delete, make_show
from climc.output import output_options, show_object

snapshot_show = make_show("snapshot-show", "snapshots", "snapshot", "Show a snapshot")
snapshot_delete = make_delete("snapshot-delete", "snapshots", "snapshot", "Delete snapshots")


@click.command("disk-create-snapshot")
@click.argument("disk")
@click.argument("name")
@output_options
@click.pass_obj
def disk_create_snapshot(obj: Any, disk: str, name: str) -> None:
    """Take a snapshot NAME of DISK (its server stopped or running)."""
    show_object(obj.client().post(S, f"/disks/{disk}/create-snapshot", json={"name": name})["snapshot"])


@click.command("snapshot-create")
@click.argument("name")
@click.option("--disk", required=True, help="The disk to snapshot")
@output_options
@click.pass_obj
def snapshot_create(obj: Any, name: str, disk: str) -> None:
    """Take a snapshot NAME of --disk."""
    show_object(obj.client().post(S, "/snapshots", json={"snapshot": {"name": name, "disk": disk}})["snapshot"])


@click.command("disk-reset")
@click.argument("disk")
@click.argument("snapshot")
@output_options
@click.pass_obj
def disk_reset(obj: Any, disk: str, snapshot: str) -> None:
    """Roll DISK back to SNAPSHOT (its server must be stopped)."""
    show_object(obj.client().post(S, f"/disks/{disk}/disk-reset", json={"snapshot_id": snapshot})["disk"])


@click.command("server-save-image")
@click.argument("server")
@click.argument("image")
@output_options
@click.pass_obj
def server_save_image(obj: Any, server: str, image: str) -> None:
    """Save the system disk of a stopped SERVER as a new image IMAGE."""
    show_object(obj.client().post(S, f"/servers/{server}/save-image", json={"name": image})["server"])


@click.command("disk-save")
@click.argument("disk")
@click.argument("image")
@output_options
@click.pass_obj
def disk_save(obj: Any, disk: str, image: str) -> None:
    """Save DISK (of a stopped server) as a new image IMAGE."""
    show_object(obj.client().post(S, f"/disks/{disk}/save", json={"name": image})["disk"])


@click.command("disk-resize")
@click.argument("disk")
@click.argument("size")
@output_options
@click.pass_obj
def disk_resize(obj: Any, disk: str, size: str) -> None:
    """Grow DISK to SIZE (e.g. 20g); online when its server runs on a host that can."""
    show_object(obj.client().post(S, f"/disks/{disk}/resize", json={"size": size})["disk"])
