"""Names that carry options, as ``file:`` models and ``folder:`` datasets do: ``"<kind>:<body>?key=value&..."``.

A run spec holds only strings (it crosses process and cluster boundaries), so a user's model file or
image folder travels as one name with its options in a query string.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import SpecError, check_choice


def split_options(name: str, known: Iterable[str]) -> tuple[str, dict[str, str]]:
    """``"file:x.pt?arch=resnet18&num_classes=10"`` -> ``("file:x.pt", {"arch": ..., "num_classes": ...})``.

    An option that is not ``key=value`` or not one of ``known`` is an error naming it and the known keys.
    """
    known = list(known)
    body, _, query = name.partition("?")
    options: dict[str, str] = {}
    for part in filter(None, query.split("&")):
        key, eq, value = part.partition("=")
        if not eq or not value:
            raise SpecError(f"{name!r}: option {part!r} is not key=value; known keys: {', '.join(known)}")
        check_choice(f"{body.split(':', 1)[0]}: option", key, known)
        options[key] = value
    return body, options
