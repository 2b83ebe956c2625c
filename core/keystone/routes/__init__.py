"""The identity API's sub-routers, one module per resource family; ``core/keystone/api.py`` mounts them."""
from __future__ import annotations
