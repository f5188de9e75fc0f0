"""Filters: the boolean expressions of ``--where`` and ``Sweep.where``.

The text is parsed once (``grammar/filter.lark``) into a small frozen AST, and the AST is
compiled once into nested closures, so keeping or dropping a point costs a few Python
calls and never runs ``eval``. Semantics are Python's (chained comparisons, ``and``/``or``
short-circuit, ``//`` and ``%`` floor, ``**`` right-associative), with these guards:

- a type clash or a division by zero is an ``EvaluationError`` naming the point, and a
  negative number to a fractional power (complex in Python) is an error, not a complex;
- no value is built past the limits: integers of at most ``MAX_INT_DIGITS`` digits and
  strings of at most ``MAX_STR_LEN`` characters, for literals and for every result of
  ``+ - * **`` (checked before the work where the size is known in advance), so no
  filter can hang or exhaust memory on one point; messages quote values shortened;
- a run of one operator (``a or b or ...``, ``a + b - ...``, comparisons, ``in`` lists)
  is one flat node, built and evaluated in a loop, so its length is not limited; what
  nests (parentheses around operations, ``not``, signs, ``**``) may go ``MAX_DEPTH``
  levels deep, and deeper is a ``ParseError``, never a ``RecursionError``.

A ``Filter`` pickles as its source (the compiled closures are rebuilt on unpickling), so
filtered sweeps can be sent to other processes.

The package, one concern per module: ``nodes`` (the AST and the limits), ``parser`` (lark
tree -> AST, lark's errors -> ``ParseError`` in the user's words), ``compiler`` (AST ->
closures; a failing operation raises ``compiler.Failure``), ``filter`` (the public
``Filter``, which turns a ``Failure`` into the ``EvaluationError`` naming the point).
"""

from __future__ import annotations

from .filter import Filter, FilterValue
from .nodes import MAX_DEPTH, MAX_INT_DIGITS, MAX_STR_LEN
from .parser import parse_filter

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "MAX_STR_LEN", "Filter", "FilterValue", "parse_filter"]
