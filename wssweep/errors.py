"""The one error type for bad user input; the CLI prints it and exits with status 2."""

from __future__ import annotations


class InputError(Exception):
    """Bad input from the user: a spec key, a value, a path or an option.

    The message always names where the problem is (``key``), what was expected and what was given,
    so the user can fix it without reading a traceback.

    Example:
        >>> str(InputError("data.root", "a directory with CIFAR-10 batches", "/nope"))
        "data.root: expected a directory with CIFAR-10 batches, got '/nope'"
    """

    def __init__(self, key: str, expected: str, given: object) -> None:
        self.key = key
        self.expected = expected
        self.given = given
        super().__init__(f"{key}: expected {expected}, got {given!r}")
