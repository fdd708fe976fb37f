"""Validation of decoder parameters: each error names the field path, what was expected and what was found.

A decoder reads its section of the edge config through :class:`ParamReader`, which also rejects unknown
fields (a misspelt ``score_treshold`` would otherwise be silently ignored and the default used).
"""

import math
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from edge.errors import EdgeError

FIX = "correct the decoder section of the model's edge config (edge-export onnx --config) or override it"
_MISSING = object()


def param_error(path: str, expected: str, found: Any, where: str = "") -> EdgeError:
    """The error for a bad decoder field: ``decoder field 'path': expected X, found Y``."""
    what = f"decoder field '{path}': expected {expected}, found {found!r}"
    return EdgeError(what, fix=FIX, where=where or None)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class ParamReader:
    """Reads one JSON object of decoder parameters; ``path`` is its dotted name (e.g. ``decoder.anchors``)."""

    def __init__(self, value: Any, path: str, fields: Sequence[str], where: str = "") -> None:
        if not isinstance(value, Mapping):
            raise param_error(path, "an object", value, where)
        self.values = value
        self.path = path
        self.where = where
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise EdgeError(
                f"decoder has unknown field '{path}.{unknown[0]}' (valid: {', '.join(fields)})",
                fix="fix the spelling or remove the field",
                where=where or None,
            )

    def fail(self, name: str, expected: str, found: Any) -> EdgeError:
        """An EdgeError for field ``name`` of this object."""
        return param_error(f"{self.path}.{name}", expected, found, self.where)

    def _get(self, name: str, default: Any, expected: str) -> Any:
        """The field's value, else ``default``; a missing required field is an error. Null is absent."""
        if name in self.values and self.values[name] is not None:
            return self.values[name]
        if default is _MISSING:
            raise EdgeError(f"decoder field '{self.path}.{name}' is missing (expected {expected})",
                            fix=FIX, where=self.where or None)
        return default

    def has(self, name: str) -> bool:
        """Whether the field is present (and not null)."""
        return self.values.get(name) is not None

    def string(self, name: str, default: Any = _MISSING) -> Any:
        """A non-empty string."""
        value = self._get(name, default, "a non-empty string")
        if value is not None and (not isinstance(value, str) or not value):
            raise self.fail(name, "a non-empty string", value)
        return value

    def choice(self, name: str, options: Sequence[str], default: Any = _MISSING) -> str:
        """One of ``options`` (case-insensitive); returns the option as spelt in ``options``."""
        expected = "one of " + ", ".join(options)
        value = self._get(name, default, expected)
        if value is None:  # an optional field without a default
            return None  # type: ignore[return-value]
        for option in options:
            if isinstance(value, str) and value.lower() == option.lower():
                return option
        raise self.fail(name, expected, value)

    def boolean(self, name: str, default: Any = _MISSING) -> bool:
        """true or false."""
        value = self._get(name, default, "true or false")
        if value is None:  # an optional field without a default
            return None  # type: ignore[return-value]
        if not isinstance(value, bool):
            raise self.fail(name, "true or false", value)
        return value

    def number(self, name: str, default: Any = _MISSING, *, low: Optional[float] = None,
               high: Optional[float] = None, low_open: bool = False) -> float:
        """A number in [low, high] (or (low, high] with ``low_open``)."""
        expected = _range_text("a number", low, high, low_open)
        value = self._get(name, default, expected)
        if value is None:  # an optional field without a default
            return None  # type: ignore[return-value]
        if not _is_number(value) or not _in_range(float(value), low, high, low_open):
            raise self.fail(name, expected, value)
        return float(value)

    def integer(self, name: str, default: Any = _MISSING, *, low: Optional[int] = None) -> int:
        """An integer >= low."""
        expected = "an integer" if low is None else f"an integer >= {low}"
        value = self._get(name, default, expected)
        if value is None:  # an optional field without a default
            return None  # type: ignore[return-value]
        if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
            raise self.fail(name, expected, value)
        return int(value)

    def numbers(self, name: str, default: Any = _MISSING, *, length: Optional[int] = None,
                low: Optional[float] = None, low_open: bool = False) -> Tuple[float, ...]:
        """A list of numbers, each >= low (> low with ``low_open``), of ``length`` items when given."""
        count = f"{length} numbers" if length else "a non-empty list of numbers"
        expected = _range_text(count, low, None, low_open)
        value = self._get(name, default, expected)
        if value is None:  # an optional field without a default
            return None  # type: ignore[return-value]
        ok = isinstance(value, (list, tuple)) and len(value) > 0 and (length is None or len(value) == length)
        if not ok or not all(_is_number(v) and _in_range(float(v), low, None, low_open) for v in value):
            raise self.fail(name, expected, value)
        return tuple(float(v) for v in value)

    def integers(self, name: str, default: Any = _MISSING, *, low: Optional[int] = None) -> Tuple[int, ...]:
        """A non-empty list of integers, each >= low."""
        expected = "a non-empty list of integers" + ("" if low is None else f" >= {low}")
        value = self._get(name, default, expected)
        if value is None:  # an optional field without a default
            return None  # type: ignore[return-value]
        ok = isinstance(value, (list, tuple)) and len(value) > 0
        if not ok or not all(isinstance(v, int) and not isinstance(v, bool) and (low is None or v >= low)
                             for v in value):
            raise self.fail(name, expected, value)
        return tuple(int(v) for v in value)

    def strings(self, name: str, default: Any = _MISSING) -> List[str]:
        """A list of strings."""
        value = self._get(name, default, "a list of strings")
        if value is None:  # an optional field without a default
            return None  # type: ignore[return-value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise self.fail(name, "a list of strings", value)
        return list(value)

    def section(self, name: str, fields: Sequence[str], default: Any = _MISSING) -> "ParamReader":
        """A nested object, read with its own field list."""
        value = self._get(name, default, "an object with fields " + ", ".join(fields))
        return ParamReader(value, f"{self.path}.{name}", fields, self.where)


def _in_range(value: float, low: Optional[float], high: Optional[float], low_open: bool) -> bool:
    if math.isnan(value):
        return False
    if low is not None and (value <= low if low_open else value < low):
        return False
    return high is None or value <= high


def _range_text(what: str, low: Optional[float], high: Optional[float], low_open: bool) -> str:
    if low is not None and high is not None:
        return f"{what} in {'(' if low_open else '['}{low:g}, {high:g}]"
    if low is not None:
        return f"{what} {'>' if low_open else '>='} {low:g}"
    return what
