"""Glance's public functions for other services (region's server create, the in-process agent).

    info = get_image(session, "cirros", cred)            # what a server create needs, RBAC applied
    with open_image(session, info.id, cred, data_dir=settings.data_dir) as r:
        while block := r.read(4 << 20): ...               # streaming read, never the whole image

Other services call these, never glance's models or storage directly (ARCHITECTURE: arrows one way).
"""
from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.orm import Session, sessionmaker

from core.api.context import Credential
from core.db.engine import committed
from core.errors import InvalidStatusError
from core.glance.config import GlanceConfig
from core.glance.dbutil import begin_write
from core.glance.images import get_visible, read_target
from core.glance.models import ACTIVE, Image
from core.glance.storage import store_for
from core.glance.subformats import ensure_subformat, same_format
from core.keystone.policy import enforce

__all__ = ["ImageInfo", "ImageReader", "get_image", "open_image"]


@dataclass(frozen=True)
class ImageInfo:
    id: str
    name: str
    status: str
    disk_format: str | None
    size: int | None  # bytes on disk
    virtual_size: int | None  # bytes the disk expands to
    min_disk: int  # MB
    min_ram: int  # MB
    checksum: str | None  # md5 hex (Cloudpods)
    sha256: str | None
    is_public: bool
    tenant_id: str
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def os_type(self) -> str | None:
        return self.properties.get("os_type")


def _info(img: Image) -> ImageInfo:
    return ImageInfo(img.id, img.name, img.status, img.disk_format, img.size, img.virtual_size, img.min_disk,
                     img.min_ram, img.checksum, img.os_hash_value, img.is_public, img.tenant_id,
                     dict(img.properties or {}))


def with_boot_files(session: Session, image_ids: set[str]) -> set[str]:
    """``image_ids`` plus the kernels and ramdisks those images name (``kernel_id``/``ramdisk_id``):
    what a host needs to boot guests from them (the agent's image route checks against it)."""
    from sqlalchemy import select

    out = set(image_ids)
    for props in session.scalars(select(Image.properties).where(Image.id.in_(list(image_ids)))):
        out.update(str(props[k]) for k in ("kernel_id", "ramdisk_id") if (props or {}).get(k))
    return out


def get_image(session: Session, id_or_name: str, cred: Credential) -> ImageInfo:
    """The image ``cred`` may read (own project's or public), by id or name; 404 otherwise."""
    img = get_visible(session, cred, id_or_name)
    enforce(cred, "image:images:get", read_target(img))
    return _info(img)


@dataclass
class ImageReader:
    """An open image: ``read(n)``, ``seek``/``tell`` via ``file``; ``size`` in bytes of this format."""

    info: ImageInfo
    format: str
    size: int
    file: BinaryIO

    def read(self, n: int = -1) -> bytes:
        return self.file.read(n)

    def close(self) -> None:
        self.file.close()


def open_image(session: Session, id_or_name: str, cred: Credential, *, data_dir: Path,
               fmt: str | None = None, offset: int = 0) -> AbstractContextManager[ImageReader]:
    """Open an active image for streaming (RBAC: image:images:download). With ``fmt`` a cached
    sub-format is used, converting once if needed (this blocks for the conversion)."""
    img = get_visible(session, cred, id_or_name)
    enforce(cred, "image:images:download", read_target(img))
    if img.status != ACTIVE or not img.location:
        raise InvalidStatusError(f"image {img.name} is {img.status}; only active images can be read")
    store = store_for(data_dir)
    info = _info(img)
    key, out_fmt = img.location, img.disk_format or "raw"
    if fmt and not same_format(img, fmt):
        cfg = GlanceConfig.load(Path(data_dir) / "config.toml")
        maker = sessionmaker(bind=session.get_bind(), expire_on_commit=False)
        session.commit()  # do not hold a transaction through a conversion

        @contextmanager
        def sessions() -> Any:
            with committed(maker()) as s:
                begin_write(s)
                yield s

        key, out_fmt = ensure_subformat(sessions, store, cfg, img.id, fmt), fmt

    @contextmanager
    def reader() -> Any:
        f = store.open(key)
        try:
            if offset:
                f.seek(offset)
            yield ImageReader(info, out_fmt, store.size(key) or 0, f)
        finally:
            f.close()

    return reader()


def create_queued_image(session: Session, cred: Credential, name: str, *, disk_format: str = "qcow2",
                        properties: dict[str, str] | None = None) -> ImageInfo:
    """A new image (status ``queued``) owned by ``cred``'s project, for data that arrives later through
    the intake (e.g. a host saving a guest's disk). Name, quota of images and RBAC as for any create."""
    from core.glance.ops import create_image, parse_fields

    f = parse_fields({"name": name, "disk_format": disk_format, "container_format": "bare",
                      "properties": dict(properties or {})})
    return _info(create_image(session, cred, f))


def discard_unfinished_image(session: Session, image_id: str) -> bool:
    """Delete an image whose data never arrived (``queued``, or ``killed`` by the intake, which
    removed the staged bytes): what a failed save leaves behind. True if it was deleted."""
    img = session.get(Image, image_id)
    if img is None or img.status not in ("queued", "killed") or img.location:
        return False
    session.delete(img)
    return True
