"""Image commands (glance, Cloudpods v1 API): list/show/upload/download/update/delete/public/private.

Uploads and downloads stream in blocks (never the whole file in memory) with a progress bar on
stderr; an upload whose connection drops resumes from the server's ``upload_offset``.
"""
from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from climc.output import output_options, show_list, show_object
from climc.wait import wait_options

SERVICE = "image"
COLUMNS = ["id", "name", "disk_format", "size", "status", "is_public", "protected", "os_type", "checksum"]
BLOCK = 4 << 20
RESUME_TRIES = 5


def _p(id_or_name: str) -> str:
    return "/images/" + quote(id_or_name, safe="")


def _props(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or not k:
            raise click.BadParameter(f"{p!r}: expected KEY=VALUE", param_hint="--property")
        out[k] = v
    return out


def _os_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt, hlp in reversed((("--os-type", "Linux, Windows, ..."), ("--os-distribution", "e.g. Ubuntu"),
                              ("--os-version", "e.g. 22.04"), ("--os-arch", "x86_64, aarch64, ..."))):
        f = click.option(opt, help=hlp)(f)
    return f


def _progress(total: int | None, label: str) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=console, disable=not console.is_terminal, transient=False)


def _batch(obj: Any, ids: tuple[str, ...], verb: str, fn: Callable[[Any, str], Any]) -> None:
    from core.cli_errors import BatchFailure, message_for
    from core.errors import CloudpodsError

    c = obj.client()
    failed: list[CloudpodsError] = []
    for i in ids:
        try:
            res = fn(c, i)
            if isinstance(res, dict) and "image" in res:
                show_object(res["image"])
        except CloudpodsError as e:
            failed.append(e)
            click.echo(f"Error: {i}: {message_for(e)}", err=True)
    if failed:
        raise BatchFailure(failed, len(ids), "image", verb)


def _image_owner_flags(f: Callable[..., Any]) -> Callable[..., Any]:
    """Cloudpods' list options image-list lacks of its own (--system, --tags, --user-tags, --no-tags, --field)."""
    from climc.commands.compute_common import owner_flags

    for opt in reversed(owner_flags(skip=("--admin", "--project", "--project-domain"))):
        f = opt(f)
    return f


@click.command("image-list")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--offset", type=int, default=0)
@click.option("--order-by", multiple=True)
@click.option("--order", type=click.Choice(["asc", "desc"]))
@click.option("--search")
@click.option("--filter", "filters", multiple=True, help="field.op(args), e.g. disk_format.equals(qcow2)")
@click.option("--filter-any", is_flag=True)
@click.option("--scope", type=click.Choice(["system", "domain", "project", "user", "max"]),
              help="Whose images: system|domain|project, user (yours), max (all you may see)")
@click.option("--admin", is_flag=True, help="Every project's images you may see (scope system)")
@click.option("--project", "--tenant", "tenant", default=None, help="Only images of this project (id or name)")
@click.option("--details/--no-details", default=True)
@click.option("--pending-delete", is_flag=True, hidden=True)
@click.option("--name", help="Only the image with this name")
@click.option("--status", help="Only images in this status")
@click.option("--format", "--disk-format", "disk_format", help="Only images of this disk format")
@click.option("--public/--private", "is_public", default=None, help="Only public / private images")
@_image_owner_flags
@output_options
@click.pass_obj
def image_list(obj: Any, limit: int, offset: int, order_by: tuple[str, ...], order: str | None, search: str | None,
               filters: tuple[str, ...], filter_any: bool, scope: str | None, admin: bool, tenant: str | None,
               details: bool, pending_delete: bool, name: str | None, status: str | None, disk_format: str | None,
               is_public: bool | None, **kw: Any) -> None:
    """List images; --tags/--user-tags/--no-tags match the image's properties (image-update --property)."""
    from climc.commands.compute_common import list_params

    kw.pop("system", None)  # Cloudpods' system images: every image you may see is listed here
    tagged = list_params(kw)
    params: list[tuple[str, Any]] = [("limit", limit), ("offset", offset), ("details", str(details).lower())]
    for k, v in tagged.items():
        if k.startswith(("tags.", "no_tags.")):
            params += [(k, x) for x in v] if isinstance(v, list) else [(k, v)]
    params += [("field", f) for f in kw.get("fields", ())]
    params += [("order_by", o) for o in order_by] + [("filter", f) for f in filters]
    for k, v in (("order", order), ("search", search), ("scope", scope or ("system" if admin else None)),
                 ("tenant", tenant), ("name", name), ("status", status), ("disk_format", disk_format)):
        if v:
            params.append((k, v))
    if filter_any:
        params.append(("filter_any", "true"))
    if is_public is not None:
        params.append(("is_public", str(is_public).lower()))
    data = obj.client().get(SERVICE, "/images", params=params)
    show_list(data.get("images", []), columns=list(kw.get("fields") or ()) or COLUMNS, total=data.get("total", 0),
              limit=limit, offset=offset)


@click.command("image-show")
@click.argument("images", nargs=-1, required=True)
@output_options
@click.pass_obj
def image_show(obj: Any, images: tuple[str, ...]) -> None:
    """Show images (one or several ids or names, as Cloudpods' image-show ID...)."""
    _batch(obj, images, "show", lambda c, i: c.get(SERVICE, _p(i)))


@click.command("image-upload")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "disk_format", type=click.Choice(["raw", "qcow2", "iso", "vmdk", "vhd"]),
              help="Disk format (detected from the data when omitted)")
@_os_options
@click.option("--min-disk", type=int, help="Minimum disk size in MB")
@click.option("--min-ram", type=int, help="Minimum memory in MB")
@click.option("--description")
@click.option("--public", is_flag=True, help="Visible to every project (admin)")
@click.option("--protected", is_flag=True, help="Refuse deletion until unprotected")
@click.option("--property", "props", multiple=True, metavar="KEY=VALUE")
@click.option("--resume", "resume_id", metavar="IMAGE", help="Continue an interrupted upload of this image")
@wait_options()
@output_options
@click.pass_obj
def image_upload(obj: Any, name: str, file: Path, disk_format: str | None, os_type: str | None,
                 os_distribution: str | None, os_version: str | None, os_arch: str | None, min_disk: int | None,
                 min_ram: int | None, description: str | None, public: bool, protected: bool,
                 props: tuple[str, ...], resume_id: str | None, wait: bool = False,
                 wait_timeout: float = 900.0) -> None:
    """Upload an image file (streamed, resumable)."""
    from core.errors import ConnectionFailedError, InputParameterError

    size = file.stat().st_size
    if size == 0:
        raise InputParameterError(f"{file} is empty")
    c = obj.client()
    if resume_id:
        img = c.get(SERVICE, _p(resume_id))["image"]
    else:
        properties = _props(props)
        for k, v in (("os_type", os_type), ("os_distribution", os_distribution), ("os_version", os_version),
                     ("os_arch", os_arch)):
            if v:
                properties[k] = v
        body: dict[str, Any] = {"name": name, "size": size, "properties": properties}
        optional: tuple[tuple[str, Any], ...] = (("disk_format", disk_format), ("min_disk", min_disk),
                                                 ("min_ram", min_ram), ("description", description))
        for k, v in optional:
            if v is not None:
                body[k] = v
        if public:
            body["is_public"] = True
        if protected:
            body["protected"] = True
        img = c.post(SERVICE, "/images", json={"image": body})["image"]
    image_id = img["id"]
    offset = int(img.get("upload_offset") or 0)
    with _progress(size, "upload") as prog:
        task = prog.add_task(f"upload {name}", total=size, completed=offset)
        for attempt in range(RESUME_TRIES + 1):
            try:
                # generous read timeout: the reply comes after the server fsyncs and inspects the image
                with c.stream("PUT", SERVICE, _p(image_id), content=_reader(file, offset, size, prog, task),
                              headers={"Content-Type": "application/octet-stream",
                                       "Content-Range": f"bytes {offset}-{size - 1}/{size}",
                                       "Content-Length": str(size - offset)}, timeout=900.0) as resp:
                    resp.read()
                    img = resp.json()["image"]
                break
            except ConnectionFailedError:
                if attempt == RESUME_TRIES:
                    raise
                img = c.get(SERVICE, _p(image_id))["image"]  # where did the server stop?
                offset = int(img.get("upload_offset") or 0)
                prog.update(task, completed=offset)
                click.echo(f"connection lost; resuming at byte {offset} (image {image_id})", err=True)
    if wait:  # until glance has checked the data and made it active (or killed it, with the reason)
        from climc.wait import follow_status

        img = follow_status(c, SERVICE, _p(image_id), "image", f"image {name}", busy=("queued", "saving"),
                            ok=("active",), timeout=wait_timeout)
    show_object(img)


def _reader(path: Path, offset: int, size: int, prog: Any, task: Any) -> Iterator[bytes]:
    with open(path, "rb", buffering=0) as f:
        f.seek(offset)
        left = size - offset
        while left > 0:
            block = f.read(min(BLOCK, left))
            if not block:
                raise click.ClickException(f"{path} shrank while uploading")
            left -= len(block)
            prog.advance(task, len(block))
            yield block


@click.command("image-download")
@click.argument("image")
@click.option("--file", "--output", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here (default: the image name in the current directory); '-' for stdout")
@click.option("--format", "fmt", type=click.Choice(["raw", "qcow2", "vmdk"]),
              help="Convert on the server (cached) and download that format")
@click.option("--resume", is_flag=True, help="Continue a partial download in FILE (HTTP Range)")
@click.pass_obj
def image_download(obj: Any, image: str, out: Path | None, fmt: str | None, resume: bool) -> None:
    """Download an image (streamed, with a progress bar; md5 verified)."""
    from core.errors import InputParameterError

    c = obj.client()
    img = c.get(SERVICE, _p(image))["image"]
    if out is None:
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in img["name"]) or img["id"]
        out = Path(safe + (f".{fmt}" if fmt else ""))
    to_stdout = str(out) == "-"
    start = out.stat().st_size if resume and not to_stdout and out.exists() else 0
    params = {"format": fmt} if fmt else None
    headers = {"Range": f"bytes={start}-"} if start else {}
    md5 = hashlib.md5(usedforsecurity=False)
    if start:
        with open(out, "rb") as f:
            while block := f.read(BLOCK):
                md5.update(block)
    with c.stream("GET", SERVICE, _p(img["id"]) + "/download", params=params, headers=headers,
                  timeout=None) as resp:
        length = int(resp.headers.get("content-length", "0"))
        expected = resp.headers.get("content-md5") or resp.headers.get("x-image-meta-checksum") if not fmt else None
        total = start + length
        sink = sys.stdout.buffer if to_stdout else open(out, "ab" if start else "wb")  # noqa: SIM115 - closed below
        try:
            with _progress(total, "download") as prog:
                task = prog.add_task(f"download {img['name']}", total=total, completed=start)
                for block in resp.iter_bytes(BLOCK):
                    md5.update(block)
                    sink.write(block)
                    prog.advance(task, len(block))
        finally:
            if not to_stdout:
                sink.close()
    if expected and md5.hexdigest() != expected:
        raise InputParameterError(f"checksum mismatch: got {md5.hexdigest()}, expected {expected}")
    if not to_stdout:
        click.echo(f"{out}: {os.path.getsize(out)} bytes, md5 {md5.hexdigest()}", err=True)


@click.command("image-update")
@click.argument("images", nargs=-1, required=True)
@click.option("--name")
@click.option("--description")
@click.option("--min-disk", type=int, help="MB")
@click.option("--min-ram", type=int, help="MB")
@_os_options
@click.option("--protected/--unprotected", default=None)
@click.option("--property", "props", multiple=True, metavar="KEY=VALUE")
@output_options
@click.pass_obj
def image_update(obj: Any, images: tuple[str, ...], name: str | None, description: str | None, min_disk: int | None,
                 min_ram: int | None, os_type: str | None, os_distribution: str | None, os_version: str | None,
                 os_arch: str | None, protected: bool | None, props: tuple[str, ...]) -> None:
    """Change the metadata of images (one or several ids or names, as Cloudpods' image-update ID...)."""
    body: dict[str, Any] = {}
    for k, v in (("name", name), ("description", description), ("min_disk", min_disk), ("min_ram", min_ram),
                 ("protected", protected)):
        if v is not None:
            body[k] = v
    properties = _props(props)
    for k, v in (("os_type", os_type), ("os_distribution", os_distribution), ("os_version", os_version),
                 ("os_arch", os_arch)):
        if v is not None:
            properties[k] = v
    if properties:
        body["properties"] = properties
    if not body:
        raise click.UsageError("nothing to update")
    if name is not None and len(images) > 1:
        raise click.UsageError("--name renames one image: give one IMAGE")
    _batch(obj, images, "update", lambda c, i: c.put(SERVICE, _p(i), json={"image": body}))


@click.command("image-delete")
@click.argument("images", nargs=-1, required=True)
@click.pass_obj
def image_delete(obj: Any, images: tuple[str, ...]) -> None:
    """Delete images (several ids or names)."""
    def one(c: Any, i: str) -> None:
        c.delete(SERVICE, _p(i))
        click.echo(f"deleted {i}", err=True)

    _batch(obj, images, "delete", one)


@click.command("image-public")
@click.argument("images", nargs=-1, required=True)
@output_options
@click.pass_obj
def image_public(obj: Any, images: tuple[str, ...]) -> None:
    """Make images visible to every project (admin)."""
    _batch(obj, images, "make public", lambda c, i: c.post(SERVICE, _p(i) + "/public", json={}))


@click.command("image-private")
@click.argument("images", nargs=-1, required=True)
@output_options
@click.pass_obj
def image_private(obj: Any, images: tuple[str, ...]) -> None:
    """Make images private to their project again (admin)."""
    _batch(obj, images, "make private", lambda c, i: c.post(SERVICE, _p(i) + "/private", json={}))
