"""Error messages in one line, as the command line reports them."""

from __future__ import annotations


def first_line(error: BaseException, with_type: bool = False) -> str:
    """The first line of an exception's message (or its type's name when it has
    none), prefixed with ``Type: `` when ``with_type``.

    Example:

    >>> first_line(ValueError("bad value\\nmore detail")), first_line(KeyError())
    ('bad value', 'KeyError')
    >>> first_line(OSError("disk full"), with_type=True)
    'OSError: disk full'
    """
    lines = str(error).strip().splitlines()
    first = lines[0].strip() if lines else ""
    if not first:
        return type(error).__name__
    return f"{type(error).__name__}: {first}" if with_type else first
