"""ocadm policy: the effective RBAC rules, from the same data the controller enforces."""
from __future__ import annotations

import json

import click


@click.group("policy")
def policy() -> None:
    """Inspect RBAC rules."""


@policy.command("dump")
@click.option("-o", "--output-format", "fmt", type=click.Choice(["table", "json", "yaml"]), default="table",
              show_default=True)
@click.option("--service", default=None, help="Only rules of this service prefix (identity, compute, image, ...)")
def dump(fmt: str, service: str | None) -> None:
    """Print every registered rule: name, least role, scopes, description."""
    import core.keystone.policies  # noqa: F401  (registers every service's rules)
    from core.keystone.policy import dump as dump_rules

    rules = [r for r in dump_rules() if service is None or r["name"].split(":", 1)[0] == service]
    if fmt == "json":
        click.echo(json.dumps(rules, indent=2))
        return
    if fmt == "yaml":
        import yaml

        click.echo(yaml.safe_dump(rules, sort_keys=False).rstrip())
        return
    width = max((len(r["name"]) for r in rules), default=10)
    click.echo(f"{'RULE':<{width}}  {'ROLE':<6}  {'SCOPES':<21}  DESCRIPTION")
    for r in rules:
        click.echo(f"{r['name']:<{width}}  {r['role']:<6}  {','.join(r['scopes']):<21}  {r['description']}")
    click.echo(f"({len(rules)} rules; unknown rules deny)")
