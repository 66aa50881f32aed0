"""twinledger: decentralized identity and data provenance for digital twins."""

from twinledger.errors import (
    AuthError,
    IntegrityError,
    InvalidInput,
    NotFound,
    TwinledgerError,
    Unavailable,
)

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "IntegrityError",
    "InvalidInput",
    "NotFound",
    "TwinledgerError",
    "Unavailable",
    "__version__",
]
