"""Region rules: readers read, members manage their project's resources, admins run the cloud."""
from __future__ import annotations

from core.keystone.policy import Rule, register

_INFRA = ("cloudregions", "zones", "vpcs", "wires", "hosts", "storages", "hoststorages", "hostwires",
          "reservedips")
_NETWORKS = ("networks", "eips")
_OWNED = ("servers", "disks", "keypairs", "secgroups", "snapshots", "instance_snapshots")

rules = []
for plural in _INFRA + _NETWORKS + _OWNED + ("tasks",):
    rules += [Rule(f"compute:{plural}:list", "reader", description=f"List {plural}."),
              Rule(f"compute:{plural}:get", "reader", description=f"Show one of {plural}.")]
for plural in _INFRA:
    rules += [Rule(f"compute:{plural}:{op}", "admin", description=f"{op.capitalize()} {plural} (cloud admins).")
              for op in ("create", "update", "delete", "perform")]
for plural in _NETWORKS + _OWNED:
    role = "admin" if plural == "networks" else "member"
    rules += [Rule(f"compute:{plural}:{op}", role, description=f"{op.capitalize()} {plural}.")
              for op in ("create", "update", "delete", "perform")]
# public clouds: readers see their project's accounts and what they synced; admins manage accounts
for plural in ("cloudaccounts", "cloudproviders", "cachedimages"):
    rules += [Rule(f"compute:{plural}:list", "reader", description=f"List {plural}."),
              Rule(f"compute:{plural}:get", "reader", description=f"Show one of {plural}.")]
rules += [Rule(f"compute:cloudaccounts:{op}", "admin", description=f"{op.capitalize()} cloud accounts.")
          for op in ("create", "update", "delete", "perform")]
# alerting: members keep their project's rules, readers read them and the history; notify configs
# (where the controller connects or mails) are for admins; a rule on a host for system admins
for plural in ("commonalerts", "alertrecords", "notifyconfigs"):
    rules += [Rule(f"compute:{plural}:list", "reader", description=f"List {plural}."),
              Rule(f"compute:{plural}:get", "reader", description=f"Show one of {plural}.")]
rules += [Rule(f"compute:commonalerts:{op}", "member", description=f"{op.capitalize()} alert rules.")
          for op in ("create", "update", "delete", "perform")]
rules += [Rule(f"compute:notifyconfigs:{op}", "admin", description=f"{op.capitalize()} notify configs.")
          for op in ("create", "update", "delete", "perform")]
rules += [Rule("compute:commonalerts:host", "admin", scopes=("system",),
               description="Create an alert rule on a host (the cloud's, not a project's).")]
rules += [
    Rule("compute:tasks:perform", "admin", description="Report a work item's result (host agents)."),
    Rule("compute:hosts:agent", "admin", description="Long-poll a host's work items (host agents)."),
    Rule("compute:hosts:executor", "admin", scopes=("system",),
         description="See and create hosts run by the controller's executor, and their driver config."),
    Rule("compute:quotas:get", "reader", description="Show the project's quota."),
    Rule("compute:quotas:manage", "admin", description="Set any project's quota."),
    Rule("compute:quotas:manage_domains", "admin", ("system",),
         description="Set a domain's own quota caps (the sum of its projects' usage stays within them)."),
    Rule("compute:usages:get", "reader", description="Show resource usage."),
    Rule("compute:capabilities:get", "reader",
         description="Show what a server-create can ask for (hypervisors, storage types)."),
]
register(rules)
