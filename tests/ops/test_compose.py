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


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(_interpolated())


def test_compose_file_is_valid_compose_spec():
    parsed = PyCompose.from_yaml(_interpolated())  # the Rust compose_spec parser: schema and value validation
    assert sorted(parsed.service_names()) == ["chain", "deployer", "kubo", "node"]


def test_dependencies_wait_for_health_and_the_deployer(compose):
    services = compose["services"]
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck for {name} to wait on"
            else:
                assert condition == "service_completed_successfully" and services[dependency]["restart"] == "no"
    assert services["node"]["depends_on"]["deployer"]["condition"] == "service_completed_successfully"
    assert {"chain", "kubo", "node"} <= {n for n, s in services.items() if "healthcheck" in s}


def test_volumes_and_secrets_are_declared(compose):
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            assert source in compose["volumes"], f"{name} mounts undeclared volume {source}"
        for secret in service.get("secrets", []):
            assert secret["source"] in compose["secrets"], f"{name} uses undeclared secret {secret['source']}"


def test_kubo_rpc_stays_on_the_compose_network_and_the_node_on_loopback(compose):
    assert "ports" not in compose["services"]["kubo"]
    assert "ports" not in compose["services"]["chain"]
    assert all(p.startswith("127.0.0.1:") for p in compose["services"]["node"]["ports"])


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
    assert "TWINLEDGER_PRIVATE_KEY" not in configured  # the key comes as a secret, never as an env value
    deployer_env = compose["services"]["deployer"]["environment"]
    assert deployer_env["TWINLEDGER_PRIVATE_KEY_FILE"].startswith("/run/secrets/")


def test_dockerfile_runs_the_node_as_an_unprivileged_user():
    parser = DockerfileParser(path=str(REPO / "Dockerfile"))
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
