"""Glance: the image service (Cloudpods v1 and OpenStack Glance v2)."""
from sqlalchemy.orm import Session

from core.keystone.holdings import register_holder


def _project_holdings(session: Session, project_id: str) -> dict[str, int]:
    """Images a project owns: keystone refuses to delete the project while it has any."""
    from sqlalchemy import func, select

    from core.glance.models import Image

    n = session.scalar(select(func.count()).select_from(Image).where(Image.tenant_id == project_id)) or 0
    return {"images": int(n)}


register_holder("glance", _project_holdings)
