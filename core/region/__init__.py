"""Region: resources, IPAM, quotas and the tasks that change them."""
from core.region.tasks import REGION_TASKS
from core.tasks.registry import register_tasks

register_tasks(REGION_TASKS)  # whoever loads region code can run its tasks; the engine imports no region
