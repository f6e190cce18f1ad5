"""One vocabulary for every command (issue "A front door for users" §4), read from each command's --help.

The commands are pyproject.toml's `[project.scripts]`, whatever they are; each one's `main(["--help"])` runs
in-process (as `lsm-x --help` would) and so does each of its subcommands' (a command whose help lists
`{a,b,...}`). Every rule of RULES is checked on every one of those helps:

  usage        the usage line names the console script (`usage: lsm-x`; a subcommand `usage: lsm-x sub`)
  kebab-case   every long flag the help shows is lower-case kebab-case (`--target-db`, not `--target_db`);
               config overrides, `--config.KEY=VALUE`, are config fields and keep their own names
  quiet        `-q, --quiet` is offered
  input/output the files a command reads and writes are `-i, --input` and `-o, --output`: `-i`/`-o` mean
               nothing else, `--input`/`--output` always have their short forms, and an option whose
               metavar names a file or a folder (FILE, DIR, PATH, FOLDER, IMAGE) is one of them unless it
               names a role of its own (NAMED_ROLES, each with the reason)
  retired      none of the spellings the vocabulary replaced (RETIRED) is left anywhere in the help

Positional arguments (a study folder, a checkpoint) are not flags and are not checked.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS: dict[str, str] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]

# The spellings the one vocabulary replaced, with what to write instead.
RETIRED = {
    "--out": "-o/--output", "--outdir": "-o/--output", "--output-dir": "-o/--output", "--json": "-o/--output",
    "--data": "-i/--input", "--hr": "-i/--input", "--input-dir": "-i/--input", "--image": "-i/--input",
    "--weights": "--model or --checkpoint", "--set": "--config.KEY=VALUE", "--no-progress": "-q/--quiet",
}

# Options that name a file or a folder without being the command's input or output, and why.
NAMED_ROLES = {
    "--config": "the config document (a packaged NAME[:RECIPE] or its file), not the data",
    "--workdir": "a run's or a study's state, read and written to resume: neither an input nor an output",
    "--checkpoint": "the model that runs, beside -i's data",
    "--model": "the model that runs, beside -i's data",
    "--save-images": "a second output beside -o's scores (lsm-evaluate)",
    "--csv": "the table in a named format beside the table printed on stdout (lsm-pod-plan)",
    "--markdown": "the table in a named format beside the table printed on stdout (lsm-pod-plan)",
}

PATH_METAVAR = re.compile(r"FILE|DIR|PATH|FOLDER|IMAGE")
FLAG = re.compile(r"(?<![\w.\-/])--?[A-Za-z][\w\-]*(?:\.[\w.]*\w)?")   # a flag as the help mentions it
KEBAB = re.compile(r"--[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class Option:
    names: tuple[str, ...]   # ('-i', '--input')
    metavar: str             # 'PATH', '' for a switch


def _main(script: str):
    module, _, func = SCRIPTS[script].partition(":")
    return getattr(importlib.import_module(module), func)


@functools.cache
def help_text(script: str, sub: str = "") -> str:
    """What `script [sub] --help` prints (in-process); fails the test unless the status is 0."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = _main(script)([*([sub] if sub else []), "--help"])
        except SystemExit as done:
            status = done.code
    assert status in (0, None), f"{script} {sub} --help: exit status {status}\n{err.getvalue()}"
    return out.getvalue()


def subcommands(text: str) -> list[str]:
    """The subcommands a help lists as argparse does, `{a,b,c}` on a line of its own."""
    found = re.search(r"^\s+\{([\w,\-]+)\}\s*$", text, re.M)
    return found.group(1).split(",") if found else []


def options(text: str) -> list[Option]:
    """The options of a help's option lines (`  -i PATH, --input PATH   help ...`); config overrides
    (`--config.KEY=VALUE`) are not options of their own."""
    found = []
    for line in text.splitlines():
        m = re.match(r"^  (-\S.*?)(?: {2,}|$)", line)   # argparse indents options by two, their help more
        if not m or m.group(1).startswith("--config."):
            continue
        spellings = [part.split(" ", 1) for part in m.group(1).split(", ")]
        found.append(Option(tuple(s[0] for s in spellings), spellings[-1][1] if len(spellings[-1]) > 1 else ""))
    return found


def mentioned(text: str) -> set[str]:
    """Every flag the help mentions, in the option lines or in prose, config overrides left out."""
    return {f for f in FLAG.findall(text) if not f.startswith("--config.")}


# --------------------------------------------------------------------------------------------- the rules


def rule_usage(name: str, text: str) -> list[str]:
    script, _, sub = name.partition(" ")
    pattern = rf"usage: {re.escape(script)}" + (rf" (?:{sub}|\[{sub}\])(?:\s|$)" if sub else r"(?:\s|$)")
    first = text.splitlines()[0] if text else ""
    return [] if re.match(pattern, first) else [f"the usage line does not name {name!r}: {first!r}"]


def rule_kebab_case(name: str, text: str) -> list[str]:
    return [f"{f}: not kebab-case" for f in sorted(mentioned(text)) if f.startswith("--") and not KEBAB.fullmatch(f)]


def rule_quiet(name: str, text: str) -> list[str]:
    quiet = [o for o in options(text) if "-q" in o.names or "--quiet" in o.names]
    if not quiet:
        return ["no -q/--quiet"]
    return [] if quiet[0].names == ("-q", "--quiet") else [f"-q/--quiet spelt {', '.join(quiet[0].names)}"]


def rule_input_output(name: str, text: str) -> list[str]:
    problems = []
    for o in options(text):
        for short, long in (("-i", "--input"), ("-o", "--output")):
            if (short in o.names or long in o.names) and o.names != (short, long):
                problems.append(f"{', '.join(o.names)}: expected {short}, {long}")
        long_name = o.names[-1]
        if PATH_METAVAR.search(o.metavar) and long_name not in ("--input", "--output") + tuple(NAMED_ROLES):
            problems.append(f"{long_name} {o.metavar}: a file or folder option that is neither -i/--input nor "
                            f"-o/--output (nor one of the named roles)")
    return problems


def rule_retired(name: str, text: str) -> list[str]:
    return [f"{f}: retired, write {RETIRED[f]}" for f in sorted(mentioned(text) & set(RETIRED))]


RULES = {"usage": rule_usage, "kebab-case": rule_kebab_case, "quiet": rule_quiet,
         "input/output": rule_input_output, "retired": rule_retired}


def helps(script: str) -> dict[str, str]:
    """{'lsm-x': its help, 'lsm-x sub': each subcommand's help}."""
    top = help_text(script)
    return {script: top, **{f"{script} {sub}": help_text(script, sub) for sub in subcommands(top)}}


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_every_command_speaks_the_vocabulary(script, rule):
    problems = [f"{name}: {p}" for name, text in helps(script).items() for p in RULES[rule](name, text)]
    assert not problems, f"{rule}:\n  " + "\n  ".join(problems)


def test_the_commands_are_found_and_their_entry_points_load():
    assert len(SCRIPTS) >= 9 and all(name.startswith("lsm-") for name in SCRIPTS)
    for script in SCRIPTS:
        assert callable(_main(script)), script


def test_study_help_names_its_four_commands_one_line_each():
    text = help_text("lsm-study")
    assert subcommands(text) == ["run", "report", "eigen", "states"]
    section = text.split("\ncommands:\n", 1)[1]
    lines = {ln.split()[0]: ln.split(None, 1)[1] for ln in section.splitlines()
             if re.match(r"^ {4}[a-z]+ {2,}\S", ln)}
    assert sorted(lines) == ["eigen", "report", "run", "states"] and all(lines.values())


# ------------------------------------------------------------------ the rules themselves, on made-up helps

BAD = """usage: lsm-thing [-h] [--out DIR] [--target_db DB] [-i IMAGE] [--hr-folder DIR]

options:
  -h, --help            show this help message and exit
  --out DIR             output folder
  --target_db DB        margin
  -i IMAGE              an image
  --hr-folder DIR       HR images
"""

GOOD = """usage: lsm-thing [-h] -i PATH -o DIR [--workdir DIR] [-q] [--config.KEY=VALUE ...]

options:
  -h, --help            show this help message and exit
  -i PATH, --input PATH
                        an image
  -o DIR, --output DIR  output folder
  --workdir DIR         state
  --config.KEY=VALUE    an override of --config.total_steps
  -q, --quiet           quiet
"""


@pytest.mark.parametrize("rule, problems", [
    ("usage", ["the usage line does not name 'lsm-other': 'usage: lsm-thing [-h] [--out DIR] [--target_db DB] "
               "[-i IMAGE] [--hr-folder DIR]'"]),
    ("kebab-case", ["--target_db: not kebab-case"]),
    ("quiet", ["no -q/--quiet"]),
    ("input/output", ["--out DIR: a file or folder option that is neither -i/--input nor -o/--output (nor one of "
                      "the named roles)", "-i: expected -i, --input",
                      "-i IMAGE: a file or folder option that is neither -i/--input nor -o/--output (nor one of the "
                      "named roles)",
                      "--hr-folder DIR: a file or folder option that is neither -i/--input nor -o/--output (nor one "
                      "of the named roles)"]),
    ("retired", ["--out: retired, write -o/--output"]),
])
def test_each_rule_finds_what_it_is_for(rule, problems):
    name = "lsm-other" if rule == "usage" else "lsm-thing"
    assert RULES[rule](name, BAD) == problems
    assert RULES[rule]("lsm-thing", GOOD) == []
