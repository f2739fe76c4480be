"""The JSON Schemas of ``producers/schemas/`` as ready-to-use validators.

This is the slow, authoritative check (documentation, tests, debugging a rejected message);
the hot path uses the hand-written parsers of ``producers.events``.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_NAMES = ("transaction", "label", "envelope")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed ``<name>.schema.json``."""
    if name not in SCHEMA_NAMES:
        raise ValueError(f"unknown schema {name!r} (known: {', '.join(SCHEMA_NAMES)})")
    text = resources.files("producers.schemas").joinpath(f"{name}.schema.json").read_text()
    return json.loads(text)


@cache
def validator(name: str, strict_integers: bool = False) -> Any:
    """A jsonschema validator for one schema, with the others resolvable by ``$ref``.

    ``strict_integers=True`` makes "integer" mean a JSON number without a fraction part
    written as such (``3``, not ``3.0``), which is what ``producers.events`` enforces.
    """
    from jsonschema import Draft202012Validator, validators
    from referencing import Registry, Resource

    resources_ = [
        (load_schema(n)["$id"], Resource.from_contents(load_schema(n))) for n in SCHEMA_NAMES
    ]
    registry = Registry().with_resources(resources_)
    cls = Draft202012Validator
    if strict_integers:
        checker = cls.TYPE_CHECKER.redefine(
            "integer", lambda _checker, value: type(value) is int
        )
        cls = validators.extend(cls, type_checker=checker)
    return cls(load_schema(name), registry=registry)


def schema_errors(name: str, obj: Any) -> list[str]:
    """Every schema violation of ``obj`` as a one-line message (empty: valid)."""
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator(name).iter_errors(obj)
    ]
