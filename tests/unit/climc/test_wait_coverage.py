"""Every climc verb that starts asynchronous work offers --wait (issue 23), and every kind of task the
controller runs is started by some verb listed here: a new task class fails this test until its
verbs are listed (and offer --wait)."""
from __future__ import annotations

import click

from core.region.tasks import REGION_TASKS

# task class -> the climc verbs that queue it (each must offer --wait)
VERBS_BY_TASK: dict[str, tuple[str, ...]] = {
    "ServerBatchCreateTask": ("server-create",),
    "ServerCreateTask": ("server-create",),  # a child of the batch task
    "ServerDeleteTask": ("server-delete", "server-purge"),
    "ServerPowerTask": ("server-start", "server-stop", "server-restart", "server-reset", "server-suspend",
                        "server-resume"),
    "ServerSyncstatusTask": ("server-syncstatus",),
    "ServerChangeConfigTask": ("server-change-config",),
    "ServerMigrateTask": ("server-migrate",),
    "ServerLiveMigrateTask": ("server-live-migrate",),
    "ServerRebuildRootTask": ("server-rebuild-root",),
    "ServerAttachDiskTask": ("server-attach-disk", "server-create-disk"),
    "ServerDetachDiskTask": ("server-detach-disk",),
    "DiskDeleteTask": ("disk-delete",),
    "SnapshotCreateTask": ("snapshot-create", "disk-create-snapshot"),
    "SnapshotDeleteTask": ("snapshot-delete",),
    "InstanceSnapshotCreateTask": ("instance-snapshot-create",),
    "InstanceSnapshotDeleteTask": ("instance-snapshot-delete",),
    "InstanceSnapshotResetTask": ("instance-snapshot-reset",),
    "ServerResetPasswordTask": ("server-reset-password",),
    "ServerCdromTask": ("server-insert-iso", "server-eject-iso"),
    "ServerBootOrderTask": ("server-set-boot-index",),
    "DiskResetTask": ("disk-reset",),
    "DiskResizeTask": ("disk-resize",),
    "ServerAttachNetworkTask": ("server-attach-network",),
    "ServerDetachNetworkTask": ("server-detach-network",),
    "ServerChangeIpaddrTask": ("server-change-ipaddr",),
    "ServerSaveImageTask": ("server-save-image", "disk-save"),
    "CloudAccountSyncTask": ("cloud-account-sync", "cloud-account-create-aws", "cloud-account-create-cloudpods",
                             "cloud-account-create-vmware"),
    "EipAllocateTask": ("eip-create",),
    "EipAssociateTask": ("eip-associate",),
    "EipDissociateTask": ("eip-dissociate",),
    "EipDeallocateTask": ("eip-delete",),
}
# async work without a task row: followed by the object's status
OTHER_ASYNC = ("image-upload", "disk-create")
# verbs that may look asynchronous but finish before they answer (so --wait would wait for nothing)
SYNCHRONOUS = {
    "cloud-account-delete": "deletes the account's rows in the request's transaction",
    "server-cancel-delete": "clears the recycle-bin flags in the request",
    "server-change-owner": "moves the rows in the request",
    "server-add-secgroup": "the hosts apply rules within a second of the commit (no task)",
    "server-change-bandwidth": "the host applies it with its rules (no task)",
    "server-associate-eip": "NAT rules reach the host with its rules (no task)",
    "host-power-on": "the BMC is asked during the request",
}


def _options(name: str) -> set[str]:
    from climc.main import cli

    cmd = cli.get_command(click.Context(cli), name)
    assert cmd is not None, f"climc has no {name}"
    return {o for p in cmd.params for o in getattr(p, "opts", [])}


def test_every_task_the_controller_runs_is_mapped_to_the_verbs_that_start_it() -> None:
    missing = sorted(set(REGION_TASKS) - set(VERBS_BY_TASK))
    assert not missing, (f"new task classes {missing}: add them to VERBS_BY_TASK with the climc verbs that "
                         "queue them, and give those verbs --wait (climc.wait.wait_options)")
    assert not set(VERBS_BY_TASK) - set(REGION_TASKS), "VERBS_BY_TASK names tasks that no longer exist"


def test_every_async_verb_offers_wait_and_a_timeout() -> None:
    verbs = sorted({v for vs in VERBS_BY_TASK.values() for v in vs} | set(OTHER_ASYNC))
    lacking = [v for v in verbs if "--wait" not in _options(v)]
    assert not lacking, f"async verbs without --wait: {lacking}"
    no_timeout = [v for v in verbs if not {"--timeout", "--wait-timeout"} & _options(v)]
    assert not no_timeout, f"--wait without a timeout: {no_timeout}"


def test_the_synchronous_list_offers_no_wait_that_would_wait_for_nothing() -> None:
    assert [v for v in SYNCHRONOUS if "--wait" in _options(v)] == []
