"""Values the contracts speak in: twin kinds, scopes, batch kinds, purpose codes."""

from __future__ import annotations

import enum
import functools

from eth_utils import keccak

from twinledger.errors import InvalidInput


class TwinKind(enum.IntEnum):
    COMPONENT = 0
    ASSET = 1
    SYSTEM = 2
    PROCESS = 3

    @classmethod
    def parse(cls, value: TwinKind | str | int) -> TwinKind:
        if isinstance(value, TwinKind):
            return value
        try:
            return cls[value.upper()] if isinstance(value, str) else cls(value)
        except (KeyError, ValueError):
            choices = ", ".join(k.name.lower() for k in cls)
            raise InvalidInput(f"unknown twin kind {value!r}", hint=f"use one of: {choices}") from None


class Scope(enum.IntFlag):
    READ = 0x01
    WRITE = 0x02
    TRAIN = 0x04
    INHERIT = 0x08
    AUDIT = 0x10

    @classmethod
    def parse(cls, value: Scope | str | int) -> Scope:
        """`"read,train"` or `["read", "train"]`-style text, an int mask, or a Scope."""
        if isinstance(value, Scope):
            return value
        if isinstance(value, int):
            if value & ~0x1F:
                raise InvalidInput(
                    f"scope mask {value:#x} has unknown bits",
                    hint="combine read, write, train, inherit, audit",
                )
            return cls(value)
        result = cls(0)
        for word in filter(None, (w.strip() for w in value.replace("|", ",").split(","))):
            try:
                result |= cls[word.upper()]
            except KeyError:
                raise InvalidInput(
                    f"unknown scope {word!r}", hint="use read, write, train, audit and optionally inherit"
                ) from None
        if not result & ~cls.INHERIT:
            raise InvalidInput(f"scopes {value!r} grant no right", hint="include read, write, train or audit")
        return result

    def names(self) -> list[str]:
        return [s.name.lower() for s in Scope if s in self and s.name]


class BatchKind(enum.IntEnum):
    SNAPSHOTS = 0
    ACCESS_RECEIPTS = 1
    MODEL_UPDATES = 2


# Short names for common purposes, mapped to W3C DPV purpose IRIs; any other text is taken as an IRI or code.
PURPOSE_ALIASES: dict[str, str] = {
    "research": "dpv:ScientificResearch",
    "maintenance": "dpv:MaintainProductOrService",
    "optimisation": "dpv:OptimisationForController",
    "optimization": "dpv:OptimisationForController",
    "service": "dpv:ServiceProvision",
    "training": "dpv:ResearchAndDevelopment",
    "audit": "dpv:EnforceAccessControl",
}


def purpose_iri(purpose: str) -> str:
    text = purpose.strip()
    if not text:
        raise InvalidInput("empty purpose", hint="name a purpose, e.g. research or dpv:ScientificResearch")
    return PURPOSE_ALIASES.get(text.lower(), text)


@functools.lru_cache(maxsize=4096)  # keccak of the same few strings on every request
def purpose_code(purpose: str | bytes) -> bytes:
    """The bytes32 purpose code: keccak256 of the purpose IRI, or 32 raw bytes / 0x-hex as given."""
    if isinstance(purpose, bytes):
        if len(purpose) != 32:
            raise InvalidInput(f"purpose code must be 32 bytes, got {len(purpose)}")
        return purpose
    if purpose.startswith("0x") and len(purpose) == 66:
        try:
            return bytes.fromhex(purpose[2:])
        except ValueError:
            raise InvalidInput(
                f"purpose {purpose!r} looks like a 32-byte code but is not hex",
                hint="give 0x and 64 hex digits, or a purpose name such as research",
            ) from None
    return keccak(text=purpose_iri(purpose))


# Purposes of the W3C Data Privacy Vocabulary (DPV 2.x, https://w3id.org/dpv#), so an audit or a consent list names
# a grant made for one of them (as `dpv:X` or its full IRI) instead of printing its hash. Not exhaustive: the
# branches a twin's data is most often shared for.
DPV_NAMESPACE = "https://w3id.org/dpv#"
DPV_PURPOSES = (
    "AcademicResearch", "AccountManagement", "CombatClimateChange", "CommercialPurpose", "CommercialResearch",
    "CommunicationManagement", "CustomerManagement", "DataAltruism", "EnforceAccessControl", "EnforceSecurity",
    "EstablishContractualAgreement", "FraudPreventionAndDetection", "FulfilmentOfContractualObligation",
    "FulfilmentOfObligation", "HumanResourceManagement", "ImprovePublicServices", "ImproveTransportMobility",
    "IncreaseServiceRobustness", "InternalResourceOptimisation", "Marketing", "NonCommercialPurpose",
    "NonCommercialResearch", "OptimisationForConsumer", "OptimisationForController", "OrganisationGovernance",
    "OrganisationRiskManagement", "Personalisation", "ProvideOfficialStatistics", "PublicBenefit", "RecordManagement",
    "ResearchAndDevelopment", "ScientificResearch", "ServiceManagement", "ServiceMonitoring", "ServiceOptimisation",
    "ServicePersonalisation", "ServiceProvision", "ServiceUsageAnalytics", "VendorManagement",
)  # fmt: skip


@functools.cache
def _known_purposes() -> dict[bytes, str]:
    labels = {}
    for name in DPV_PURPOSES:
        labels[keccak(text=DPV_NAMESPACE + name)] = f"dpv:{name} ({DPV_NAMESPACE}{name})"
        labels[keccak(text=f"dpv:{name}")] = f"dpv:{name}"
    for alias, iri in PURPOSE_ALIASES.items():  # last: an alias names its IRI's code
        labels[keccak(text=iri)] = f"{alias} ({iri})"
    return labels


def purpose_label(code: bytes) -> str:
    """The alias or DPV purpose whose code is `code`, else its hex."""
    return _known_purposes().get(bytes(code)) or "0x" + bytes(code).hex()


def purpose_text(value: object) -> str:
    """A purpose as the node and the chain write it (0x and 64 hex digits) by its `purpose_label`; else as given."""
    text = str(value)
    return purpose_label(bytes.fromhex(text[2:])) if text.startswith("0x") and len(text) == 66 else text
