"""Argument checks shared by the layers: each raises a one-line ValueError
that names the argument and what it allows, and returns the value in the
form the layer keeps."""

from __future__ import annotations

from numbers import Integral

MASK_TYPES = ("A", "B")


def is_whole(value) -> bool:
    """True for an int, a NumPy integer or a float of whole value; False for
    bools, strings and anything else."""
    try:
        return not isinstance(value, bool | str) and int(value) == value
    except (TypeError, ValueError):
        return False


def positive_int(name: str, value) -> int:
    """``value`` as an int, unless it is not a whole number ``>= 1`` (bools refused).

    Example:

    >>> positive_int("filters", 4)
    4
    """
    if not is_whole(value) or int(value) < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def odd_positive_int(name: str, value) -> int:
    """``value`` as an int, unless it is not an odd int ``>= 1`` (an int or a
    NumPy integer: floats and bools refused).

    Example:

    >>> odd_positive_int("kernel_size", 3)
    3
    """
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1 or value % 2 == 0:
        raise ValueError(f"{name} must be an odd positive int, got {value!r}")
    return int(value)


def check_mask_type(value) -> str:
    """``value`` unless it is not one of the mask types ``"A"``, ``"B"``."""
    if value not in MASK_TYPES:
        raise ValueError(f"mask_type must be 'A' or 'B', got {value!r}")
    return value


def dropout_rate(value) -> float:
    """``value`` as a float, unless it is not in ``[0, 1)``."""
    if isinstance(value, bool) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"dropout must be a number in [0, 1), got {value!r}")
    return float(value)
