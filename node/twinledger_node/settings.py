"""Node settings: every value from the environment (TWINLEDGER_*) or a .env-style config file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from twinledger import config
from twinledger.config import DEFAULT_KUBO_ADDR
from twinledger.errors import InvalidInput, NotFound, TwinledgerError
from twinledger_node.db.database import is_postgres_url


class NodeSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TWINLEDGER_", env_file=None, env_file_encoding="utf-8", extra="ignore", validate_default=True
    )

    host: str = "127.0.0.1"
    port: int = Field(8700, ge=1, le=65535)
    data_dir: Path = Field(default_factory=config.data_dir)
    workers: int | None = Field(
        None, ge=0, description="HTTP API processes beside the background one; unset: one per core; 0: one process"
    )

    # chain
    rpc_url: str | None = Field(None, description="JSON-RPC URL; unset: start or reuse the local anvil")
    public_rpc_url: str | None = Field(
        None,
        description="the RPC URL /v1/node tells clients to use; unset: the local anvil's, else none (the node's "
        "own rpc_url is never published: a provider URL often carries an API key)",
    )
    deployments_file: Path | None = Field(None, description="deployments/<chainId>.json; unset: data_dir's")
    private_key: SecretStr | None = Field(None, description="key that pays for anchors and relayed consents")
    node_key: SecretStr | None = Field(
        None, description="JWK of the node's Ed25519 identity, the same for every replica; unset: data_dir's own"
    )
    confirmations: int = Field(0, ge=0, description="blocks behind the head the index stays")
    poll_interval: float = Field(0.5, gt=0, description="seconds between chain polls")
    freshness_window: float = Field(10.0, gt=0, description="seconds the index may go without seeing the head")
    log_chunk: int = Field(
        2000, ge=1, description="most blocks per eth_getLogs request (halved while the provider refuses a page)"
    )

    # storage
    database_url: SecretStr | None = Field(
        None, description="postgresql://user:password@host:port/db that replicas share; unset: SQLite in data_dir"
    )
    # The same variables as the `twinledger ipfs` commands (twinledger.ipfs.IPFSConfig).
    ipfs_backend: Literal["embedded", "kubo"] = "embedded"
    ipfs_kubo_addr: str = DEFAULT_KUBO_ADDR
    ipfs_path: Path | None = Field(
        None,
        description="the embedded block store's directory (replicas on one machine may share it); unset: data_dir's",
    )

    # anchoring
    # Every batch is a transaction (gas, and ~5 ms of the anchor worker's CPU): cut early only once it is big; the
    # timer below bounds how long an item waits. 16 made a node under 1,000 reads/s send dozens a second.
    anchor_batch_size: int = Field(256, ge=1, description="pending snapshots or receipts that cut a batch early")
    anchor_batch_seconds: float = Field(5.0, gt=0, description="longest wait before a partial batch is anchored")

    # limits
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1, description="bodies of uploads: snapshots, models")
    max_json_body_bytes: int = Field(64 * 1024, ge=1, description="bodies of every other route (JSON)")
    relay_per_signer_per_minute: int = Field(10, ge=1, description="grants (and, apart, revocations) per owner")
    relay_unverified_per_client_per_minute: int = Field(
        30, ge=1, description="refused consents per client address before its unverified ones are turned away"
    )
    signature_window: int = Field(300, ge=1, description="seconds a signed request is valid")
    commit_queue: int = Field(
        1024, ge=1, description="pushes and reads waiting for their group commit; past it the node answers 503"
    )
    # refused reads in the twins' logs (services/denials.py), counted per process and per minute
    denials_per_did_per_minute: int = Field(
        10, ge=0, description="refused reads of one DID on a twin recorded one by one a minute; past it, one count"
    )
    denials_per_twin_per_minute: int = Field(
        100, ge=1, description="denial records a twin's log gets a minute; past it, one aggregate count for the rest"
    )
    # Snapshot streams (GET …/snapshots/stream) hold a connection each; counted per API process.
    streams_per_did: int = Field(4, ge=1, description="open snapshot streams one DID may hold; past it 429")
    streams_total: int = Field(1000, ge=1, description="open snapshot streams in all; past it 429")
    stream_heartbeat: float = Field(15.0, gt=0, description="seconds between keep-alive comments on an idle stream")
    public_url: str | None = Field(None, description="the URL clients use, when the node sits behind a proxy")
    # Per-client limits (refused relays) key on the client's address: behind a reverse proxy every client has the
    # proxy's, so one abuser would spend everyone's budget, unless the proxy is trusted to name the client.
    forwarded_allow_ips: str = Field(
        "127.0.0.1,::1",
        description="reverse proxies whose X-Forwarded-For names the client (comma-separated addresses or networks; "
        "* when only the proxy can reach the node); others' headers are ignored",
    )

    # federated learning: the node pays for these transactions, so it decides who may cause them
    fl_task_creators: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="DIDs allowed to open federated tasks here (comma-separated); none: nobody"
    )
    fl_gas_per_did: int = Field(
        3_000_000, ge=0, description="gas the node pays per DID per 24 h for federated transactions it sends for it"
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not is_postgres_url(value.get_secret_value()):
            raise ValueError(
                "TWINLEDGER_DATABASE_URL must be a postgresql:// URL (unset it for SQLite in the data dir)"
            )
        return value

    @field_validator("fl_task_creators", mode="before")
    @classmethod
    def _split_dids(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("fl_task_creators")
    @classmethod
    def _canonical_dids(cls, value: list[str]) -> list[str]:
        try:
            from twinledger.identity.did import canonical_did  # the settings load before the node's heavy imports

            return [canonical_did(did) for did in value]
        except TwinledgerError as error:
            raise ValueError(f"TWINLEDGER_FL_TASK_CREATORS: {error.message}") from None

    def database_location(self, database: str) -> Path | str:
        """Where the node's `database` (index or state) lives: the PostgreSQL URL, else its SQLite file."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return self.data_dir / "node" / f"{database}.sqlite"

    @property
    def block_store_path(self) -> Path:
        return self.ipfs_path or self.data_dir / "ipfs"

    @property
    def resolved_deployments_file(self) -> Path:
        return self.deployments_file or self.data_dir / "deployments"

    def public_view(self) -> dict[str, object]:
        """Effective values for `twinledger node config`: secrets shown as set or unset, never their value."""
        values = self.model_dump()
        for name, value in values.items():
            if isinstance(getattr(self, name), SecretStr):
                values[name] = "(set)" if value else "(unset)"
        return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def _shown(error: Any) -> str:
    """The rejected value of a settings error, unless it belongs to a secret (never printed, even when wrong)."""
    field = NodeSettings.model_fields.get(str(error["loc"][0])) if error["loc"] else None
    if field is not None and "SecretStr" in str(field.annotation):
        return "(secret, not shown)"
    return repr(error.get("input"))


def resolve_settings(config_file: Path | None = None, **overrides: Any) -> NodeSettings:
    """Settings from (lowest first) defaults, the config file, the environment, and command-line options (`None`
    means not given)."""
    if config_file is not None and not config_file.is_file():
        raise NotFound(f"no config file at {config_file}", hint="pass an existing KEY=value file to --config")
    # Docker/Kubernetes secrets: a file named like the variable in lower case, e.g. /run/secrets/twinledger_private_key
    secrets = Path(os.environ.get("TWINLEDGER_SECRETS_DIR", "/run/secrets"))
    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        return NodeSettings(  # type: ignore[call-arg]
            _env_file=config_file, _secrets_dir=secrets if secrets.is_dir() else None, **values
        )
    except UnicodeDecodeError:
        raise InvalidInput(
            f"the config file {config_file} is not text", hint="give a file of KEY=value lines (UTF-8)"
        ) from None
    except ValidationError as error:
        # pydantic's own wording names the field and the rule; say it in the user's terms: the variable or option
        wrong = "; ".join(
            f"TWINLEDGER_{'_'.join(str(p) for p in e['loc']).upper()} = {_shown(e)}: {e['msg']}" for e in error.errors()
        )
        raise InvalidInput(
            f"invalid node settings: {wrong}", hint="fix the option, the environment variable or the config file line"
        ) from None
