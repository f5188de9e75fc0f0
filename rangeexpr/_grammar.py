"""The parsers, loaded from LALR tables built ahead of time and shipped in the package.

``grammar/*.lark`` is the source of truth. ``python3 grammar/build_tables.py`` compiles each
grammar in lark's strict mode (an LALR conflict or a terminal collision is an error; this
needs ``interegular``, a test dependency) and writes ``_tables_<grammar>.py``, one module
per grammar (so ``check`` never loads the ``--where`` parser): the serialized parser
as plain Python literals. At run time a process loads those literals with ``Lark.load``
(or ``Lark._load_from_dict``, which passes load-time options such as a transformer):
it never compiles a grammar, never writes or reads a cache, never unpickles anything, so
it needs nothing but lark itself and trusts nothing in a temp directory another user can
write. ``tests/test_grammar_tables.py`` fails when the tables are stale.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pprint
import subprocess
import sys
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer

__all__ = [
    "GRAMMARS",
    "build_tables",
    "grammar_path",
    "inline_parser",
    "lark_parser",
    "serialize",
    "tables_path",
]

GRAMMARS = ("rangeexpr.lark", "filter.lark")
_HERE = Path(__file__).resolve().parent
_PLACES = (_HERE / "grammar", _HERE.parent / "grammar")


def tables_path(filename: str) -> Path:
    """Where the tables of one grammar live: ``rangeexpr/_tables_<stem>.py``."""
    return _HERE / f"_tables_{Path(filename).stem}.py"


_OPTIONS: dict[str, Any] = {
    "parser": "lalr",
    "propagate_positions": True,
    "maybe_placeholders": False,
}


def grammar_path(filename: str) -> Path:
    """The grammar file, from the installed package or else from the checkout."""
    for place in _PLACES:
        path = place / filename
        if path.is_file():
            return path
    raise FileNotFoundError(f"grammar {filename!r} not found in {[str(p) for p in _PLACES]}")


def _table(filename: str) -> dict[str, Any]:
    import importlib

    table: dict[str, Any] = importlib.import_module(
        f"{__package__}._tables_{Path(filename).stem}"
    ).TABLE
    return table


@functools.cache
def lark_parser(filename: str) -> Lark:
    """The LALR parser for one grammar, from the shipped tables, once per process."""
    return Lark.load(_table(filename))


def inline_parser(filename: str, transformer: Transformer[Token, Any]) -> Lark:
    """A parser from the same tables whose ``parse`` returns what ``transformer`` builds.

    Lark calls the transformer's method for each rule as the LALR parser reduces it, so no
    tree is built, and no rule carries positions (``propagate_positions`` off: tokens keep
    their own ``start_pos``/``end_pos``). ``Lark.load`` takes no options in lark 1.3;
    ``_load_from_dict`` is the entry point of lark's standalone parsers, which pass load-time
    options (``transformer``, ``propagate_positions`` are among ``_LOAD_ALLOWED_OPTIONS``).
    """
    table = _table(filename)
    parser: Lark = Lark._load_from_dict(  # type: ignore[no-untyped-call]  # lark leaves it bare
        table["data"], table["memo"], transformer=transformer, propagate_positions=False
    )
    return parser


def serialize(grammar: str) -> dict[str, Any]:
    """One grammar compiled in strict mode, as the literals ``Lark.load`` takes."""
    from lark.grammar import Rule
    from lark.lexer import TerminalDef

    parser = Lark(grammar, strict=True, **_OPTIONS)
    data, memo = parser.memo_serialize([TerminalDef, Rule])
    data["options"]["strict"] = False  # checked here, at build time; needs interegular
    table = data["parser"]["parser"]
    table.update(_canonical_states(table))
    return {"data": data, "memo": memo}


def _canonical_states(table: dict[str, Any]) -> dict[str, Any]:
    """The LALR table with tokens numbered by name and states in breadth-first order.

    Lark numbers both in the order it met them, which varies from process to process;
    renumbering makes the same grammar always give the same text.
    """
    names: dict[int, str] = table["tokens"]
    token_ids = {name: i for i, name in enumerate(sorted(names.values()))}
    order: dict[int, int] = {}
    queue = [table["start_states"][s] for s in sorted(table["start_states"])]
    while queue:
        state = queue.pop(0)
        if state in order:
            continue
        order[state] = len(order)
        actions = table["states"][state]
        for token in sorted(actions, key=names.__getitem__):
            kind, arg = actions[token]
            if kind == 0:  # shift (or goto): arg is the next state
                queue.append(arg)
    states = {
        order[state]: {
            token_ids[names[token]]: (kind, order[arg] if kind == 0 else arg)
            for token, (kind, arg) in sorted(
                table["states"][state].items(), key=lambda item: token_ids[names[item[0]]]
            )
        }
        for state in sorted(table["states"], key=order.__getitem__)
    }
    return {
        "tokens": {i: name for name, i in token_ids.items()},
        "states": states,
        "start_states": {k: order[v] for k, v in table["start_states"].items()},
        "end_states": {k: order[v] for k, v in table["end_states"].items()},
    }


def build_tables(filename: str) -> str:
    """The text of one grammar's tables module as the grammar is now (strict: conflicts
    fail).

    Lark numbers its parser states in set-iteration order, which depends on the string
    hash seed, so the tables are built in a process with ``PYTHONHASHSEED=0`` (and put in
    a canonical order): the same grammar and lark version always give the same text.
    """
    if sys.flags.hash_randomization:
        code = (
            "import sys; from rangeexpr._grammar import build_tables as b; "
            f"sys.stdout.write(b({filename!r}))"
        )
        env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(_HERE.parent)}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        return done.stdout
    text = grammar_path(filename).read_text(encoding="utf-8")
    digest = hashlib.sha256(text.encode()).hexdigest()
    parts = [
        f'"""LALR tables for grammar/{filename}, generated by grammar/build_tables.py.',
        "",
        "Do not edit: regenerate after changing the grammar (a test fails while this is stale).",
        '"""',
        "",
        "from typing import Any",
        "",
        f"# {filename}, sha256 {digest}",
        f"TABLE: dict[str, Any] = {pprint.pformat(serialize(text), width=100)}",
    ]
    return "\n".join(parts) + "\n"
