"""Authentication of DID-signed requests for the node.

Public API::

    AuthSettings(max_clock_skew_s=30, max_signature_lifetime_s=300, replay_db_dir=None,
                 replay_max_entries=100_000, public_base_url=None, max_body_bytes=64 MiB)
    SignedRequestAuth(settings, *, resolver=None)   # FastAPI dependency: Depends(auth) -> Caller
    Caller                                          # a VerifiedRequest (did, key_id, algorithm, created,
                                                    # expires, nonce, signature_input, signature,
                                                    # content_digest, signature_base) + method, target_uri
    install_auth_problem_handler(app)               # failures answer application/problem+json
    AuthProblem, ReplayCache, ReplayCacheFull

Usage::

    auth = SignedRequestAuth(AuthSettings(replay_db_dir=data_dir))
    install_auth_problem_handler(app)

    @app.get("/twins/{twin_id}")
    async def read(twin_id: int, caller: Caller = Depends(auth)): ...
"""

from typing import TYPE_CHECKING

from twinledger.lazy import lazy_exports

if TYPE_CHECKING:
    from twinledger_node.auth.dependency import (
        AuthSettings,
        BodyTooLarge,
        Caller,
        NonceSink,
        SignedRequestAuth,
        SpendLeftoverNonces,
        spends_nonce_in_commit,
    )
    from twinledger_node.auth.problems import (
        PROBLEM_MEDIA_TYPE,
        AuthProblem,
        auth_problem_handler,
        install_auth_problem_handler,
    )
    from twinledger_node.auth.replay import Nonce, ReplayCache, ReplayCacheFull

# The background process imports the replay cache alone; the FastAPI dependency loads when the API asks for it.
__getattr__ = lazy_exports(
    __name__,
    {
        "AuthProblem": ".problems",
        "AuthSettings": ".dependency",
        "BodyTooLarge": ".dependency",
        "Caller": ".dependency",
        "Nonce": ".replay",
        "NonceSink": ".dependency",
        "PROBLEM_MEDIA_TYPE": ".problems",
        "ReplayCache": ".replay",
        "ReplayCacheFull": ".replay",
        "SignedRequestAuth": ".dependency",
        "SpendLeftoverNonces": ".dependency",
        "auth_problem_handler": ".problems",
        "install_auth_problem_handler": ".problems",
        "spends_nonce_in_commit": ".dependency",
    },
)

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "AuthProblem",
    "AuthSettings",
    "BodyTooLarge",
    "Caller",
    "Nonce",
    "NonceSink",
    "ReplayCache",
    "ReplayCacheFull",
    "SignedRequestAuth",
    "SpendLeftoverNonces",
    "auth_problem_handler",
    "install_auth_problem_handler",
    "spends_nonce_in_commit",
]
