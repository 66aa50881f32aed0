"""A small numpy model and client: linear regression trained by gradient descent on synthetic local data.

This is ordinary Flower client code; nothing in it knows about twinledger except `get_properties`, which tells the
server which twin the client trains for (deployment configuration, not training code).
"""

from __future__ import annotations

import numpy as np
from flwr.client import NumPyClient

FEATURES = 8
TRUE_WEIGHTS = np.linspace(-1.0, 1.0, FEATURES)
TRUE_BIAS = 0.5


def initial_model() -> list[np.ndarray]:
    return [np.zeros(FEATURES), np.zeros(1)]


def local_data(seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic, deterministic local data of one client (no downloads)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(size, FEATURES))
    y = x @ TRUE_WEIGHTS + TRUE_BIAS + rng.normal(scale=0.1, size=size)
    return x, y


def mse(parameters: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    weights, bias = parameters
    return float(np.mean((x @ weights + bias[0] - y) ** 2))


class LinearClient(NumPyClient):  # type: ignore[misc]
    def __init__(self, twin_id: int, seed: int, size: int, epochs: int = 20, lr: float = 0.05) -> None:
        self.twin_id = twin_id
        self.x, self.y = local_data(seed, size)
        self.epochs, self.lr = epochs, lr

    def get_properties(self, config: dict[str, object]) -> dict[str, int]:
        return {"twin_id": self.twin_id}

    def fit(self, parameters: list[np.ndarray], config: dict[str, object]) -> tuple[list[np.ndarray], int, dict]:
        weights, bias = (p.astype(np.float64).copy() for p in parameters)
        for _ in range(self.epochs):
            error = self.x @ weights + bias[0] - self.y
            weights -= self.lr * (self.x.T @ error) / len(self.y)
            bias -= self.lr * np.array([error.mean()])
        return [weights, bias], len(self.y), {}

    def evaluate(self, parameters: list[np.ndarray], config: dict[str, object]) -> tuple[float, int, dict]:
        return mse(parameters, self.x, self.y), len(self.y), {}
