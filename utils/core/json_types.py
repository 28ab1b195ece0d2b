"""Matching JSON values to the simple type annotations of :class:`utils.core.config.Config`."""

from __future__ import annotations

import types
from typing import Any, Literal, Union, get_args, get_origin

# Integers are used as numpy and torch numbers (int64), and float keys as float64: an
# integer beyond 64 bits names no value the code can use.
MAX_INTEGER = 2**63 - 1


def type_ok(value: Any, annotation: Any) -> bool:
    """Whether a JSON value matches a (simple) type annotation."""
    origin = get_origin(annotation)
    if annotation is Any:
        return True
    if origin is Literal:
        return value in get_args(annotation)
    if origin in (Union, types.UnionType):
        return any(type_ok(value, arg) for arg in get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is list:
        (item,) = get_args(annotation)
        return isinstance(value, list) and all(type_ok(v, item) for v in value)
    if origin is dict:
        key_type, item = get_args(annotation)
        return isinstance(value, dict) and all(type_ok(k, key_type) and type_ok(v, item)
                                               for k, v in value.items())
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    raise TypeError(f"unsupported annotation {annotation!r}")


def describe(annotation: Any) -> str:
    """How an error line names a type annotation."""
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(annotation))
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def too_large(value: Any) -> bool:
    """Whether a JSON value is, or holds, an integer beyond :data:`MAX_INTEGER`."""
    if isinstance(value, dict):
        return any(too_large(v) for v in value.values())
    if isinstance(value, list):
        return any(too_large(v) for v in value)
    return isinstance(value, int) and abs(value) > MAX_INTEGER


def float_valued(annotation: Any) -> bool:
    """Whether an annotation allows a ``dict`` of floats (weights: ``{folder: weight}``),
    whose JSON integers are read as floats."""
    if get_origin(annotation) in (Union, types.UnionType):
        return any(float_valued(arg) for arg in get_args(annotation))
    return get_origin(annotation) is dict and get_args(annotation)[1] is float
