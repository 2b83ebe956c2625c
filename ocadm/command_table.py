"""Every ocadm command: name -> ("module:attr", short help)."""
from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    "admin": ("ocadm.commands.admin:admin", "Break-glass operations on the database (reset a password)"),
    "agent": ("ocadm.commands.agent:agent", "Run the host agent (libvirt guests, bridges, DHCP)"),
    "backup": ("ocadm.commands.backup:backup", "Back up a running controller (database, keys, config)"),
    "config": ("ocadm.commands.config:config", "Show the controller's settings"),
    "deploy": ("ocadm.commands.deploy:deploy", "Render a Kubernetes deployment (and bootstrap it)"),
    "init": ("ocadm.commands.init:init", "Create config, database, keys and the admin user"),
    "install-service": ("ocadm.commands.install_service:install_service",
                        "Write a systemd unit for the controller or the agent"),
    "join": ("ocadm.commands.join:join", "Enroll this host with a controller (spends one use of a join token)"),
    "policy": ("ocadm.commands.policy:policy", "Show the effective RBAC rules"),
    "restore": ("ocadm.commands.backup:restore", "Restore a backup into a new data dir and database"),
    "serve": ("ocadm.commands.serve:serve", "Run the controller (every service, one port)"),
    "status": ("ocadm.commands.status:status", "Check services, database and migrations"),
    "token": ("ocadm.commands.token:token", "Manage token signing keys and host join tokens"),
    "upgrade": ("ocadm.commands.upgrade:upgrade", "Apply database migrations"),
    "version": ("ocadm.commands.version:version", "Show the version"),
}
