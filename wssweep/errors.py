"""The one error type for bad user input; the CLI prints it and exits with status 2."""

from __future__ import annotations

import reprlib

# What a message shows of the value given: a few hundred characters of each string or number,
# the first 16 items of a collection, 3 levels deep; so a huge value (a YAML alias bomb, a
# pasted array) makes a short line, and never a walk over all of it.
_GIVEN = reprlib.Repr()  # keyword arguments need Python 3.12
_GIVEN.maxlevel = 3
_GIVEN.maxtuple = _GIVEN.maxlist = _GIVEN.maxarray = _GIVEN.maxdict = 16
_GIVEN.maxset = _GIVEN.maxfrozenset = _GIVEN.maxdeque = 16
_GIVEN.maxstring = _GIVEN.maxlong = _GIVEN.maxother = 400


def given_text(value: object) -> str:
    """``value`` as an error message shows it: its repr, cut short where it is long.

    Example:
        >>> given_text("/nope"), len(given_text(list(range(10**6))))
        ("'/nope'", 59)
    """
    return _GIVEN.repr(value)


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
        super().__init__(f"{key}: expected {expected}, got {given_text(given)}")
