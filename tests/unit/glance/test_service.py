"""glance.service: what other services call (get_image / open_image), on a real migrated SQLite DB."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

import core.keystone.policies  # noqa: F401  (rules registered)
from core.api.context import Credential
from core.db.migrate import upgrade
from core.errors import ForbiddenError, InvalidStatusError, ResourceNotFoundError
from core.glance.models import Image
from core.glance.service import get_image, open_image
from core.glance.storage import store_for
from tests.support.peers import need_binary


def cred(project: str, *roles: str) -> Credential:
    return Credential(token="t", user_id="u", user_name="u", user_domain_id="default", user_domain_name="Default",
                      scope="project", roles=roles or ("member",), project_id=project, project_domain_id="default")


@pytest.fixture
def env(tmp_path: Path) -> tuple[Session, Path, Image]:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    session = Session(engine, expire_on_commit=False)
    data = tmp_path / "data"
    store = store_for(data)
    img = Image(name="deb", tenant_id="p1", domain_id="default", status="active", disk_format="raw", size=4096,
                min_disk=10, properties={"os_type": "Linux"})
    session.add(img)
    session.flush()
    w = store.writer(img.id, resume=False)
    w.write(b"\x07" * 4096)
    w.close()
    store.commit(img.id)
    img.location = img.id
    session.commit()
    return session, data, img


def test_get_image_by_id_or_name_with_rbac(env: tuple[Session, Path, Image]) -> None:
    session, _data, img = env
    info = get_image(session, "deb", cred("p1"))
    assert (info.id, info.status, info.disk_format, info.size, info.min_disk, info.os_type) == (
        img.id, "active", "raw", 4096, 10, "Linux")
    with pytest.raises(ResourceNotFoundError):
        get_image(session, img.id, cred("p2"))  # another tenant's private image does not exist for it
    with pytest.raises(ForbiddenError):
        get_image(session, img.id, cred("p1", "nobody"))
    img.is_public = True
    session.commit()
    assert get_image(session, img.id, cred("p2", "reader")).id == img.id


def test_open_image_streams_and_converts(env: tuple[Session, Path, Image]) -> None:
    session, data, img = env
    with open_image(session, img.id, cred("p1"), data_dir=data, offset=4000) as r:
        assert r.size == 4096 and r.read() == b"\x07" * 96 and r.format == "raw"
    need_binary("qemu-img", "qemu-utils")
    with open_image(session, img.id, cred("p1"), data_dir=data, fmt="qcow2") as r:
        assert r.format == "qcow2" and r.read(4) == b"QFI\xfb"
    assert (data / "images" / f"{img.id}.qcow2").exists()
    out = data / "back.raw"
    with open_image(session, img.id, cred("p1"), data_dir=data, fmt="qcow2") as r:
        (data / "c.qcow2").write_bytes(r.read())
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(data / "c.qcow2"), str(out)], check=True)
    assert out.read_bytes() == b"\x07" * 4096
    img.status = "saving"
    session.commit()
    with pytest.raises(InvalidStatusError):
        open_image(session, img.id, cred("p1"), data_dir=data)
