"""The sweep grammar: `--sweep a.b=v1,v2` (a grid axis), `--zip a.b=v1,v2` (zipped axes), seeds.

    --sweep model.rmin=0.4,0.9 --sweep model.max_phase=1.571,6.283     4 settings (grid)
    --zip model.rmin=0.4,0.9 --zip model.rmax=0.9,0.99                  2 settings (zipped)
    --sweep 'model.depth=(2, 2),(4, 4)'                                  commas inside () [] stay

Values are parsed against the config field's type by the one config loader
(`lsm_jax.training.config_loader.load_config`, as the train command parses `--config.KEY=VALUE`), so
`--sweep model.rmni=...` or `--sweep model.rmin=abc` fails at once with a one-line error naming the flag.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from lsm_jax.training.config_loader import load_config


class SweepError(ValueError):
    """A malformed or mistyped sweep flag (one line, naming the flag)."""


@dataclass(frozen=True)
class Axis:
    """One `--sweep`/`--zip` flag: a dotted config field and its values as typed on the command line."""
    flag: str            # '--sweep' | '--zip'
    key: str
    values: tuple[str, ...]

    def text(self) -> str:
        return f"{self.flag} {self.key}={','.join(self.values)}"


@dataclass(frozen=True)
class Setting:
    """One point of the sweep: the overrides (key -> value text), in flag order."""
    overrides: tuple[tuple[str, str], ...]

    @property
    def label(self) -> str:
        """A stable, filesystem-safe name, e.g. 'rmin=0.4,max_phase=1.571' ('default' if none)."""
        if not self.overrides:
            return "default"
        leaves = [k.rsplit(".", 1)[-1] for k, _ in self.overrides]
        names = leaves if len(set(leaves)) == len(leaves) else [k for k, _ in self.overrides]
        text = ",".join(f"{n}={v}" for n, (_, v) in zip(names, self.overrides))
        return re.sub(r"[^A-Za-z0-9_.,=+-]", "", text.replace(" ", ""))


def split_values(text: str) -> list[str]:
    """'0.4,0.9' -> ['0.4', '0.9']; commas inside (), [] or quotes do not split."""
    out, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return out


def parse_axis(flag: str, spec: str) -> Axis:
    """`key=v1,v2` of one flag; raises SweepError naming the flag."""
    if "=" not in spec:
        raise SweepError(f"{flag} {spec}: expected KEY=V1,V2,... (e.g. model.rmin=0.4,0.9)")
    key, values = spec.split("=", 1)
    key = key.strip().removeprefix("config.")
    vals = split_values(values)
    if not key or not re.fullmatch(r"[A-Za-z_][\w.]*", key):
        raise SweepError(f"{flag} {spec}: {key!r} is not a dotted config field")
    if any(v == "" for v in vals):
        raise SweepError(f"{flag} {spec}: empty value")
    if flag == "--sweep" and len(set(vals)) != len(vals):
        raise SweepError(f"{flag} {spec}: repeated value")
    return Axis(flag, key, tuple(vals))


@dataclass
class Sweep:
    """The grid axes, the zipped axes (one group, all the same length) and the number of seeds."""
    grid: list[Axis] = field(default_factory=list)
    zipped: list[Axis] = field(default_factory=list)
    seeds: int = 1

    @classmethod
    def parse(cls, sweeps: list[str], zips: list[str], seeds: int) -> "Sweep":
        """From the flags' texts; checks shape only (types are checked by `validate`)."""
        grid = [parse_axis("--sweep", s) for s in sweeps]
        zipped = [parse_axis("--zip", s) for s in zips]
        if zipped and len({len(a.values) for a in zipped}) > 1:
            lengths = ", ".join(f"{a.key}: {len(a.values)}" for a in zipped)
            raise SweepError(f"--zip: the zipped fields need the same number of values ({lengths})")
        keys = [a.key for a in grid + zipped]
        dup = next((k for k in keys if keys.count(k) > 1), None)
        if dup:
            raise SweepError(f"--sweep/--zip {dup}: the field is swept twice")
        if "seed" in keys:
            raise SweepError("--sweep seed: use --seeds N (seeds are the repetitions of every setting)")
        if seeds < 1:
            raise SweepError(f"--seeds {seeds}: must be ≥ 1")
        return cls(grid, zipped, seeds)

    def settings(self) -> list[Setting]:
        """Every setting: the product of the grid axes and the zipped group, in flag order."""
        axes = [[((a.key, v),) for v in a.values] for a in self.grid]
        if self.zipped:
            axes.append([tuple((a.key, a.values[i]) for a in self.zipped)
                         for i in range(len(self.zipped[0].values))])
        return [Setting(tuple(kv for part in combo for kv in part)) for combo in itertools.product(*axes)]

    def swept_keys(self) -> list[str]:
        return [a.key for a in self.grid + self.zipped]

    def to_json(self) -> dict:
        return dict(sweep=[f"{a.key}={','.join(a.values)}" for a in self.grid],
                    zip=[f"{a.key}={','.join(a.values)}" for a in self.zipped], seeds=self.seeds)


def override_flags(overrides) -> list[str]:
    """[(key, value)] -> ['--config.key=value', ...] for `config_loader.load_config`."""
    return [f"--config.{k}={v}" for k, v in overrides]


def validate(config_arg: str, sweep: Sweep) -> None:
    """Parses every value of every axis against its field; raises SweepError naming the flag."""
    load_config(config_arg)  # the file itself (its errors name --config)
    for axis in sweep.grid + sweep.zipped:
        for value in axis.values:
            try:
                load_config(config_arg, override_flags([(axis.key, value)]))
            except ValueError as err:
                detail = str(err).split(": ", 1)[-1] if str(err).startswith("--config.") else str(err)
                raise SweepError(f"{axis.flag} {axis.key}={value}: {detail}") from None
