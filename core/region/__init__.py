"""Region: resources, IPAM, quotas and the tasks that change them."""
from sqlalchemy.orm import Session

from core.keystone.holdings import register_holder
from core.region import secgroups as _secgroups  # noqa: F401  (its flush hook tells hosts of moved servers)
from core.region.tasks import REGION_TASKS
from core.tasks.registry import register_tasks

register_tasks(REGION_TASKS)  # whoever loads region code can run its tasks; the engine imports no region


def _project_holdings(session: Session, project_id: str) -> dict[str, int]:
    """Region resources kept in a project (recycle-bin ones too): keystone refuses to delete it."""
    from sqlalchemy import func, select

    from core.region.models import Disk, Eip, InstanceSnapshot, Keypair, Network, Secgroup, Server, Snapshot

    out: dict[str, int] = {}
    for model, kind in ((Server, "servers"), (Disk, "disks"), (Network, "networks"), (Eip, "eips"),
                        (Snapshot, "snapshots"), (InstanceSnapshot, "instance_snapshots"), (Keypair, "keypairs"),
                        (Secgroup, "secgroups")):
        stmt = select(func.count()).select_from(model).where(model.tenant_id == project_id)
        if model is Secgroup:  # the Default group made on demand does not keep a project alive on its own
            from core.region.models import GuestSecgroup

            stmt = stmt.where((Secgroup.name != "Default")
                              | Secgroup.id.in_(select(GuestSecgroup.secgroup_id)))
        n = session.scalar(stmt) or 0
        if n:
            out[kind] = int(n)
    return out


register_holder("region", _project_holdings)
