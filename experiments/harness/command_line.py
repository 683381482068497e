"""The command line of an experiment: a config template's fields as absl flags, and back.

    define_flags(Config, flag_values)            # one flag per field, its default and help
    parse_flags(flag_values, argv)               # absl's parse, errors as one FlagError line
    config = from_flags(Config, QUICK, flag_values)  # validated (`template.validate`)
"""

import dataclasses
import os
import re
from typing import Sequence

from absl import flags

from experiments.harness import template
from experiments.harness.template import FlagError

_ABSL_BAD_VALUE = re.compile(r"flag --(?P<name>\w+)=(?P<value>.*?): ", re.S)


def parse_flags(flag_values: flags.FlagValues, argv: Sequence[str]) -> list[str]:
    """absl's parse of `argv` (program name first), its value errors in our one-line form."""
    try:
        return flag_values(list(argv))
    except flags.Error as error:
        bad = _ABSL_BAD_VALUE.match(str(error))
        if bad is None or bad["name"] not in flag_values:
            raise FlagError(str(error)) from None
        parser = flag_values[bad["name"]].parser
        values = getattr(parser, "enum_values", None)
        expected = (f"one of {', '.join(values)}" if values
                    else f"a value of type {parser.flag_type()}")
        raise FlagError(f"--{bad['name']}: expected {expected}, received {bad['value']!r}") \
            from None


def define_flags(config_cls: type, flag_values: flags.FlagValues) -> None:
    """Defines one absl flag per config field, with the field's default and help."""
    for f in dataclasses.fields(config_cls):
        help_text, choices = f.metadata["help"], f.metadata["choices"]
        kw = dict(name=f.name, default=f.default, help=help_text, flag_values=flag_values)
        if f.name == "grid":
            flags.DEFINE_multi_string(**{**kw, "default": list(f.default)})
        elif f.type in template.LIST_TYPES:
            flags.DEFINE_list(**{**kw, "default": [str(v) for v in f.default]})
        elif choices is not None:
            flags.DEFINE_enum(enum_values=list(choices), **kw)
        else:
            define = {int: flags.DEFINE_integer, float: flags.DEFINE_float,
                      bool: flags.DEFINE_bool, str: flags.DEFINE_string}[f.type]
            define(**kw)


def from_flags(config_cls: type, quick: dict, flag_values: flags.FlagValues):
    """The parsed flags as a validated config (flag given > --quick value > default)."""
    values = {}
    for f in dataclasses.fields(config_cls):
        flag = flag_values[f.name]
        use_quick = flag_values["quick"].value and f.name in quick and not flag.present
        values[f.name] = template.convert(f, quick[f.name] if use_quick else flag.value)
        if template.is_path(f) and isinstance(values[f.name], str):
            values[f.name] = os.path.expanduser(values[f.name])
    return template.validate(config_cls(**values))


