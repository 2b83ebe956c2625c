"""Attach / detach a NIC: one work item each; the address held by the API is kept or given back."""
from __future__ import annotations

from sqlalchemy import select

from core.host_protocol import NicChangePayload, NicPayload, WorkKind
from core.region import quotas
from core.region.models import HostWire, IpAllocation, Network, Server, Wire
from core.region.tasks._common import ServerTask, release_task, server_of, server_ref
from core.tasks.engine import Run, StageError


def _nic_payload(run: Run, server: Server, network_id: str | None = None) -> NicPayload:
    """The NIC as the host plugs it: on its own network, or on ``network_id`` (change-ipaddr moves it)."""
    a = run.session.get(IpAllocation, run.params.get("allocation_id", ""))
    if a is None:
        raise StageError("the NIC's address is no longer held")
    net = run.session.get(Network, network_id or a.network_id)
    assert net is not None
    hw = run.session.scalar(select(HostWire).where(HostWire.host_id == server.host_id,
                                                   HostWire.wire_id == net.wire_id))
    wire = run.session.get(Wire, net.wire_id)
    return NicPayload(index=a.nic_index, ifname=a.ifname, ip=a.ip_addr, mac=a.mac, mask=net.guest_ip_mask,
                      gateway=net.guest_gateway or "", dns=net.guest_dns or "", vlan_id=net.vlan_id,
                      network_id=net.id, wire_id=net.wire_id, bridge=hw.bridge if hw else "",
                      mtu=wire.mtu if wire else 1500)


def _give_back(run: Run, server: Server | None) -> None:
    """The address and its quota back (the NIC is not, or no longer, on the guest)."""
    a = run.session.get(IpAllocation, run.params.get("allocation_id", ""))
    if a is not None:
        run.session.delete(a)
    if server is not None and a is not None:
        quotas.release(run.session, server.tenant_id, {"ips": 1})
        q = dict(server.held.get("quota") or {})
        q["ips"] = max(int(q.get("ips", 0)) - 1, 0)
        server.held = {**server.held, "quota": q}


class ServerAttachNetworkTask(ServerTask):
    name = "ServerAttachNetworkTask"

    def on_init(self, run: Run) -> None:
        server = server_of(run)
        run.dispatch(str(server.host_id), WorkKind.ATTACH_NIC,
                     NicChangePayload(server=server_ref(server), nic=_nic_payload(run, server)), then="on_attached")

    def on_attached(self, run: Run) -> None:
        server = server_of(run)
        run.result_of(WorkKind.ATTACH_NIC)
        release_task(server, run)
        run.complete()

    def undo(self, run: Run, server: Server | None, reason: str) -> None:
        _give_back(run, server)


class ServerDetachNetworkTask(ServerTask):
    name = "ServerDetachNetworkTask"

    def on_init(self, run: Run) -> None:
        server = server_of(run)
        run.dispatch(str(server.host_id), WorkKind.DETACH_NIC,
                     NicChangePayload(server=server_ref(server), nic=_nic_payload(run, server)), then="on_detached")

    def on_detached(self, run: Run) -> None:
        server = server_of(run)
        run.result_of(WorkKind.DETACH_NIC)
        _give_back(run, server)
        release_task(server, run)
        run.complete()

    # a failure undoes nothing: the NIC stays (the host did not take it out), so does its address


class ServerChangeIpaddrTask(ServerTask):
    """The host re-leases the guest's NIC (same MAC, same device) on its new address, on the new
    network's bridge if it moves; then the NIC's row takes that address (and network) and the old
    one is given back, or kept reserved (``reserve``)."""

    name = "ServerChangeIpaddrTask"

    def on_init(self, run: Run) -> None:
        server = server_of(run)
        new = run.session.get(IpAllocation, run.params["new_id"])
        if new is None:
            raise StageError("the new address is no longer held")
        nic = _nic_payload(run, server, new.network_id).model_copy(update={"ip": new.ip_addr})
        run.dispatch(str(server.host_id), WorkKind.ATTACH_NIC, NicChangePayload(server=server_ref(server), nic=nic),
                     then="on_changed")

    def on_changed(self, run: Run) -> None:
        from core.region.models import Network
        from core.region.secgroups import touch_hosts

        server = server_of(run)
        run.result_of(WorkKind.ATTACH_NIC)
        nic = run.session.get(IpAllocation, run.params["allocation_id"])
        new = run.session.get(IpAllocation, run.params["new_id"])
        if nic is None or new is None:
            raise StageError("the NIC or its new address is gone")
        old_addr, old_net, new_addr, new_int, new_net = nic.ip_addr, nic.network_id, new.ip_addr, new.ip_int, \
            new.network_id
        run.session.delete(new)  # one transaction: the address passes from the holder to the NIC
        run.session.flush()
        nic.ip_addr, nic.ip_int, nic.network_id = new_addr, new_int, new_net
        run.session.flush()
        if run.params.get("reserve"):
            from core.region import ipam

            net = run.session.get(Network, old_net)
            assert net is not None
            ipam.allocate(run.session, net, "reserved", "", address=old_addr,
                          notes=f"released by change-ipaddr of server {server.name}"[:255])
        run.set_params(old_ip=old_addr, new_ip=new_addr)
        touch_hosts(run.session, [server.host_id])  # its anti-spoofing rules name the address
        release_task(server, run)
        run.complete()

    def undo(self, run: Run, server: Server | None, reason: str) -> None:
        held = run.session.get(IpAllocation, run.params.get("new_id", ""))
        if held is not None:  # the NIC keeps its address; the one held for it goes back
            run.session.delete(held)
