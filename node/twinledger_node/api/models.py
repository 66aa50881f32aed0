"""Pydantic models of request and response bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class AnchorInfo(Model):
    batch_root: str | None = Field(None, alias="batchRoot")
    proof: list[str] | None = None
    tx: str | None = None


class SnapshotInfo(Model):
    twin_id: int = Field(alias="twinId")
    seq: int
    manifest_cid: str = Field(alias="manifestCid")
    content_cid: str = Field(alias="contentCid")
    size: int
    sha256: str
    created: int
    period: int = Field(description="the twin's ownership period it was pushed in; grants of others never serve it")
    anchor: AnchorInfo


class SnapshotList(Model):
    twin_id: int = Field(alias="twinId")
    snapshots: list[SnapshotInfo]
    next: int | None


class TwinInfo(Model):
    twin_id: int = Field(alias="twinId")
    owner: str
    parent_id: int = Field(alias="parentId")
    kind: str
    device_did: str | None = Field(None, alias="deviceDid")
    metadata_digest: str = Field(alias="metadataDigest")
    chain_head_seq: int = Field(
        alias="chainHeadSeq", description="the last snapshot anchored on its own on chain (most are in batches)"
    )
    anchored_seq: int | None = Field(
        alias="anchoredSeq",
        description="the last snapshot anchored on chain, alone or in a batch; null unless the request is signed by "
        "the owner or a holder of READ or AUDIT for ?purpose= (a twin's snapshot count is not public)",
    )
    latest_seq: int | None = Field(alias="latestSeq", description="the last snapshot stored; null as anchoredSeq")
    period: int = Field(description="ownership period: 0 from the mint, one more with every transfer")


class GrantInfo(Model):
    did: str
    did_hash: str = Field(alias="didHash")
    purpose: str
    scopes: list[str]
    expiry: int
    grantor: str
    period: int = Field(description="the twin's ownership period the grant was given in; live only within it")
    live: bool
    tx_hash: str = Field(alias="txHash")
    revoked_tx: str | None = Field(None, alias="revokedTx")


class GrantList(Model):
    twin_id: int = Field(alias="twinId")
    grants: list[GrantInfo]


class ConsentSubmission(Model):
    """An owner's EIP-712 signed grant or revocation (the JSON `SignedConsent.as_json()` produces)."""

    action: str = Field(pattern="^(grant|revoke)$")
    twin_id: int = Field(alias="twinId", ge=1)
    did: str = Field(min_length=8, max_length=512, pattern="^did:[a-z0-9]+:.+")
    purpose: str = Field(pattern="^0x[0-9a-fA-F]{64}$")
    scopes: int = Field(0, ge=0, le=0x1F)
    expiry: int = Field(0, ge=0, lt=2**40)
    nonce: int = Field(ge=0)
    deadline: int = Field(ge=0)
    signature: str = Field(pattern="^0x([0-9a-fA-F]{2}){65,1024}$", description="65-byte ECDSA or ERC-1271 bytes")
    signer: str = ""
    chain_id: int | None = Field(None, alias="chainId")
    verifying_contract: str | None = Field(None, alias="verifyingContract")


class RelayResult(Model):
    tx_hash: str = Field(alias="txHash")
    block_number: int = Field(alias="blockNumber")
    status: str


class RecoveryKeyRegistration(Model):
    """Binds an owner's Ethereum address to the did:key that can unseal their snapshots."""

    address: str = Field(pattern="^0x[0-9a-fA-F]{40}$")
    issued: int = Field(ge=0, lt=2**40, description="when the binding was made (Unix seconds): a node keeps the latest")
    signature: str = Field(pattern="^0x[0-9a-fA-F]{130}$", description="EIP-191 signature of the binding message")


class RecoveryKeyInfo(Model):
    owner: str
    did: str


class AuditPage(Model):
    twin_id: int = Field(alias="twinId")
    entries: list[dict[str, Any]]
    next: int | None


class NodeInfo(Model):
    did: str
    chain_id: int = Field(alias="chainId")
    twin_ledger: str = Field(alias="twinLedger")
    federated_ledger: str = Field(alias="federatedLedger")
    deploy_block: int = Field(alias="deployBlock")
    rpc_url: str | None = Field(alias="rpcUrl", description="an RPC URL for clients; null: ask the operator")
    relayer: str | None
    version: str


class Health(Model):
    status: str
    detail: str | None = None
