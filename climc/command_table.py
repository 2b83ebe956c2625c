"""Every climc command: name -> ("module:attr", short help). Keep sorted within each family."""
from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    # identity (keystone)
    "endpoint-list": ("climc.commands.identity:endpoint_list", "List service endpoints in the catalog"),
    "service-list": ("climc.commands.identity:service_list", "List services in the catalog"),
    "token-issue": ("climc.commands.identity:token_issue", "Issue a token and show it"),
    # general
    "version": ("climc.commands.general:version", "Show client and server versions"),
}
