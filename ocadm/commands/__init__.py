"""ocadm command modules; registered in ocadm/command_table.py."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="CLOUDPODS_DATA_DIR",
    default=None, help="Controller data directory [CLOUDPODS_DATA_DIR; default ~/.local/share/cloudpods-one]")


def load_settings(data_dir: Path | None, **overrides: Any):  # type: ignore[no-untyped-def]
    """Settings of an initialised data dir, or a one-line error naming the fix."""
    from core.config import Settings
    from core.errors import InputParameterError

    s = Settings.load(data_dir, **overrides)
    if not s.config_path.exists():
        raise InputParameterError(f"{s.data_dir} is not initialised: run `ocadm init --data-dir {s.data_dir}`")
    return s
