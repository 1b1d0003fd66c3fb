"""Password hashing with argon2id. Verification of an unknown user burns the same time as a
real check, so response times do not tell which accounts exist."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 8


class Passwords:
    def __init__(self, time_cost: int = 2, memory_cost: int = 19 * 1024) -> None:
        # OWASP's argon2id baseline (19 MiB, t=2): ~20-40 ms a check on this hardware.
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=1)
        self._dummy = self._hasher.hash("dockyard-dummy-password")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """True if password matches; with stored=None, spend the time of a check and say no."""
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise ValueError(f"passwords need at least {MIN_LENGTH} characters")
