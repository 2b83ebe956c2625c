"""Login mistakes name the variable and the fix; the endpoint types rc files use are accepted;
rc_admin is enough for ocadm too (CLOUDPODS_DATA_DIR)."""
from __future__ import annotations

import uuid

import pytest

from tests.support.controller import Controller, parse_rc


def _env(controller: Controller, **kw: str | None) -> dict[str, str]:
    e = dict(controller.env)
    for k, v in kw.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e


def test_no_project_and_no_default_project_says_set_os_project_name(controller: Controller) -> None:
    name = f"noproj-{uuid.uuid4().hex[:6]}"
    assert controller.climc("user-create", name, "--password", "Secret-pw-123").returncode == 0
    assert controller.climc("project-add-user", "system", name, "member").returncode == 0
    r = controller.climc("server-list", env=_env(controller, OS_USERNAME=name, OS_PASSWORD="Secret-pw-123",
                                                 OS_PROJECT_NAME=None))
    assert r.returncode == 1
    assert "set OS_PROJECT_NAME" in r.stderr and "InternalServerError" not in r.stderr, r.stderr


@pytest.mark.parametrize("change, must_say", [
    ({"OS_AUTH_URL": "AUTHBASE"}, "/v3"),
    ({"OS_AUTH_URL": "notaurl"}, "OS_AUTH_URL=notaurl is not an http(s) URL"),
    ({"OS_ENDPOINT_TYPE": "sideways", "OS_INTERFACE": None}, "OS_ENDPOINT_TYPE"),
])
def test_login_mistakes_name_the_variable(controller: Controller, change: dict[str, str | None],
                                          must_say: str) -> None:
    base = controller.env["OS_AUTH_URL"].removesuffix("/v3")
    change = {k: (base if v == "AUTHBASE" else v) for k, v in change.items()}
    r = controller.climc("server-list", env=_env(controller, **change))
    assert r.returncode == 1, r.stdout
    assert must_say in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "InternalServerError" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("how", [("env", "publicURL"), ("env", "internalURL"), ("opt", "publicURL"),
                                 ("opt", "internal")])
def test_endpoint_types_of_rc_files_work(controller: Controller, how: tuple[str, str]) -> None:
    kind, value = how
    if kind == "env":
        r = controller.climc("server-list", env=_env(controller, OS_ENDPOINT_TYPE=value, OS_INTERFACE=None))
    else:
        r = controller.climc("--os-endpoint-type", value, "server-list")
    assert r.returncode == 0, r.stderr


def test_rc_admin_is_enough_for_ocadm(controller: Controller) -> None:
    rc = parse_rc(controller.data_dir / "rc_admin")
    assert rc["CLOUDPODS_DATA_DIR"] == str(controller.data_dir.resolve())
    env = {k: v for k, v in controller.env.items() if k != "CLOUDPODS_DATA_DIR"}
    r = controller.ocadm("status", env={**env, **rc})
    assert r.returncode == 0, r.stderr
