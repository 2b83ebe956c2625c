"""Image (glance) rules: members manage their project's images, anyone may read public ones,
only admins publish an image to every tenant or change quotas."""
from __future__ import annotations

from core.keystone.policy import Rule, register

RULES = (
    Rule("image:images:list", "reader", description="List images (own project's and public ones)."),
    Rule("image:images:get", "reader", description="Show an image."),
    Rule("image:images:download", "reader", description="Download an image's data."),
    Rule("image:images:create", "member", description="Create an image in one's project."),
    Rule("image:images:upload", "member", description="Upload an image's data."),
    Rule("image:images:update", "member", description="Change an image's metadata."),
    Rule("image:images:delete", "member", description="Delete an image."),
    Rule("image:images:publicize", "admin", description="Make an image public to every tenant, or private again."),
    Rule("image:quotas:get", "reader", description="Show a project's image byte quota and usage."),
    Rule("image:quotas:update", "admin", ("system",), description="Set a project's image byte quota."),
)
register(RULES)
