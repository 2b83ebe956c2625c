"""Keypairs: import or generate, list, show, delete."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from climc.commands.compute_common import S, make_delete, make_list, make_show
from climc.output import output_options, show_object

keypair_list = make_list("keypair-list", "keypairs", ["id", "name", "scheme", "fingerprint", "created_at"],
                         "List keypairs")
keypair_show = make_show("keypair-show", "keypairs", "keypair", "Show a keypair")
keypair_delete = make_delete("keypair-delete", "keypairs", "keypair", "Delete keypairs")


@click.command("keypair-create")
@click.argument("name")
@click.option("--public-key", "public_key", default=None,
              help="The key, or @FILE to read it from a file; without it a pair is generated")
@click.option("--scheme", type=click.Choice(["RSA", "ED25519"]), default="RSA", show_default=True,
              help="Of a generated pair")
@click.option("--private-key-file", type=click.Path(dir_okay=False), default=None,
              help="Write a generated private key here (mode 0600) instead of printing it")
@output_options
@click.pass_obj
def keypair_create(obj: Any, name: str, public_key: str | None, scheme: str, private_key_file: str | None) -> None:
    """Import an OpenSSH public key, or generate a pair (the private key is shown this once only)."""
    import os

    body: dict[str, Any] = {"name": name}
    if public_key:
        body["public_key"] = Path(public_key[1:]).expanduser().read_text() if public_key.startswith("@") \
            else public_key
    else:
        body["scheme"] = scheme
    if private_key_file and os.path.exists(private_key_file):
        raise click.UsageError(f"{private_key_file} exists: give a new file for the private key")
    out = obj.client().post(S, "/keypairs", json={"keypair": body})["keypair"]
    if private_key_file and out.get("private_key"):
        fd = os.open(private_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(out.pop("private_key"))
        out["private_key"] = f"(written to {private_key_file})"
    show_object(out)
