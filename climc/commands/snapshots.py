"""Snapshots (disk and instance), disk-reset, clones, disks saved as images, server-change-owner,
passwords, the CD-ROM drive and boot order."""
from __future__ import annotations

from typing import Any

import click

from climc.commands.compute_common import S, finish, in_turn, make_delete, make_list, make_show
from climc.output import output_options, show_object
from climc.wait import Target, follow, wait_options

snapshot_list = make_list("snapshot-list", "snapshots", ["id", "name", "disk", "size", "status", "created_at"],
                          "List snapshots", [("disk", "disk")])
snapshot_show = make_show("snapshot-show", "snapshots", "snapshot", "Show a snapshot")
snapshot_delete = make_delete("snapshot-delete", "snapshots", "snapshot", "Delete snapshots", waitable=True)


@click.command("disk-create-snapshot")
@click.argument("disk")
@click.argument("name")
@wait_options()
@output_options
@click.pass_obj
def disk_create_snapshot(obj: Any, disk: str, name: str, wait: bool = False, wait_timeout: float = 900.0) -> None:
    """Take a snapshot NAME of DISK (its server stopped or running)."""
    snap = obj.client().post(S, f"/disks/{disk}/create-snapshot", json={"name": name})["snapshot"]
    _snapshot_done(obj, snap, wait, wait_timeout)


def _snapshot_done(obj: Any, snap: dict[str, Any], wait: bool, timeout: float) -> None:
    """The snapshot's task holds its disk (``active_task_id``): follow that one."""
    if wait:
        c = obj.client()
        task = c.get(S, f"/disks/{snap['disk_id']}")["disk"].get("active_task_id") if snap.get("disk_id") else ""
        follow(c, [Target(f"snapshot {snap.get('name')}", task or "")], timeout)
        snap = c.get(S, f"/snapshots/{snap['id']}")["snapshot"]
        if snap.get("status") != "ready":
            raise click.ClickException(f"snapshot {snap.get('name')} is {snap.get('status')}")
    show_object(snap)


@click.command("snapshot-create")
@click.argument("name")
@click.option("--disk", required=True, help="The disk to snapshot")
@wait_options()
@output_options
@click.pass_obj
def snapshot_create(obj: Any, name: str, disk: str, wait: bool = False, wait_timeout: float = 900.0) -> None:
    """Take a snapshot NAME of --disk."""
    snap = obj.client().post(S, "/snapshots", json={"snapshot": {"name": name, "disk": disk}})["snapshot"]
    _snapshot_done(obj, snap, wait, wait_timeout)


@click.command("disk-reset")
@click.argument("disk")
@click.argument("snapshot")
@wait_options()
@output_options
@click.pass_obj
def disk_reset(obj: Any, disk: str, snapshot: str, wait: bool = False, wait_timeout: float = 900.0) -> None:
    """Roll DISK back to SNAPSHOT (its server must be stopped)."""
    out = obj.client().post(S, f"/disks/{disk}/disk-reset", json={"snapshot_id": snapshot})["disk"]
    finish(obj, f"disk {disk}", out,
           wait=wait, timeout=wait_timeout, refetch=f"/disks/{disk}")


@click.command("server-save-image")
@click.argument("server")
@click.argument("image")
@wait_options()
@output_options
@click.pass_obj
def server_save_image(obj: Any, server: str, image: str, wait: bool = False, wait_timeout: float = 900.0) -> None:
    """Save the system disk of a stopped SERVER as a new image IMAGE."""
    out = obj.client().post(S, f"/servers/{server}/save-image", json={"name": image})["server"]
    finish(obj, f"image {image}", out, wait=wait, timeout=wait_timeout)


@click.command("disk-save")
@click.argument("disk")
@click.argument("image")
@click.argument("ostype", required=False, metavar="[OSTYPE]")
@wait_options()
@output_options
@click.pass_obj
def disk_save(obj: Any, disk: str, image: str, ostype: str | None, wait: bool = False,
              wait_timeout: float = 900.0) -> None:
    """Save DISK (of a stopped server) as a new image IMAGE; OSTYPE (e.g. Linux, Windows) is the image's
    os_type (default: the server's, for a system disk)."""
    body = {"name": image, **({"os_type": ostype} if ostype else {})}
    out = obj.client().post(S, f"/disks/{disk}/save", json=body)["disk"]
    finish(obj, f"image {image}", out, wait=wait, timeout=wait_timeout)


@click.command("disk-resize")
@click.argument("disk")
@click.argument("size")
@wait_options()
@output_options
@click.pass_obj
def disk_resize(obj: Any, disk: str, size: str, wait: bool = False, wait_timeout: float = 900.0) -> None:
    """Grow DISK to SIZE (e.g. 20g); online when its server runs on a host that can."""
    finish(obj, f"disk {disk}", obj.client().post(S, f"/disks/{disk}/resize", json={"size": size})["disk"],
           wait=wait, timeout=wait_timeout, refetch=f"/disks/{disk}")


instance_snapshot_list = make_list("instance-snapshot-list", "instance_snapshots",
                                   ["id", "name", "guest", "snapshot_count", "size", "status", "created_at"],
                                   "List instance snapshots", [("server", "server")])
instance_snapshot_show = make_show("instance-snapshot-show", "instance_snapshots", "instance_snapshot",
                                   "Show an instance snapshot")
instance_snapshot_delete = make_delete("instance-snapshot-delete", "instance_snapshots", "instance_snapshot",
                                       "Delete instance snapshots (with their disk snapshots)", waitable=True)


@click.command("instance-snapshot-create")
@click.argument("server")
@click.argument("name")
@wait_options()
@output_options
@click.pass_obj
def instance_snapshot_create(obj: Any, server: str, name: str, wait: bool = False,
                             wait_timeout: float = 900.0) -> None:
    """Take instance snapshot NAME of SERVER: all its disks at one instant (stopped or running)."""
    out = obj.client().post(S, f"/servers/{server}/instance-snapshot", json={"name": name})["server"]
    isnap = out["instance_snapshot"]
    if not wait:
        show_object(isnap)
        return
    finish(obj, f"instance snapshot {name}", out, wait=True, timeout=wait_timeout,
           refetch=f"/instance_snapshots/{isnap['id']}")


@click.command("server-change-owner")
@click.argument("server")
@click.argument("project")
@output_options
@click.pass_obj
def server_change_owner(obj: Any, server: str, project: str) -> None:
    """Move SERVER (its disks, snapshots and quota) to PROJECT (cloud admins)."""
    show_object(obj.client().post(S, f"/servers/{server}/change-owner", json={"tenant": project})["server"])


@click.command("server-reset-password")
@click.argument("server")
@click.option("--password", required=True, help="The new login password")
@wait_options()
@output_options
@click.pass_obj
def server_reset_password(obj: Any, server: str, password: str, wait: bool = False,
                          wait_timeout: float = 900.0) -> None:
    """Set SERVER's login password: a running guest through the qemu guest agent (qemu-ga in it), a
    stopped one at its next boot (its config drive rewritten either way)."""
    out = obj.client().post(S, f"/servers/{server}/set-password", json={"password": password})
    finish(obj, f"server {server}", out["server"], wait=wait, timeout=wait_timeout, refetch=f"/servers/{server}")


@click.command("server-logininfo")
@click.argument("server")
@output_options
@click.pass_obj
def server_logininfo(obj: Any, server: str) -> None:
    """Show SERVER's login account, and its password to members of its own project (audited)."""
    show_object(obj.client().post(S, f"/servers/{server}/login-info", json={}))


@click.command("server-create-disk")
@click.argument("server")
@click.argument("disks", nargs=-1, required=True, metavar="DISK...")
@wait_options()
@output_options
@click.pass_obj
def server_create_disk(obj: Any, server: str, disks: tuple[str, ...], wait: bool = False,
                       wait_timeout: float = 900.0) -> None:
    """Make data disks (each DISK a size such as 10g, or IMAGE[:size]) and attach them to SERVER; several
    are made one after another (each waited for before the next)."""
    c = obj.client()
    in_turn(obj, f"server {server}", disks, lambda d: c.post(S, f"/servers/{server}/createdisk", json={"disks": [d]}),
            wait=wait, timeout=wait_timeout, refetch=f"/servers/{server}")


@click.command("server-insert-iso")
@click.argument("server")
@click.argument("iso")
@wait_options()
@output_options
@click.pass_obj
def server_insert_iso(obj: Any, server: str, iso: str, wait: bool = False, wait_timeout: float = 900.0) -> None:
    """Insert ISO image ISO (id or name) into SERVER's CD-ROM drive (a running guest sees a media change
    where its host can; otherwise stop it first)."""
    out = obj.client().post(S, f"/servers/{server}/insertiso", json={"image_id": iso})["server"]
    finish(obj, f"server {server}", out, wait=wait, timeout=wait_timeout, refetch=f"/servers/{server}")


@click.command("server-eject-iso")
@click.argument("server")
@wait_options()
@output_options
@click.pass_obj
def server_eject_iso(obj: Any, server: str, wait: bool = False, wait_timeout: float = 900.0) -> None:
    """Eject the ISO from SERVER's CD-ROM drive."""
    out = obj.client().post(S, f"/servers/{server}/ejectiso", json={})["server"]
    finish(obj, f"server {server}", out, wait=wait, timeout=wait_timeout, refetch=f"/servers/{server}")


@click.command("server-iso")
@click.argument("server")
@output_options
@click.pass_obj
def server_iso(obj: Any, server: str) -> None:
    """Show the ISO in SERVER's CD-ROM drive."""
    show_object(obj.client().get(S, f"/servers/{server}/iso")["iso"])


def _boot_pairs(values: tuple[str, ...], what: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        dev, sep, rank = v.replace("=", ":", 1).partition(":")
        if not sep or not dev.strip().isdigit() or not rank.strip().isdigit():
            raise click.BadParameter(f"{v!r}: give {what}:BOOT_INDEX, e.g. 0:1", param_hint=f"--{what.split()[0]}")
        out[dev.strip()] = int(rank)
    return out


@click.command("server-set-boot-index")
@click.argument("server")
@click.option("--disk", "--disks", "disks", multiple=True, help="DISK_INDEX:BOOT_INDEX (repeatable), e.g. 0:1")
@click.option("--cdrom", "--cdroms", "cdroms", multiple=True, help="ORDINAL:BOOT_INDEX of the CD-ROM drive, e.g. 0:0")
@wait_options()
@output_options
@click.pass_obj
def server_set_boot_index(obj: Any, server: str, disks: tuple[str, ...], cdroms: tuple[str, ...], wait: bool = False,
                          wait_timeout: float = 900.0) -> None:
    """Set the stopped SERVER's boot order: devices boot in BOOT_INDEX order (those not named do not boot)."""
    if not disks and not cdroms:
        raise click.UsageError("give --disk and/or --cdrom with a boot index")
    body = {"disks": _boot_pairs(disks, "disk index"), "cdroms": _boot_pairs(cdroms, "cdrom ordinal")}
    out = obj.client().post(S, f"/servers/{server}/set-boot-index", json=body)["server"]
    finish(obj, f"server {server}", out, wait=wait, timeout=wait_timeout, refetch=f"/servers/{server}")


@click.command("instance-snapshot-reset")
@click.argument("server")
@click.option("--instance-snapshot", required=True, help="The instance snapshot (of SERVER) to go back to")
@click.option("--auto-start", is_flag=True, help="Start the server once its disks are reset")
@wait_options()
@output_options
@click.pass_obj
def instance_snapshot_reset(obj: Any, server: str, instance_snapshot: str, auto_start: bool, wait: bool = False,
                            wait_timeout: float = 900.0) -> None:
    """Roll every disk of the stopped SERVER back to one of its instance snapshots."""
    c = obj.client()
    row = c.post(S, f"/servers/{server}/instance-snapshot-reset",
                 json={"instance_snapshot": instance_snapshot, "auto_start": auto_start})["server"]
    if wait:
        follow(c, [Target(f"server {row.get('name')}", row.get("active_task_id") or "")], wait_timeout)
        row = c.get(S, f"/servers/{row['id']}")["server"]
    show_object(row)
