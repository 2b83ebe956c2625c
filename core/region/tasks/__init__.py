"""Region task classes, by name (registered with the task engine by core/region/__init__.py)."""

REGION_TASKS: dict[str, str] = {
    "ServerBatchCreateTask": "core.region.tasks.create:ServerBatchCreateTask",
    "ServerCreateTask": "core.region.tasks.create:ServerCreateTask",
    "ServerDeleteTask": "core.region.tasks.delete:ServerDeleteTask",
    "ServerPowerTask": "core.region.tasks.power:ServerPowerTask",
    "ServerSyncstatusTask": "core.region.tasks.power:ServerSyncstatusTask",
    "ServerChangeConfigTask": "core.region.tasks.config:ServerChangeConfigTask",
    "ServerMigrateTask": "core.region.tasks.config:ServerMigrateTask",
    "ServerLiveMigrateTask": "core.region.tasks.live:ServerLiveMigrateTask",
    "ServerRebuildRootTask": "core.region.tasks.config:ServerRebuildRootTask",
    "ServerAttachDiskTask": "core.region.tasks.config:ServerAttachDiskTask",
    "ServerDetachDiskTask": "core.region.tasks.config:ServerDetachDiskTask",
    "DiskDeleteTask": "core.region.tasks.delete:DiskDeleteTask",
    "SnapshotCreateTask": "core.region.tasks.snapshots:SnapshotCreateTask",
    "SnapshotDeleteTask": "core.region.tasks.snapshots:SnapshotDeleteTask",
    "DiskResetTask": "core.region.tasks.snapshots:DiskResetTask",
    "DiskResizeTask": "core.region.tasks.snapshots:DiskResizeTask",
    "ServerAttachNetworkTask": "core.region.tasks.nics:ServerAttachNetworkTask",
    "ServerDetachNetworkTask": "core.region.tasks.nics:ServerDetachNetworkTask",
    "ServerSaveImageTask": "core.region.tasks.saveimage:ServerSaveImageTask",
}
