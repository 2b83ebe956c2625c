"""A test double of a host agent that speaks the real HTTP API (long-poll + POST /tasks/<id>).

It is a small loop over ``core.client``, not a mock inside the server: the controller cannot tell
it from the KVM agent. ``fail_kinds`` makes it report errors for some work kinds.
"""
from __future__ import annotations

import threading
from typing import Any

from core.client import AuthOptions, Client
from core.errors import CloudpodsError


class FakeAgent:
    def __init__(self, env: dict[str, str], host_id: str, fail_kinds: tuple[str, ...] = ()) -> None:
        self.client = Client(AuthOptions.from_env(env), use_cache=False, timeout=30)
        self.host_id = host_id
        self.fail_kinds = set(fail_kinds)
        self.seen: list[dict[str, Any]] = []
        self.power: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> FakeAgent:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.client.close()

    def answer(self, wi: dict[str, Any]) -> dict[str, Any]:
        kind, p = wi["kind"], wi["payload"]
        sid = (p.get("server") or {}).get("id", "")
        if kind in self.fail_kinds:
            return {"__status__": "error", "__reason__": f"fake agent refuses {kind}"}
        if kind == "guest-deploy":
            on = bool(p["server"].get("auto_start"))
            self.power[sid] = "running" if on else "stopped"
            return {"guest_status": self.power[sid],
                    "disks": [{"id": d["id"], "access_path": f"/fake/{d['id']}.qcow2"} for d in p["disks"]]}
        if kind in ("guest-start", "guest-restart", "guest-reset", "guest-resume"):
            self.power[sid] = "running"
        elif kind == "guest-stop":
            self.power[sid] = "stopped"
        elif kind == "guest-suspend":
            self.power[sid] = "suspended"
        elif kind == "guest-change-config":
            return {"guest_status": self.power.get(sid, "absent"), "vcpu_count": p["vcpu_count"],
                    "vmem_size": p["vmem_size"]}
        elif kind == "guest-delete":
            return {"deleted": self.power.pop(sid, None) is not None}
        return {"guest_status": self.power.get(sid, "absent")}

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                items = self.client.get("compute_v2", f"/hosts/{self.host_id}/work-items",
                                        params={"wait": 1})["work_items"]
                for wi in items:
                    self.seen.append(wi)
                    body = {"work_item_id": wi["id"], **self.answer(wi)}
                    self.client.post("compute_v2", f"/tasks/{wi['task_id']}", json=body)
            except CloudpodsError:
                self._stop.wait(0.2)
