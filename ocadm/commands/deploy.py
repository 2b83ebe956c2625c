"""ocadm deploy: render a Kubernetes deployment, and the bootstrap step its Job runs.

    ocadm deploy k8s --db-url postgresql://u:p@db/cp --replicas 3 --secrets-dir ./k8s-secrets | kubectl apply -f -

What it renders: N stateless controller replicas (a Deployment behind a Service) over an external
PostgreSQL/MariaDB; an init container applies migrations (safe from N replicas: advisory lock);
a Job creates or repairs the admin user; the token and credential key repositories, the
database URL and the admin password are Secrets; images live on a shared volume claim; host agents
run as a DaemonSet on the nodes labelled as hypervisors. SQLite is refused: replicas share one
database server.
"""
from __future__ import annotations

import base64
import secrets as pysecrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from ocadm.commands import data_dir_option, load_settings

APP = "cloudpods-one"
DATA = "/var/lib/cloudpods-one"
AGENT_DATA = "/var/lib/cloudpods-one-agent"
DEFAULT_PORT = 30300
# Prometheus scrapes these pod ports (annotations prometheus.io/*): the controller's scrape-only
# listener (no token: /metrics names every project's usage, so the Service never exposes it) and
# each agent's /metrics on its node's address (host network).
DEFAULT_METRICS_PORT = 30301
DEFAULT_AGENT_METRICS_PORT = 30302
RUN_AS = 10001  # the controller's uid/gid inside the pod


@dataclass
class K8sSpec:
    db_url: str
    image: str
    namespace: str = "cloudpods"
    replicas: int = 2
    port: int = DEFAULT_PORT
    metrics_port: int = DEFAULT_METRICS_PORT  # 0: no scrape listener, no annotations
    agent_metrics_port: int = DEFAULT_AGENT_METRICS_PORT
    public_host: str = ""  # default: the Service's in-cluster name
    service_type: str = "ClusterIP"
    region_id: str = "region0"
    images_claim: str = ""  # an existing claim for images; default: create one
    images_size: str = "100Gi"
    storage_class: str = ""
    agents: bool = True
    agent_node_selector: dict[str, str] = field(default_factory=lambda: {"cloudpods.io/hypervisor": "true"})
    # secrets: None = do not render Secret objects (the operator creates them)
    token_keys: dict[str, bytes] | None = None
    credential_keys: dict[str, bytes] | None = None
    admin_password: str | None = None
    join_token: str = ""
    join_args: tuple[str, ...] = ()  # extra `ocadm join` options, e.g. ("--wire", "bcast0=br0:eth0")
    version: str = ""

    @property
    def service_host(self) -> str:
        return f"{APP}.{self.namespace}.svc"

    @property
    def controller_url(self) -> str:
        return f"http://{self.public_host or self.service_host}:{self.port}"


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": component}


def _meta(name: str, spec: K8sSpec, component: str) -> dict[str, Any]:
    labels = {**_labels(component), "app.kubernetes.io/managed-by": "ocadm"}
    if spec.version:
        labels["app.kubernetes.io/version"] = spec.version
    return {"name": name, "namespace": spec.namespace, "labels": labels}


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def config_toml(spec: K8sSpec) -> str:
    """The controller settings every replica shares (the database URL comes from a Secret instead)."""
    return "\n".join([
        "# cloudpods-one controller settings (rendered by `ocadm deploy k8s`)",
        'listen_host = "0.0.0.0"',
        f"port = {spec.port}",
        *([f'metrics_listen = "0.0.0.0:{spec.metrics_port}"'] if spec.metrics_port else []),
        f'public_host = "{spec.public_host or spec.service_host}"',
        f'region_id = "{spec.region_id}"',
        'log_level = "info"',
        "",
    ])


def _scrape(port: int) -> dict[str, Any]:
    """Pod annotations a Prometheus with the usual kubernetes-pods scrape config follows."""
    if not port:
        return {}
    return {"annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                            "prometheus.io/path": "/metrics", "prometheus.io/scheme": "http"}}


def _security(run_as: int | None) -> dict[str, Any]:
    ctx: dict[str, Any] = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                           "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    if run_as is not None:
        ctx.update(runAsNonRoot=True, runAsUser=run_as, runAsGroup=run_as)
    return ctx


def _controller_mounts() -> list[dict[str, Any]]:
    return [
        {"name": "data", "mountPath": DATA},
        {"name": "config", "mountPath": f"{DATA}/config.toml", "subPath": "config.toml", "readOnly": True},
        {"name": "token-keys", "mountPath": f"{DATA}/keys", "readOnly": True},
        {"name": "credential-keys", "mountPath": f"{DATA}/credential-keys", "readOnly": True},
        {"name": "images", "mountPath": f"{DATA}/images"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]


def _db_env() -> list[dict[str, Any]]:
    return [{"name": "CLOUDPODS_DB_URL", "valueFrom": {"secretKeyRef": {"name": f"{APP}-db", "key": "db-url"}}}]


def _container(name: str, spec: K8sSpec, args: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": spec.image, "imagePullPolicy": "IfNotPresent", "command": ["ocadm"],
            "args": args, "env": _db_env(), "volumeMounts": _controller_mounts(),
            "securityContext": _security(RUN_AS), **extra}


def _controller_volumes(spec: K8sSpec) -> list[dict[str, Any]]:
    claim = spec.images_claim or f"{APP}-images"
    return [
        {"name": "data", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "config", "configMap": {"name": f"{APP}-config"}},
        {"name": "token-keys", "secret": {"secretName": f"{APP}-token-keys", "defaultMode": 0o400}},
        {"name": "credential-keys", "secret": {"secretName": f"{APP}-credential-keys", "defaultMode": 0o400}},
        {"name": "images", "persistentVolumeClaim": {"claimName": claim}},
    ]


def _pod_security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"}}


def render(spec: K8sSpec) -> list[dict[str, Any]]:
    """Every object, in the order `kubectl apply` should create them."""
    docs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": spec.namespace, "labels": _labels("namespace")}}]
    if spec.token_keys is not None and spec.credential_keys is not None and spec.admin_password is not None:
        docs += [
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": _meta(f"{APP}-db", spec, "secret"),
             "stringData": {"db-url": spec.db_url}},
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": _meta(f"{APP}-admin", spec, "secret"),
             "stringData": {"admin-password": spec.admin_password, "join-token": spec.join_token}},
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": _meta(f"{APP}-token-keys", spec, "secret"),
             "data": {k: _b64(v) for k, v in sorted(spec.token_keys.items())}},
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": _meta(f"{APP}-credential-keys", spec, "secret"),
             "data": {k: _b64(v) for k, v in sorted(spec.credential_keys.items())}},
        ]
    docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(f"{APP}-config", spec, "config"),
                 "data": {"config.toml": config_toml(spec)}})
    docs.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(APP, spec, "controller"),
                 "automountServiceAccountToken": False})
    if not spec.images_claim:
        pvc_spec: dict[str, Any] = {
            # several replicas serve the same images: the volume must be shared between nodes
            "accessModes": ["ReadWriteMany" if spec.replicas > 1 else "ReadWriteOnce"],
            "resources": {"requests": {"storage": spec.images_size}}}
        if spec.storage_class:
            pvc_spec["storageClassName"] = spec.storage_class
        docs.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                     "metadata": _meta(f"{APP}-images", spec, "images"), "spec": pvc_spec})
    probe = {"httpGet": {"path": "/ping", "port": "api"}, "periodSeconds": 10, "timeoutSeconds": 3}
    serve = _container("controller", spec, ["serve", "--data-dir", DATA],
                       ports=[{"name": "api", "containerPort": spec.port, "protocol": "TCP"}] + (
                           [{"name": "metrics", "containerPort": spec.metrics_port, "protocol": "TCP"}]
                           if spec.metrics_port else []),
                       readinessProbe={**probe, "initialDelaySeconds": 2},
                       livenessProbe={**probe, "initialDelaySeconds": 20, "failureThreshold": 6},
                       resources={"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}})
    docs.append({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(f"{APP}-controller", spec, "controller"),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": _labels("controller")},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": _labels("controller"), **_scrape(spec.metrics_port)},
                "spec": {
                    "serviceAccountName": APP,
                    "automountServiceAccountToken": False,
                    "securityContext": _pod_security(),
                    # migrations first; every replica may try at once (the upgrade takes a DB lock)
                    "initContainers": [_container("upgrade", spec, ["upgrade", "--data-dir", DATA])],
                    "containers": [serve],
                    "volumes": _controller_volumes(spec),
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                        "weight": 100, "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": _labels("controller")}}}]}},
                    "terminationGracePeriodSeconds": 20,
                },
            },
        },
    })
    docs.append({
        "apiVersion": "v1", "kind": "Service", "metadata": _meta(APP, spec, "controller"),
        "spec": {"type": spec.service_type, "selector": _labels("controller"),
                 "ports": [{"name": "api", "port": spec.port, "targetPort": "api", "protocol": "TCP"}]},
    })
    bootstrap = _container("bootstrap", spec, ["deploy", "bootstrap", "--data-dir", DATA])
    bootstrap["env"] = _db_env() + [{"name": "CLOUDPODS_ADMIN_PASSWORD", "valueFrom": {
        "secretKeyRef": {"name": f"{APP}-admin", "key": "admin-password"}}}]
    docs.append({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": _meta(f"{APP}-bootstrap-{_dns(spec.version or 'x')}", spec, "bootstrap"),
        "spec": {"backoffLimit": 10, "ttlSecondsAfterFinished": 86400, "template": {
            "metadata": {"labels": _labels("bootstrap")},
            "spec": {"restartPolicy": "OnFailure", "serviceAccountName": APP,
                     "automountServiceAccountToken": False, "securityContext": _pod_security(),
                     "containers": [bootstrap], "volumes": _controller_volumes(spec)}}},
    })
    if spec.agents:
        docs.append(_agent_daemonset(spec))
    return docs


def _dns(s: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in s.lower()).strip("-")[:40] or "x"


def _agent_daemonset(spec: K8sSpec) -> dict[str, Any]:
    env = [
        {"name": "CLOUDPODS_DATA_DIR", "value": AGENT_DATA},
        {"name": "NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "CLOUDPODS_JOIN_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": f"{APP}-admin", "key": "join-token", "optional": True}}},
    ]
    mounts = [{"name": "agent-data", "mountPath": AGENT_DATA},
              {"name": "libvirt-run", "mountPath": "/var/run/libvirt"},
              {"name": "modules", "mountPath": "/lib/modules", "readOnly": True}]
    # a hypervisor agent owns host networking (bridges, taps, DHCP) and libvirt: privileged, host network
    privileged = {"privileged": True, "allowPrivilegeEscalation": True, "readOnlyRootFilesystem": True}

    def c(name: str, args: list[str]) -> dict[str, Any]:
        return {"name": name, "image": spec.image, "imagePullPolicy": "IfNotPresent", "command": ["ocadm"],
                "args": args, "env": env, "volumeMounts": mounts, "securityContext": privileged}

    # `ocadm join` is a no-op once this node's agent config exists (hostPath), so it may run on every start
    scrape = ["--metrics-listen", f"$(NODE_IP):{spec.agent_metrics_port}"] if spec.agent_metrics_port else []
    join = c("join", ["join", "--controller", spec.controller_url, "--token", "$(CLOUDPODS_JOIN_TOKEN)",
                      "--data-dir", AGENT_DATA, *scrape, *spec.join_args])
    agent = c("agent", ["agent", "--data-dir", AGENT_DATA])
    agent["resources"] = {"requests": {"cpu": "100m", "memory": "128Mi"}}
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": _meta(f"{APP}-agent", spec, "agent"),
        "spec": {
            "selector": {"matchLabels": _labels("agent")},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": _labels("agent"), **_scrape(spec.agent_metrics_port)},
                "spec": {
                    "hostNetwork": True,
                    "dnsPolicy": "ClusterFirstWithHostNet",  # host network, yet resolve the Service name
                    "nodeSelector": dict(spec.agent_node_selector),
                    "automountServiceAccountToken": False,
                    "initContainers": [join],
                    "containers": [agent],
                    "volumes": [
                        {"name": "agent-data", "hostPath": {"path": AGENT_DATA, "type": "DirectoryOrCreate"}},
                        {"name": "libvirt-run", "hostPath": {"path": "/var/run/libvirt", "type": "Directory"}},
                        {"name": "modules", "hostPath": {"path": "/lib/modules", "type": "Directory"}},
                    ],
                    "terminationGracePeriodSeconds": 30,
                },
            },
        },
    }


def to_yaml(docs: list[dict[str, Any]]) -> str:
    import yaml

    return "".join("---\n" + yaml.safe_dump(d, sort_keys=False, default_flow_style=False) for d in docs)


def load_or_create_keys(path: Path) -> dict[str, bytes]:
    """A key repository's files (``0`` staged, highest primary), created once when missing."""
    from core.keystone.keys import KeyRepository

    repo = KeyRepository(path)
    repo.create()
    return {p.name: p.read_bytes().strip() for p in sorted(path.iterdir()) if p.name.isdigit()}


def _secret_file(path: Path, make: Any) -> str:
    from core.config import write_private

    if not path.exists():
        write_private(path, make())
    return path.read_text().strip()


def _check_db_url(url: str) -> str:
    from core.errors import InputParameterError

    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if scheme not in ("postgresql", "postgres", "mysql", "mariadb"):
        raise InputParameterError("--db-url must be postgresql://... or mysql://...: replicas share one database "
                                  "server (SQLite cannot be shared)")
    return url


@click.group("deploy")
def deploy() -> None:
    """Render a Kubernetes deployment (and bootstrap it)."""


@deploy.command("k8s")
@click.option("--db-url", envvar="CLOUDPODS_DB_URL", required=True,
              help="postgresql://... or mysql://... of the external database [CLOUDPODS_DB_URL]")
@click.option("--image", default=None, help="Container image [default cloudpods-one:<version>]")
@click.option("--namespace", default="cloudpods", show_default=True)
@click.option("--replicas", type=click.IntRange(1, 100), default=2, show_default=True, help="Controller replicas")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=DEFAULT_METRICS_PORT, show_default=True,
              help="Controller pod port serving /metrics without a token, annotated for Prometheus (0: none)")
@click.option("--agent-metrics-port", type=click.IntRange(0, 65535), default=DEFAULT_AGENT_METRICS_PORT,
              show_default=True, help="Agents' /metrics port on their node's address, annotated (0: none)")
@click.option("--public-host", default="", help="Host name clients use in the catalog [default: the Service name]")
@click.option("--service-type", type=click.Choice(["ClusterIP", "NodePort", "LoadBalancer"]), default="ClusterIP",
              show_default=True)
@click.option("--region", "region_id", default="region0", show_default=True)
@click.option("--images-claim", default="", help="Use this existing PersistentVolumeClaim for images")
@click.option("--images-size", default="100Gi", show_default=True, help="Size of the images claim to create")
@click.option("--storage-class", default="", help="StorageClass of the images claim [cluster default]")
@click.option("--agents/--no-agents", default=True, show_default=True, help="Render the host agent DaemonSet")
@click.option("--agent-node-selector", multiple=True, metavar="KEY=VALUE",
              help="Nodes that run agents (repeatable) [default cloudpods.io/hypervisor=true]")
@click.option("--join-token", default="",
              help="Join token for the agents, one use per node (`ocadm token create --uses N` on a controller)")
@click.option("--join-arg", "join_args", multiple=True, metavar="ARG",
              help="Extra `ocadm join` argument for every agent (repeatable), e.g. --join-arg=--wire=w0=br0:eth0")
@click.option("--secrets-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep generated keys and passwords here and reuse them on the next render (mode 0700)")
@click.option("--no-secrets", is_flag=True, help="Do not render Secret objects (you create them yourself)")
@click.option("--output", "-f", "output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the manifests to this file (mode 0600) instead of stdout")
def k8s(db_url: str, image: str | None, namespace: str, replicas: int, port: int, metrics_port: int,
        agent_metrics_port: int, public_host: str,
        service_type: str, region_id: str, images_claim: str, images_size: str, storage_class: str, agents: bool,
        agent_node_selector: tuple[str, ...], join_token: str, join_args: tuple[str, ...],
        secrets_dir: Path | None, no_secrets: bool, output: Path | None) -> None:
    """Print Kubernetes manifests: N controllers over an external database, agents as a DaemonSet."""
    import tempfile

    from core.config import write_private
    from core.errors import InputParameterError
    from core.version import VERSION

    selector: dict[str, str] = {}
    for item in agent_node_selector:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise InputParameterError(f"--agent-node-selector {item!r}: expected KEY=VALUE")
        selector[k] = v
    if metrics_port and metrics_port == port:
        raise InputParameterError(f"--metrics-port {metrics_port}: must differ from --port (the API's)")
    if _dns(namespace) != namespace:
        raise InputParameterError(f"--namespace {namespace!r}: use lower-case letters, digits and '-'")
    spec = K8sSpec(db_url=_check_db_url(db_url), image=image or f"cloudpods-one:{VERSION}", namespace=namespace,
                   replicas=replicas, port=port, metrics_port=metrics_port, agent_metrics_port=agent_metrics_port,
                   public_host=public_host, service_type=service_type,
                   region_id=region_id, images_claim=images_claim, images_size=images_size,
                   storage_class=storage_class, agents=agents, join_token=join_token, join_args=join_args,
                   version=VERSION)
    if selector:
        spec.agent_node_selector = selector
    if not no_secrets:
        if secrets_dir is None:
            click.echo("note: new keys and admin password generated; pass --secrets-dir DIR to keep them for "
                       "the next render (new keys would log everyone out)", err=True)
            base = Path(tempfile.mkdtemp(prefix="cloudpods-k8s-"))
        else:
            base = secrets_dir.expanduser()
            base.mkdir(parents=True, exist_ok=True, mode=0o700)
        spec.token_keys = load_or_create_keys(base / "keys")
        spec.credential_keys = load_or_create_keys(base / "credential-keys")
        spec.admin_password = _secret_file(base / "admin-password", lambda: pysecrets.token_urlsafe(18))
        if secrets_dir is None:
            import shutil

            shutil.rmtree(base, ignore_errors=True)
    text = to_yaml(render(spec))
    if output is None:
        click.echo(text, nl=False)
    else:
        write_private(output, text)
        click.echo(f"Wrote {len(text.splitlines())} lines to {output}", err=True)


@deploy.command("bootstrap")
@data_dir_option
def bootstrap(data_dir: Path | None) -> None:
    """Apply migrations and create or repair the admin user (the Kubernetes Job runs this)."""
    import os

    from core.db.engine import Database
    from core.db.migrate import upgrade
    from core.errors import InputParameterError
    from core.keystone.bootstrap import bootstrap as do_bootstrap

    password = os.environ.get("CLOUDPODS_ADMIN_PASSWORD", "")
    if len(password) < 8:
        # from the environment only: a command-line argument would show in `ps`
        raise InputParameterError("set CLOUDPODS_ADMIN_PASSWORD (8 characters or more) to the admin password")
    s = load_settings(data_dir)
    db = Database(s.database_url)
    try:
        after = upgrade(db.engine, lock_file=s.data_dir / "migrate.lock")
        with db.session() as session:
            do_bootstrap(session, admin_password=password, public_url=s.public_url, region_id=s.region_id)
    finally:
        db.dispose()
    click.echo(f"Schema at {', '.join(sorted(after.db))}; admin user ready; catalog points at {s.public_url}.")
