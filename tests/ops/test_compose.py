"""docker-compose.yml and the Dockerfile are valid and consistent (Docker itself cannot run on CI machines)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from compose_spec import PyCompose
from dockerfile_parse import DockerfileParser

from twinledger.ipfs.kubo import kubo_version_supported
from twinledger_node.services.snapshots import CONTENT_PROFILE
from twinledger_node.settings import NodeSettings

REPO = Path(__file__).resolve().parents[2]
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")
SERVICES = ["chain", "cluster", "deployer", "kubo", "migrate", "node", "postgres", "proxy"]
# a URL with a password in it: scheme://user:password@host
URL_WITH_PASSWORD = re.compile(r"[a-z]+://[^/\s:@]+:[^/\s@]+@")


def _env_example() -> dict[str, str]:
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _interpolated() -> str:
    """The compose file as Compose would read it with .env.example as the .env file."""
    env = _env_example()
    text = (REPO / "docker-compose.yml").read_text()
    undocumented = sorted({m.group(1) for m in VARIABLE.finditer(text)} - env.keys())
    assert not undocumented, f"variables used by docker-compose.yml but missing from .env.example: {undocumented}"
    return VARIABLE.sub(lambda m: env[m.group(1)] or (m.group(2) or ""), text).replace("$$", "$")


def _dockerfile() -> DockerfileParser:
    return DockerfileParser(path=str(REPO / "Dockerfile"))


def _node_port() -> int:
    """The port the node listens on in its image (the Dockerfile's TWINLEDGER_PORT)."""
    return int(_dockerfile().envs["TWINLEDGER_PORT"])


def _mounts(service: dict) -> list[tuple[str, str, bool]]:
    """(source, target, read-only) of a service's short-syntax volumes."""
    mounts = []
    for mount in service.get("volumes", []):
        source, target, *options = mount.split(":")
        mounts.append((source, target, "ro" in options))
    return mounts


def _secret_targets(service: dict) -> dict[str, str]:
    """Target (the file name under /run/secrets) to source of a service's secrets."""
    return {secret.get("target", secret["source"]): secret["source"] for secret in service.get("secrets", [])}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(_interpolated())


def test_compose_file_is_valid_compose_spec():
    parsed = PyCompose.from_yaml(_interpolated())  # the Rust compose_spec parser: schema and value validation
    assert sorted(parsed.service_names()) == SERVICES


def test_dependencies_wait_for_health_and_the_one_shot_services(compose):
    services = compose["services"]
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck for {name} to wait on"
            else:
                assert condition == "service_completed_successfully" and services[dependency]["restart"] == "no"
    node = services["node"]["depends_on"]
    assert node["deployer"]["condition"] == "service_completed_successfully"
    assert node["migrate"]["condition"] == "service_completed_successfully"
    for dependency in ("chain", "postgres", "cluster"):
        assert node[dependency]["condition"] == "service_healthy", f"the node does not wait for {dependency}"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["cluster"]["depends_on"]["kubo"]["condition"] == "service_healthy"
    assert services["proxy"]["depends_on"]["node"]["condition"] == "service_healthy"
    long_running = {"chain", "postgres", "kubo", "cluster", "node", "proxy"}
    assert long_running <= {n for n, s in services.items() if "healthcheck" in s}


def test_migrate_is_a_one_shot_node_migrate_on_the_shared_database(compose):
    migrate, node = compose["services"]["migrate"], compose["services"]["node"]
    assert migrate["restart"] == "no"
    assert migrate["command"] == ["node", "migrate"]
    assert migrate["image"] == node["image"]  # the schema version migrate writes is the one the replicas run
    assert _secret_targets(migrate)["twinledger_database_url"] == _secret_targets(node)["twinledger_database_url"]


def test_volumes_and_secrets_are_declared(compose):
    used_volumes, used_secrets = set(), set()
    for name, service in compose["services"].items():
        for source, _target, read_only in _mounts(service):
            if source.startswith((".", "/")):  # a bind mount: a file of this repository, read-only
                assert (REPO / source).exists(), f"{name} mounts {source}, which is not in the repository"
                assert read_only, f"{name} mounts {source} writable"
            else:
                assert source in compose["volumes"], f"{name} mounts undeclared volume {source}"
                used_volumes.add(source)
        for secret in service.get("secrets", []):
            assert secret["source"] in compose["secrets"], f"{name} uses undeclared secret {secret['source']}"
            used_secrets.add(secret["source"])
    assert used_volumes == set(compose["volumes"]), "declared volumes nobody mounts"
    assert used_secrets == set(compose["secrets"]), "declared secrets nobody uses"
    for name, secret in compose["secrets"].items():
        assert set(secret) == {"file"}, f"secret {name} is not read from a file"


def test_only_the_proxy_publishes_a_port_and_on_loopback_only(compose):
    services = compose["services"]
    for name, service in services.items():
        if name != "proxy":
            assert "ports" not in service, f"{name} publishes a host port"
    ports = services["proxy"]["ports"]
    assert ports and all(p.startswith("127.0.0.1:") for p in ports)
    assert [p.rsplit(":", 1)[1] for p in ports] == [str(_node_port())]


def test_the_node_is_a_scalable_service(compose):
    services = compose["services"]
    assert not [name for name, service in services.items() if "container_name" in service]
    node = services["node"]
    assert "ports" not in node and "deploy" not in node
    # a named volume mounted into scaled replicas is one directory shared by all of them: read-only only
    writable = [source for source, _target, read_only in _mounts(node) if not read_only]
    assert not writable, f"replicas would share writable volumes {writable}"
    data_dir = _dockerfile().envs["TWINLEDGER_DATA_DIR"]
    assert [t.split(":", 1)[0] for t in node["tmpfs"]] == [data_dir], "the data dir is not a tmpfs per replica"


def test_kubo_is_one_the_node_accepts_with_the_nodes_profile(compose):
    kubo = compose["services"]["kubo"]
    image, _, tag = kubo["image"].partition(":")
    assert image == "ipfs/kubo"
    assert kubo_version_supported(tag), f"the node would refuse Kubo {tag}"
    assert CONTENT_PROFILE in kubo["environment"]["IPFS_PROFILE"].split(",")


def test_node_environment_names_real_settings(compose):
    fields = {f"TWINLEDGER_{name.upper()}" for name in NodeSettings.model_fields}
    configured = set(compose["services"]["node"]["environment"])
    assert configured <= fields, f"unknown node settings: {sorted(configured - fields)}"
    deployer_env = compose["services"]["deployer"]["environment"]
    assert deployer_env["TWINLEDGER_PRIVATE_KEY_FILE"].startswith("/run/secrets/")


def test_keys_and_the_database_url_come_from_secrets_never_environment_values(compose):
    for name, service in compose["services"].items():
        environment = service.get("environment", {})
        for variable in ("TWINLEDGER_PRIVATE_KEY", "TWINLEDGER_NODE_KEY", "TWINLEDGER_DATABASE_URL"):
            assert variable not in environment, f"{name} gets {variable} as an environment value"
        for variable, value in environment.items():
            assert not URL_WITH_PASSWORD.search(str(value)), f"{name}'s {variable} holds a password"
    # the node reads /run/secrets/<setting in lower case> (resolve_settings' secrets_dir)
    targets = _secret_targets(compose["services"]["node"])
    assert {"twinledger_private_key", "twinledger_node_key", "twinledger_database_url"} <= set(targets)
    known = {f"twinledger_{name}" for name in NodeSettings.model_fields} | {"twinledger_node_key"}
    assert set(targets) <= known, f"secrets the node would ignore: {sorted(set(targets) - known)}"


def test_the_node_key_secret_is_a_node_setting():
    field = NodeSettings.model_fields["node_key"]
    assert "SecretStr" in str(field.annotation), "the node key must be a secret setting (never shown or logged)"


def test_postgres_is_the_official_image_with_its_password_from_a_secret(compose):
    postgres = compose["services"]["postgres"]
    image, _, tag = postgres["image"].partition(":")
    assert image == "postgres" and int(tag.split(".")[0]) >= 18
    environment = postgres["environment"]
    assert "POSTGRES_PASSWORD" not in environment
    secret_file = environment["POSTGRES_PASSWORD_FILE"]
    assert secret_file.removeprefix("/run/secrets/") in _secret_targets(postgres)
    # from 18 on the image's VOLUME (and PGDATA's parent) is /var/lib/postgresql, not .../data
    assert [(source, target) for source, target, _ in _mounts(postgres)] == [("postgres-data", "/var/lib/postgresql")]
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]


def test_the_node_pins_through_the_cluster_proxy_which_forwards_to_kubo(compose):
    services = compose["services"]
    cluster = services["cluster"]
    image, _, tag = cluster["image"].partition(":")
    assert image == "ipfs/ipfs-cluster" and re.fullmatch(r"v1\.\d+\.\d+", tag), "pin a released v1 cluster image"
    kubo_addr = services["node"]["environment"]["TWINLEDGER_IPFS_KUBO_ADDR"]
    address = re.fullmatch(r"/dns4/([a-z-]+)/tcp/(\d+)/http", kubo_addr)
    assert address, f"the node's Kubo address {kubo_addr} is not /dns4/<service>/tcp/<port>/http"
    assert address[1] == "cluster", "the node talks to Kubo directly, so its pins would not be cluster pins"
    environment = cluster["environment"]
    assert environment["CLUSTER_IPFSPROXY_LISTENMULTIADDRESS"] == f"/ip4/0.0.0.0/tcp/{address[2]}"
    assert environment["CLUSTER_IPFSPROXY_NODEMULTIADDRESS"] == "/dns4/kubo/tcp/5001"
    assert environment["CLUSTER_IPFSHTTP_NODEMULTIADDRESS"] == "/dns4/kubo/tcp/5001"
    assert "CLUSTER_SECRET" not in environment  # read from the secret file by the entrypoint
    secret = next(target for target, source in _secret_targets(cluster).items() if source == "cluster_secret")
    assert f"/run/secrets/{secret}" in " ".join(cluster["entrypoint"])


def _caddy_directives(path: Path) -> str:
    """The Caddyfile's lines without comments, blank lines and indentation."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return "\n".join(line for line in lines if line)


def test_the_proxy_spreads_requests_over_every_node_replica(compose):
    proxy = compose["services"]["proxy"]
    image, _, tag = proxy["image"].partition(":")
    assert image == "caddy" and re.fullmatch(r"2\.\d+\.\d+(-alpine)?", tag), "pin a Caddy 2 release"
    mounts = {target: (source, read_only) for source, target, read_only in _mounts(proxy)}
    source, read_only = mounts["/etc/caddy/Caddyfile"]
    assert read_only
    config = _caddy_directives(REPO / source)
    port = _node_port()
    # the compose service's A records, re-resolved: every replica is an upstream, and so is one added by --scale
    upstream = re.search(r"^dynamic a (\S+) (\d+)", config, re.MULTILINE)
    assert upstream and upstream[1] == "node" and int(upstream[2]) == port
    refresh = re.search(r"^refresh (\d+)s$", config, re.MULTILINE)
    assert refresh and int(refresh[1]) <= 10, "replicas added or removed would be missed for too long"
    assert re.search(r"^lb_policy round_robin$", config, re.MULTILINE)
    assert re.search(rf"^http://:{port} {{$", config, re.MULTILINE), "the proxy does not listen where it is published"
    # signed requests are checked by the node: path, query, body and Host must pass unchanged
    for directive in ("rewrite", "uri", "header_up", "request_body", "handle_path", "method"):
        assert not re.search(rf"^{directive}\b", config, re.MULTILINE), f"the proxy alters requests ({directive})"
    public_url = _env_example()["TWINLEDGER_PUBLIC_URL"]
    assert public_url == f"http://127.0.0.1:{_env_example()['TWINLEDGER_PORT']}"  # the proxy's published address


def test_dockerfile_runs_the_node_as_an_unprivileged_user():
    parser = _dockerfile()
    final_stage = parser.structure[max(i for i, ins in enumerate(parser.structure) if ins["instruction"] == "FROM") :]
    users = [ins["value"] for ins in final_stage if ins["instruction"] == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(ins["instruction"] == "HEALTHCHECK" for ins in final_stage)
    assert any(ins["instruction"] == "EXPOSE" and ins["value"] == "8700" for ins in final_stage)
    for ins in parser.structure:
        if ins["instruction"] == "COPY" and "--from" not in ins["value"]:
            *sources, _target = ins["value"].split()
            for source in sources:
                assert (REPO / source).exists(), f"Dockerfile copies {source}, which is not in the repository"
