"""Training configuration as data: each trainer's options are the fields of its config
dataclass, and its command line is made from them (one ``--field-name`` option per field, the
field's default and its ``help`` metadata), so a config saved beside a checkpoint and the command
that made it say the same thing.

Field metadata understood here: ``help`` (text), ``required`` (no default on the command line),
``choices`` (allowed values), ``cli`` (False: not an option). Lists and tuples are given
comma-separated (``--variants FCN,UNet``) or by repeating the option (``--data A --data B``).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

C = TypeVar("C")


class _ExtendCommaList(argparse.Action):
    """``--opt a,b --opt c`` -> ["a", "b", "c"] (values converted by ``item``)."""

    def __init__(self, *args: Any, item: type = str, **kwargs: Any) -> None:
        self.item = item
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        current = getattr(namespace, self.dest)
        # the default list is replaced by the first use of the option, extended by later ones
        items = [] if current is self.default else list(current)
        try:
            items += [self.item(v) for v in str(values).split(",") if v != ""]
        except ValueError:
            parser.error(f"{option_string}: '{values}' is not a comma-separated list of {self.item.__name__}")
        setattr(namespace, self.dest, items)


def option(default: Any, help: str = "", **meta: Any) -> Any:
    """A config field with its command-line help: ``steps: int = option(500, "optimizer steps")``.
    A list default is copied per instance."""
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata={"help": help, **meta})
    return dataclasses.field(default=default, metadata={"help": help, **meta})


def _item_type(hint: Any) -> tuple[bool, type]:
    """(is a list/tuple, element type) of a field's type hint."""
    origin = typing.get_origin(hint)
    if origin in (list, tuple, Sequence):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return True, (args[0] if args else str)
    return False, hint


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type) -> argparse.ArgumentParser:
    """One option per CLI field of the dataclass ``config_cls``."""
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        is_list, item = _item_type(hints[f.name])
        option = "--" + f.name.replace("_", "-")
        shown = ",".join(str(v) for v in default) if is_list else default
        text = meta.get("help", "")
        kwargs: dict[str, Any] = {"dest": f.name, "help": f"{text} (default: {shown})" if text else f"default: {shown}"}
        if meta.get("required"):
            kwargs["required"] = True
            kwargs["help"] = text
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        if is_list:
            parser.add_argument(option, action=_ExtendCommaList, item=item, default=list(default), **kwargs)
        elif item is bool:
            parser.add_argument(option, action=argparse.BooleanOptionalAction, default=default, **kwargs)
        else:
            parser.add_argument(option, type=item, default=default, **kwargs)
    return parser


def config_parser(config_cls: type, prog: str, description: str | None) -> argparse.ArgumentParser:
    """An argument parser for a trainer: the description (the module docstring) and the config's options."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_config_arguments(parser, config_cls)


def config_from_args(config_cls: type[C], args: argparse.Namespace) -> C:
    """The config of parsed ``args`` (fields that are not options keep their defaults; tuples
    stay tuples)."""
    hints = typing.get_type_hints(config_cls)
    values = {}
    for f in dataclasses.fields(config_cls):
        if not f.metadata.get("cli", True) or not hasattr(args, f.name):
            continue
        v = getattr(args, f.name)
        if typing.get_origin(hints[f.name]) is tuple:
            v = tuple(v)
        values[f.name] = v
    return config_cls(**values)


def parse_config(config_cls: type[C], argv: Sequence[str] | None, prog: str, description: str | None) -> C:
    """A trainer's ``main``: its command line (``argv``; None: ``sys.argv``) as its config."""
    return config_from_args(config_cls, config_parser(config_cls, prog, description).parse_args(argv))
