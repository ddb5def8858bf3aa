"""One command-line style for every ``python -m brainsegfounder.*`` command, and one error wrapper.

Every command is a plain function whose signature and docstring make its parser (jsonargparse,
the library LightningCLI is built on, so ``fit`` and the others read alike): ``--name value``,
``--config FILE`` for any of them, ``--help`` listing every option with its documentation.
Errors the package raises on purpose (:class:`~brainsegfounder.utils.errors.BrainSegFounderError`)
print as one line, without a traceback, and exit with status 2.

Keep command modules light at import time (heavy imports inside the function) so that
``--help`` answers at once.

Example (what a command module's ``main`` looks like):
    >>> def greet(name: str = "world", loud: bool = False) -> str:
    ...     '''Say hello.
    ...
    ...     Args:
    ...         name: whom to greet.
    ...         loud: shout.
    ...     '''
    ...     return f"hello {name}" + ("!" if loud else "")
    >>> command(greet, ["--name", "MRI", "--loud", "true"], prog="python -m brainsegfounder.greet")
    'hello MRI!'
    >>> command(greet, ["--loud"], prog="python -m brainsegfounder.greet")  # a bare flag is true
    'hello world!'
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from brainsegfounder.utils.errors import BrainSegFounderError

__all__ = ["command", "fail", "guarded", "shell_style"]


def fail(err: BaseException | str, status: int = 2) -> NoReturn:
    """Print ``error: <message>`` on stderr (no traceback, no hard wrapping) and exit."""
    from rich.console import Console

    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {err}", highlight=False, markup=True)
    sys.exit(status)


def guarded(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command's body so that a :class:`BrainSegFounderError` ends as one line and exit 2."""

    def run(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except BrainSegFounderError as err:
            fail(err)

    run.__name__, run.__doc__, run.__wrapped__ = function.__name__, function.__doc__, function
    return run


def _bare_flag_parser() -> type:
    """jsonargparse's parser, with every ``bool`` option also accepted bare (``--overwrite``).

    jsonargparse types ``bool`` options as ``--flag true|false``; its ``ActionYesNo`` cannot be
    asked for from a signature. An optional value with ``const=True`` gives both forms
    (``--flag``, ``--flag true``, ``--flag false``) and ``--help`` shows ``--flag [{true,false}]``.
    """
    from jsonargparse import ArgumentParser

    class BareFlagParser(ArgumentParser):
        def parse_args(self, *args, **kwargs):
            for action in self._actions:
                if getattr(action, "_typehint", None) is bool and action.option_strings:
                    action.nargs, action.const = "?", True
            return super().parse_args(*args, **kwargs)

    return BareFlagParser


def command(function: Callable[..., Any], argv: Sequence[str] | None = None, *, prog: str,
            description: str | None = None) -> Any:
    """Parse ``argv`` (default ``sys.argv[1:]``) from ``function``'s signature and call it.

    Args:
        function: the command; its docstring's ``Args:`` section documents each option.
        argv: the arguments; ``None`` reads ``sys.argv[1:]``.
        prog: how a user types the command, for usage lines (``python -m brainsegfounder.predict``).
        description: text above the options; default: the function's docstring summary.
    """
    from jsonargparse import CLI

    from brainsegfounder.utils.allocator import keep_freed_memory

    keep_freed_memory()
    try:
        return CLI(function, args=None if argv is None else list(argv), as_positional=False,
                   prog=prog, description=description, default_env=False, fail_untyped=False,
                   parser_class=_bare_flag_parser())
    except BrainSegFounderError as err:
        from brainsegfounder.utils.folders import remove_empty_made

        remove_empty_made()  # a refusal leaves no empty output folder behind
        fail(err)


def shell_style(argv: Sequence[str], lists: Sequence[str], flags: Sequence[str]) -> list[str]:
    """Accept the usual shell forms: ``--ckpt a b`` (several values of a list option in ``lists``) and
    bare flags (``--tta``, options in ``flags``), as ``predict`` and ``preprocess`` take them.

    jsonargparse reads a list option as ``--ckpt+ a --ckpt+ b`` and a flag as ``--tta true``.

    >>> shell_style(["--ckpt", "a.ckpt", "b.ckpt", "--tta", "--output", "out"], ("--ckpt",), ("--tta",))
    ['--ckpt+', 'a.ckpt', '--ckpt+', 'b.ckpt', '--tta=true', '--output', 'out']
    """
    out: list[str] = []
    current = None
    for arg in argv:
        if arg.startswith("--"):
            current = arg if arg in lists else None
            out.append(f"{arg}=true" if arg in flags else arg)
            if current:
                out.pop()
        elif current:
            out += [f"{current}+", arg]
        elif out and out[-1].endswith("=true") and out[-1][:-5] in flags and arg.lower() in ("true", "false"):
            out[-1] = f"{out[-1][:-5]}={arg.lower()}"  # --tta false: the value was given after all
        else:
            out.append(arg)
    return out
