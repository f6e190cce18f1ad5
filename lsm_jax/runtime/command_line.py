"""What every command's command line shares: the spellings from before the one vocabulary, still read.

The commands speak one vocabulary (`-i/--input`, `-o/--output`, `-q/--quiet`, kebab-case flags,
`--config.KEY=VALUE`; `tests/test_cli_vocabulary.py`). Flags renamed on the way there are still read, and no
longer shown in the help (`new_spellings`); `--set KEY=VALUE`, whose value changed form, is refused in one line
that gives today's spelling (`refuse_set`).
"""

from __future__ import annotations

from typing import Mapping, Sequence


def new_spellings(argv: Sequence[str], renamed: Mapping[str, str]) -> list[str]:
    """`argv` with each renamed flag (`--old VALUE` or `--old=VALUE`) replaced by today's name."""
    out = []
    for arg in argv:
        name, eq, value = arg.partition("=")
        out.append(renamed[name] + eq + value if name in renamed else arg)
    return out


def refuse_set(argv: Sequence[str]) -> None:
    """ValueError, in one line that gives today's spelling, for `--set KEY=VALUE` (the old override)."""
    for i, a in enumerate(argv):
        if a == "--set" or a.startswith("--set="):
            value = a.partition("=")[2] or (argv[i + 1] if i + 1 < len(argv) else "")
            example = f"--config.{value}" if "=" in value else "--config.KEY=VALUE"
            raise ValueError(f"--set {value}".rstrip() + f": write config overrides as --config.KEY=VALUE ({example})")
