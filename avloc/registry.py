"""A small name -> constructor registry whose keyword arguments are checked against the signature.

Recipes name things (loss terms, model architectures, data sources); a registry maps each name
to a class or function. ``build(name, kwargs, where=...)`` rejects unknown keys and wrongly typed
values with a one-line :class:`~avloc.errors.RecipeError` naming the TOML path, e.g.
``loss.silence_map.weight: expected float, got str``.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable
from typing import Any

from avloc.errors import RecipeError


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def check_value(value: Any, annotation: Any, where: str) -> Any:
    """Return ``value`` converted to ``annotation`` or raise a RecipeError naming ``where``.

    Supported annotations: bool, int, float (ints accepted; NaN and infinities are not), str,
    tuple[T, ...], list[T], ``X | None``, typing.Literal, and dict (passed through). Anything
    else is passed through.
    """
    if annotation is inspect.Parameter.empty or annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise RecipeError(f"{where}: expected one of {choices}, got {value!r}")
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return check_value(value, arg, where)
            except RecipeError as exc:
                errors.append(str(exc))
        expected = [e.split(": expected ", 1)[1].rsplit(", got ", 1)[0] for e in errors]
        if len(errors) > 1 and all(", got " in e and ": expected " in e for e in errors):
            raise RecipeError(f"{where}: expected {' or '.join(expected)}, got {value!r}")
        raise RecipeError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise RecipeError(f"{where}: expected a list, got {type(value).__name__}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            items = [check_value(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
        elif origin is tuple and args:
            if len(value) != len(args):
                raise RecipeError(f"{where}: expected {len(args)} values, got {len(value)}")
            items = [
                check_value(v, a, f"{where}[{i}]")
                for i, (v, a) in enumerate(zip(value, args, strict=True))
            ]
        else:
            item_type = args[0] if args else Any
            items = [check_value(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{where}: expected a table, got {type(value).__name__}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{where}: expected bool, got {type(value).__name__}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{where}: expected int, got {type(value).__name__}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{where}: expected float, got {type(value).__name__}")
        if not math.isfinite(value):
            raise RecipeError(f"{where}: expected a finite number, got {value}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise RecipeError(f"{where}: expected str, got {type(value).__name__}")
        return value
    return value


class Registry:
    """Maps names to constructors; builds them with signature-checked keyword arguments."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: ``@registry.register("ezvsl")`` above a class or function."""

        def decorator(obj: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            obj.registered_name = name
            return obj

        return decorator

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str, where: str = "") -> Callable[..., Any]:
        if name not in self._entries:
            known = ", ".join(self.names()) or "none"
            prefix = f"{where}: " if where else ""
            raise RecipeError(f"{prefix}unknown {self.kind} {name!r} (known: {known})")
        return self._entries[name]

    def parameters(self, name: str) -> dict[str, inspect.Parameter]:
        """The keyword parameters the entry accepts (excluding ``self``)."""
        target = self.get(name)
        init = target.__init__ if inspect.isclass(target) else target
        params = dict(inspect.signature(init).parameters)
        params.pop("self", None)
        return {
            k: p
            for k, p in params.items()
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        }

    def check_kwargs(self, name: str, kwargs: dict[str, Any], where: str) -> dict[str, Any]:
        """Validate ``kwargs`` against the entry's signature; return them type-converted."""
        target = self.get(name, where)
        init = target.__init__ if inspect.isclass(target) else target
        hints = typing.get_type_hints(init)
        params = self.parameters(name)
        checked = {}
        for key, value in kwargs.items():
            if key not in params:
                allowed = ", ".join(params) or "none"
                raise RecipeError(f"{where}.{key}: unknown key (allowed: {allowed})")
            checked[key] = check_value(value, hints.get(key, Any), f"{where}.{key}")
        for key, param in params.items():
            if param.default is inspect.Parameter.empty and key not in checked:
                raise RecipeError(f"{where}.{key}: required key is missing")
        return checked

    def build(self, name: str, kwargs: dict[str, Any] | None = None, where: str = "") -> Any:
        """Construct entry ``name`` with validated ``kwargs``."""
        checked = self.check_kwargs(name, dict(kwargs or {}), where or name)
        return self.get(name, where)(**checked)
