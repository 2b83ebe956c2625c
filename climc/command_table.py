"""Every climc command: name -> ("module:attr", short help). Keep sorted within each family."""
from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    # identity (keystone)
    "endpoint-list": ("climc.commands.identity:endpoint_list", "List service endpoints in the catalog"),
    "service-list": ("climc.commands.identity:service_list", "List services in the catalog"),
    "token-issue": ("climc.commands.identity:token_issue", "Issue a token and show it"),
    # image (glance)
    "image-delete": ("climc.commands.images:image_delete", "Delete images"),
    "image-download": ("climc.commands.images:image_download", "Download an image (streamed, progress, md5 check)"),
    "image-list": ("climc.commands.images:image_list", "List images"),
    "image-private": ("climc.commands.images:image_private", "Make images private to their project"),
    "image-public": ("climc.commands.images:image_public", "Make images visible to every project"),
    "image-show": ("climc.commands.images:image_show", "Show an image"),
    "image-update": ("climc.commands.images:image_update", "Change an image's metadata"),
    "image-upload": ("climc.commands.images:image_upload", "Upload an image file (streamed, resumable)"),
    # general
    "version": ("climc.commands.general:version", "Show client and server versions"),
}
