"""Parameter checks shared by the golden model and the generators (one wording everywhere)."""
import numbers

__all__ = ["check_positive_int"]


def check_positive_int(name, value):
    """``value`` as an int, or raise naming ``name``, the value and the rule.

    Raises
    ------
    TypeError
        Not an integer (bools are rejected too).
    ValueError
        Less than 1.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return int(value)
