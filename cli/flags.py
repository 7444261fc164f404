"""Command lines generated from flag specifications and the configuration dataclasses.

A ``Command`` is a list of ``Flag``s and a function of their values. Its flags
come from two places: the runner's own (``--output_dir``, ``--seed``, ...) and
one per field of ``ExperimentConfig`` (``config_flags``), with the field's help
and the family's default. Parsing checks every name before any work: an
unknown flag, a positional argument, a missing required flag or a value of the
wrong type is a ``UsageError`` naming it (and the closest valid flag), which
``Command.run`` prints as one ``error:`` line with exit status 2.

Values are read with Fire's parser, so the flag syntax is Fire's:
``--levels=3``, ``--levels 3``, ``--training_len="('iterations', 2000)"``,
``--prune_percents="{'layer0': 0.2}"``, ``--dry_run`` / ``--nodry_run``.
"""

import dataclasses
import sys
import textwrap
import typing
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from fire import parser as fire_parser

from lottery_ticket.cli import errors
from lottery_ticket.experiments import config as config_lib
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import registry

REQUIRED = object()
Values = Dict[str, Any]


class UsageError(ValueError):
    """A command line that does not fit the command's flags."""


@dataclasses.dataclass(frozen=True)
class Flag:
    """One --flag of a command.

    Attributes:
      name: the flag's name, without dashes.
      default: its value when not given; REQUIRED if it must be given.
      help: one line of help.
      kind: the type its value is coerced to (int, float, str, bool,
        Optional[...]); None keeps the parsed value as it is.
      aliases: other names accepted for it (older or family-specific names).
      config: whether it is a field of ExperimentConfig.
      default_text: how --help shows the default, when not the value itself.
    """
    name: str
    default: Any
    help: str
    kind: Any = None
    aliases: Tuple[str, ...] = ()
    config: bool = False
    default_text: Optional[str] = None

    def describe_default(self) -> str:
        """The default as --help shows it."""
        if self.default_text is not None:
            return self.default_text
        if self.default is REQUIRED:
            return "required"
        value = self.default
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
            return f"{value[0]}:{value[1]}"  # training_len
        return repr(value) if isinstance(value, (dict, list, tuple)) else str(value)


def config_flags(defaults: ExperimentConfig, aliases: Optional[Mapping[str, str]] = None,
                 exclude: Sequence[str] = (),
                 default_text: Optional[Mapping[str, str]] = None) -> List[Flag]:
    """One flag per configuration field, with the field's help and `defaults`' value.

    Args:
      defaults: the family's default configuration.
      aliases: alias -> field name (e.g. {'mnist_location': 'data_location'}).
      exclude: fields the command does not take.
      default_text: field -> how --help shows its default.
    """
    aliases = dict(aliases or {})
    default_text = dict(default_text or {})
    hints = {}
    for _, cls in config_lib.CONCERNS:
        hints.update(typing.get_type_hints(cls))
    flags = []
    for name, (_, field) in ExperimentConfig.fields().items():
        if name in exclude:
            continue
        names = tuple(alias for alias, target in aliases.items() if target == name)
        flags.append(Flag(name, defaults[name], field.metadata["help"], hints[name],
                          aliases=names, config=True, default_text=default_text.get(name)))
    return flags


def _split(argv: Sequence[str]) -> List[Tuple[str, Optional[str], str]]:
    """(name, raw value or None, the argument as typed) per flag; UsageError otherwise."""
    items = []
    index = 0
    while index < len(argv):
        argument = argv[index]
        if not argument.startswith("--") or argument == "--":
            raise UsageError(f"unexpected argument {argument!r}: every setting is a "
                             "--flag=value (--help lists them).")
        name, equals, value = argument[2:].partition("=")
        name = name.replace("-", "_")
        if not equals:
            following = argv[index + 1] if index + 1 < len(argv) else None
            if following is not None and not following.startswith("--"):
                value, index = following, index + 1
            else:
                value = None
        items.append((name, value if equals or value is not None else None, argument))
        index += 1
    return items


class Command:
    """A command line: flags, help, and the function that does the work.

    Args:
      program: how the command is invoked, for --help (e.g. 'python -m ...').
      description: what it does, for --help.
      flags: its flags.
      run_fn: run_fn(values, given) does the work; `values` holds every flag
        (defaults filled in, aliases resolved), `given` the names set on the
        command line.
    """

    def __init__(self, program: str, description: str, flags: Sequence[Flag],
                 run_fn: Callable[[Values, Set[str]], Any]):
        self.program = program
        self.description = description
        self.flags = list(flags)
        self.run_fn = run_fn
        self._by_name: Dict[str, Flag] = {}
        for flag in self.flags:
            for name in (flag.name,) + flag.aliases:
                if name in self._by_name:
                    raise ValueError(f"flag --{name} is defined twice.")
                self._by_name[name] = flag

    def help(self) -> str:
        """The --help text: every flag, its default and its help."""
        rows = [f"usage: {self.program} [--flag=VALUE ...]", "",
                textwrap.fill(" ".join(self.description.split()), 88), "", "flags:"]
        for flag in self.flags:
            also = f" (also --{', --'.join(flag.aliases)})" if flag.aliases else ""
            rows.append(f"  --{flag.name}{also}  [default: {flag.describe_default()}]")
            rows.append(textwrap.fill(flag.help, 88, initial_indent="      ",
                                      subsequent_indent="      "))
        rows.append("  --help  show this help and exit")
        return "\n".join(rows)

    def _lookup(self, name: str) -> Tuple[Flag, bool]:
        """The flag for a name, and whether the name was its negated form (--noX)."""
        if name in self._by_name:
            return self._by_name[name], False
        if name.startswith("no") and name[2:] in self._by_name:
            flag = self._by_name[name[2:]]
            if flag.kind is bool:
                return flag, True
        known = sorted(self._by_name)
        guess = registry.closest(name, known)
        hint = f"; did you mean --{guess}?" if guess else ""
        raise UsageError(f"unknown flag --{name}{hint} (--help lists every flag).")

    def parse(self, argv: Sequence[str]) -> Tuple[Values, Set[str]]:
        """Flag values (defaults filled in) and the names given, or a UsageError."""
        values: Values = {}
        given: Dict[str, str] = {}
        for name, raw, typed in _split(argv):
            flag, negated = self._lookup(name)
            if flag.name in given:
                raise UsageError(f"{typed} sets --{flag.name} again (first as "
                                 f"{given[flag.name]}).")
            given[flag.name] = typed
            if raw is None:
                if flag.kind is not bool:
                    raise UsageError(f"--{name} needs a value: --{name}=VALUE.")
                value: Any = not negated
            elif negated:
                raise UsageError(f"{typed}: --{name} takes no value; write --{name} or "
                                 f"--{flag.name}={raw}.")
            else:
                value = fire_parser.DefaultParseValue(raw)
            values[flag.name] = self._coerce(flag, value, raw)
        for flag in self.flags:
            if flag.name not in values:
                if flag.default is REQUIRED:
                    raise UsageError(f"--{flag.name} is required: {flag.help}")
                values[flag.name] = flag.default
        return values, set(given)

    @staticmethod
    def _coerce(flag: Flag, value: Any, raw: Optional[str]) -> Any:
        # Fire reads 007, 2024 or 1e3 as numbers; a text flag keeps the text as typed.
        if flag.kind is str or flag.kind == Optional[str]:
            return raw if raw is not None else value
        if flag.kind is None or flag.config:
            return value  # configuration fields are checked by the configuration
        try:
            return config_lib.coerce(f"--{flag.name}", flag.kind, value)
        except ValueError as error:
            raise UsageError(str(error)) from error

    def run(self, argv: Optional[Sequence[str]] = None) -> Any:
        """Parses argv (default sys.argv[1:]) and runs; errors exit with status 2."""
        argv = list(sys.argv[1:] if argv is None else argv)
        if "--help" in argv or "-h" in argv:
            try:
                print(self.help())
            except BrokenPipeError:  # --help | head
                pass
            return None
        return errors.run_cli(lambda: self.run_fn(*self.parse(argv)))


def config_from(values: Values, defaults: ExperimentConfig,
                only: Optional[Set[str]] = None) -> ExperimentConfig:
    """The configuration from parsed flag values (all fields, or those in `only`)."""
    fields = ExperimentConfig.fields()
    chosen = {name: value for name, value in values.items()
              if name in fields and (only is None or name in only)}
    try:
        return defaults.replace(**chosen)
    except ValueError as error:
        message = str(error)
        # The configuration names a setting by its field; on a command line it is a flag.
        named = [name for name in fields if message.startswith((f"{name}=", f"{name} "))]
        raise ValueError(f"--{message}" if named else message) from error
