"""One option layer for every tool: a tool declares its options as data (a
:class:`Grammar`) and :func:`parse` reads its arguments with the standard library's
``getopt.gnu_getopt``, the grammar of the C tools' ``getopt``/``getopt_long``.

What every tool gets from it:

* short flags bundle (``-TJ``, ``-vt``), a value follows its option attached or apart
  (``--job=1103``, ``--job 1103``, ``-d0.5``, ``-d 0.5``), long options may be shortened
  to a unique prefix (``--thr``), operands may stand between options and ``--`` ends the
  options;
* ``-h`` and ``--help`` print the tool's help on stdout and exit 0;
* options are acted on in order, as the C tools did: help (or memgraph's ``-S``) read
  before a wrong argument wins, a wrong argument read first is the error;
* a source option after the tool (``mxmem ps --sim``) gets one line saying where it goes;
* one exit code per kind of error: :data:`EXIT_USAGE` (2) for every usage error, whatever
  the tool (the C tools exited 1 for everything; mxmem keeps 1 for "that object cannot
  be found or read").

Tools whose C ancestor pinned an error wording keep it (:class:`Wording` and its
subclasses); the others share glibc's, which ``memgraph`` and ``kstats`` printed.
A value an option does not accept is one line (:func:`bad_value`), in every tool.

Why ``getopt`` and not ``argparse``: the pinned grammars are getopt's, and argparse
differs from it where the tests pin them (``-xv`` is one unknown token to argparse,
getopt reports ``x``; Python 3.11's intermixed parsing mishandles ``--``; argparse has
no in-order help), while ``GetoptError`` names the offending option.
"""

from __future__ import annotations

import getopt
import shlex
from collections.abc import Sequence
from typing import NamedTuple, TextIO

from mxmem.render.text import safe_text
from mxmem.sizes import UNITS

__all__ = [
    "ATTRIBUTIONS",
    "ATTRIBUTION_OPT",
    "EXIT_USAGE",
    "UNITS_OPT",
    "Grammar",
    "Opt",
    "Parsed",
    "Wording",
    "bad_value",
    "parse",
    "source_hint",
    "usage_error",
]

EXIT_USAGE = 2

#: The values of every tool's ``--attribution=``: the 2017 kernel's rule (the default)
#: or exact attribution (issue 6).
ATTRIBUTIONS = ("2017", "exact")


# The options that choose a source: they belong before the tool (`mxmem --sim ps`).
_SOURCE_FLAGS = ("--sim", "--host", "--capture")


def source_option(arg: str) -> bool:
    """Whether ``arg`` is one of mxmem's source options (``--sim``, ``--sim=W``,
    ``--host``, ``--capture``, ``--capture=F``)."""
    return arg in _SOURCE_FLAGS or arg.startswith(("--sim=", "--capture="))


def source_hint(tool: str, arg: str, following: str | None = None) -> str:
    """The line for a source option given after the tool, with the command that puts it
    before the tool, value included: ``--capture F`` (``following`` is the argument after
    ``arg``) becomes ``--capture=F``; so does ``--sim W`` when W is a built-in world
    (``--sim`` takes its world only attached)."""
    moved = arg
    if arg == "--capture" and following is not None:
        moved = f"--capture={following}"
    elif arg == "--sim" and following is not None and _is_world(following):
        moved = f"--sim={following}"
    shown = safe_text(arg)
    return (
        f"{tool}: {shown}: source options go before the tool:"
        f" mxmem {safe_text(shlex.quote(moved))} {tool}\n"
    )


def _is_world(name: str) -> bool:
    from mxmem.sources.sim.worlds import worlds  # only on this error's path

    return any(w.name == name for w in worlds())


class Opt(NamedTuple):
    """One option: its key in :attr:`Parsed.values`, its letter and long name (either
    may be empty), and whether it takes a value, and if so which ones (``choices``;
    ``None``: any, for the tool to check). ``acts`` options (help, memgraph's ``-S``)
    end the parsing as soon as they are read."""

    key: str
    short: str = ""
    long: str = ""
    value: bool = False
    acts: bool = False
    choices: tuple[str, ...] | None = None

    @property
    def spelling(self) -> str:
        return f"--{self.long}" if self.long else f"-{self.short}"


HELP_OPT = Opt("help", "h", "help", acts=True)
#: Every tool's ``--attribution=2017|exact``.
ATTRIBUTION_OPT = Opt("attribution", long="attribution", value=True, choices=ATTRIBUTIONS)
#: ``--units=X``: one of Magenta's size units.
UNITS_OPT = Opt("units", long="units", value=True, choices=tuple(UNITS))


def expected(choices: Sequence[str]) -> str:
    """How a one-line error lists the values an option takes."""
    if len(choices) == 2:
        return " or ".join(choices)
    return "one of " + ", ".join(choices)


class Wording:
    """How a tool words its usage errors: glibc ``getopt_long``'s messages, each after
    ``<tool>: ``, then what the grammar's ``after_error`` says (except after an operand
    error when ``operands_alone``)."""

    operands_alone = False

    def unknown_short(self, tool: str, letter: str, token: str) -> str:
        return f"{tool}: invalid option -- '{safe_text(letter)}'"

    def unknown_long(self, tool: str, token: str) -> str:
        return f"{tool}: unrecognized option '{safe_text(token)}'"

    def ambiguous(self, tool: str, name: str, matches: Sequence[str]) -> str:
        choices = " ".join(f"'--{m}'" for m in matches)
        return f"{tool}: option '--{safe_text(name)}' is ambiguous; possibilities: {choices}"

    def needs_value(self, tool: str, opt: Opt, long: bool) -> str:
        if long:
            return f"{tool}: option '--{opt.long}' requires an argument"
        return f"{tool}: option requires an argument -- '{opt.short}'"

    def no_value(self, tool: str, opt: Opt) -> str:
        return f"{tool}: option '--{opt.long}' doesn't allow an argument"

    def operands(self, tool: str, operands: Sequence[str], spec: str) -> str:
        if not spec:
            return f"{tool}: unexpected argument '{safe_text(operands[0])}'"
        return f"{tool}: expected {spec}, got {len(operands)} argument(s)"


class Grammar(NamedTuple):
    """A tool's command line. ``operands``: how many operands it takes, at least and at
    most (``None``: any number); ``spec`` names them in errors. ``after_error``: what
    follows a usage error's message: ``"help"`` (the C tools printed their usage),
    ``"pointer"`` (``; see `mxmem TOOL --help```, on the same line) or ``""`` (the
    message is the usage already).
    ``exact_tokens``: only the exact spellings of the options are options, everything
    else is an operand (vmaps and vmos, whose one argument may be ``-1`` or ``-help``)."""

    tool: str
    help: str
    options: tuple[Opt, ...] = ()
    operands: tuple[int, int | None] = (0, 0)
    spec: str = ""
    after_error: str = "pointer"
    exact_tokens: bool = False
    wording: Wording = Wording()


class Parsed(NamedTuple):
    """The options read: ``flags`` holds the keys of the flags given, ``values`` the last
    value of each option that takes one; ``operands`` in order."""

    flags: frozenset[str]
    values: dict[str, str]
    operands: list[str]


def _options(grammar: Grammar) -> tuple[Opt, ...]:
    if any(o.key == "help" for o in grammar.options):
        return grammar.options
    return (*grammar.options, HELP_OPT)


class _Problem(NamedTuple):
    at: int  # the index of the argument it is in
    message: str
    hint: bool = False  # a source option after the tool: the line says it all


def _getopt(opts: tuple[Opt, ...], args: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    shorts = "".join(o.short + (":" if o.value else "") for o in opts if o.short)
    longs = [o.long + ("=" if o.value else "") for o in opts if o.long]
    return getopt.gnu_getopt(list(args), shorts, longs)


def _word(grammar: Grammar, opts: tuple[Opt, ...], token: str, error: getopt.GetoptError) -> str:
    """The tool's wording of the error getopt found in ``token``."""
    tool, wording = grammar.tool, grammar.wording
    if not token.startswith("--"):
        letter = error.opt
        opt = next((o for o in opts if o.short == letter), None)
        if opt is None:
            return wording.unknown_short(tool, letter, token)
        return wording.needs_value(tool, opt, long=False)
    name = token[2:].partition("=")[0]
    exact = [o for o in opts if o.long == name]
    matches = exact or [o for o in opts if o.long and name and o.long.startswith(name)]
    if not matches:
        return wording.unknown_long(tool, token)
    if len(matches) > 1:
        return wording.ambiguous(tool, name, [o.long for o in matches])
    opt = matches[0]
    if opt.value:
        return wording.needs_value(tool, opt, long=True)
    return wording.no_value(tool, opt)


def _first_error(
    grammar: Grammar, opts: tuple[Opt, ...], args: Sequence[str], error: getopt.GetoptError
) -> _Problem:
    """Where getopt's ``error`` is: the shortest prefix of ``args`` that fails the same
    way ends at the argument at fault (a prefix may also fail sooner only by cutting an
    option from its value, which fails differently)."""
    for end in range(1, len(args) + 1):
        try:
            _getopt(opts, args[:end])
        except getopt.GetoptError as e:
            if (e.msg, e.opt) == (error.msg, error.opt):
                return _Problem(end - 1, _word(grammar, opts, args[end - 1], e))
    return _Problem(len(args) - 1, _word(grammar, opts, args[-1], error))  # pragma: no cover


def _scan(grammar: Grammar, opts: tuple[Opt, ...], args: Sequence[str]) -> tuple[
    list[tuple[Opt, str]], list[str], _Problem | None
]:
    """The options read in order, the operands, and the first problem (which ends the
    reading: what came after it is not read)."""
    problem: _Problem | None = None
    end = len(args)
    for i, arg in enumerate(args):
        if arg == "--" and not grammar.exact_tokens:
            break
        if source_option(arg):
            following = args[i + 1] if i + 1 < len(args) else None
            problem, end = _Problem(i, source_hint(grammar.tool, arg, following), hint=True), i
            break
    if grammar.exact_tokens:
        spelled = {f"-{o.short}": o for o in opts if o.short}
        spelled.update({f"--{o.long}": o for o in opts if o.long})
        read = [(spelled[a], "") for a in args[:end] if a in spelled]
        return read, [a for a in args[:end] if a not in spelled], problem
    try:
        pairs, operands = _getopt(opts, args[:end])
    except getopt.GetoptError as e:
        problem = _first_error(grammar, opts, args[:end], e)
        pairs, operands = _getopt(opts, args[: problem.at])
    by_name = {f"-{o.short}": o for o in opts if o.short}
    by_name.update({f"--{o.long}": o for o in opts if o.long})
    return [(by_name[name], value) for name, value in pairs], operands, problem


def parse(grammar: Grammar, args: Sequence[str], out: TextIO, err: TextIO) -> Parsed | int:
    """The options of ``args``, or the exit code when the tool is done: 0 after the help
    (written to ``out``), :data:`EXIT_USAGE` after a usage error (written to ``err``).
    Options that act (memgraph's ``-S``) are left in ``flags`` for the tool, with the
    other options read before them."""
    opts = _options(grammar)
    read, operands, problem = _scan(grammar, opts, args)
    flags: set[str] = set()
    values: dict[str, str] = {}
    for opt, value in read:
        if opt.key == "help":
            out.write(grammar.help)
            return 0
        if opt.value:
            values[opt.key] = value
        else:
            flags.add(opt.key)
        if opt.acts:
            return Parsed(frozenset(flags), values, [])
    if problem is None:
        least, most = grammar.operands
        if len(operands) < least or (most is not None and len(operands) > most):
            message = grammar.wording.operands(grammar.tool, operands, grammar.spec)
            if grammar.wording.operands_alone:
                err.write(f"{message}\n")
                return EXIT_USAGE
            problem = _Problem(-1, message)
    if problem is None:
        for opt in opts:
            given = values.get(opt.key)
            if given is not None and opt.choices is not None and given not in opt.choices:
                return bad_value(grammar.tool, opt.spelling, given, expected(opt.choices), err)
        return Parsed(frozenset(flags), values, operands)
    if problem.hint:
        err.write(problem.message)
        return EXIT_USAGE
    return usage_error(grammar, problem.message, err)


def usage_error(grammar: Grammar, message: str, err: TextIO) -> int:
    """Report a usage error of ``grammar``'s tool, as ``after_error`` says; the exit
    code."""
    if grammar.after_error == "help":
        err.write(f"{message}\n{grammar.help}")
    elif grammar.after_error == "pointer":
        err.write(f"{message}; see `mxmem {grammar.tool} --help`\n")
    else:
        err.write(f"{message}\n")
    return EXIT_USAGE


def bad_value(tool: str, option: str, value: str, expected: str, err: TextIO) -> int:
    """One line for a value an option does not take; the exit code."""
    err.write(f"{tool}: {option} must be {expected}, not {safe_text(repr(value))}\n")
    return EXIT_USAGE
