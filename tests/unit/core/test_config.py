from __future__ import annotations

import os
import stat

import pytest

from core.config import Settings, redact_url
from core.errors import InputParameterError


def test_file_then_env_override(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    s = Settings.load(tmp_path, port=31000, db_url="postgresql://u:secret@h/db")
    s.save()
    assert stat.S_IMODE(os.stat(s.config_path).st_mode) == 0o600
    assert Settings.load(tmp_path).port == 31000
    monkeypatch.setenv("CLOUDPODS_PORT", "31001")
    assert Settings.load(tmp_path).port == 31001
    assert "secret" not in str(Settings.load(tmp_path).redacted())


def test_bad_values_are_clear(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CLOUDPODS_PORT", "lots")
    with pytest.raises(InputParameterError, match="port"):
        Settings.load(tmp_path)
    monkeypatch.setenv("CLOUDPODS_PORT", "70000")
    with pytest.raises(InputParameterError, match="port"):
        Settings.load(tmp_path)
    monkeypatch.delenv("CLOUDPODS_PORT")
    (tmp_path / "config.toml").write_text("port = [")
    with pytest.raises(InputParameterError, match="cannot parse"):
        Settings.load(tmp_path)


def test_redact_url() -> None:
    assert redact_url("mysql+pymysql://app:pw@127.0.0.1:3306/db") == "mysql+pymysql://app:***@127.0.0.1:3306/db"
    assert redact_url("sqlite:////x/y.db") == "sqlite:////x/y.db"
