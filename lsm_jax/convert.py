"""Convert the authors' PyTorch checkpoints into lsm-jax inference checkpoints.

    lsm-convert -i net_g.pth [--network-options test_LSM_light_x4.yml] -o DIR     (or python -m lsm_jax.convert)

Optional: `lsm-upscale`, `lsm-evaluate` and `lsm_jax.load_model` take a weights file (or a released model's
name) directly and convert it once into the user cache; this command writes a checkpoint folder where you say.

The weights are a BasicSR checkpoint (`{'params': ..., 'params_ema': ...}`, `params_ema` by default,
any `module.` prefix stripped) or an `.npz`/`.safetensors` of the same state_dict keys; a `.pth` is read
without PyTorch when it is not installed (`lsm_jax.porting.pth`). The options file is a BasicSR YAML whose
`network_g` section gives the architecture; without one, the architecture is read from the state_dict's keys
and shapes (`lsm_jax.porting.architecture`) and printed. When both are given and disagree, the error names the
fields. Every key must be consumed or be a known recomputable buffer; otherwise one error lists every problem.
Converted checkpoints use `reference` semantics, which is what the weights were trained with.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from lsm_jax.model.network import count_parameters
from lsm_jax.model.saved import CheckpointError
from lsm_jax.porting.checkpoint import ConversionError, convert
from lsm_jax.runtime.command_line import new_spellings

PROG = "lsm-convert"
# Spellings before the one vocabulary of the commands: still read, not shown in the help.
RENAMED = {'--weights': '--input', '--out': '--output'}



def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0])
    parser.add_argument('-i', '--input', required=True, metavar='FILE',
                        help='.pth (BasicSR), .npz or .safetensors state_dict')
    parser.add_argument('-o', '--output', required=True, metavar='DIR', help='output checkpoint directory')
    parser.add_argument('--network-options', default=None, metavar='YAML',
                        help="BasicSR options YAML with network_g (default: read the architecture from the weights)")
    parser.add_argument('--key', default=None, help="entry of a BasicSR checkpoint (default params_ema)")
    parser.add_argument('--overwrite', action='store_true', help='replace an existing checkpoint in -o')
    parser.add_argument('-q', '--quiet', action='store_true', help='print only errors')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(new_spellings(sys.argv[1:] if argv is None else argv, RENAMED))
    weights = Path(args.input)
    if weights.is_dir():
        print(f"lsm-convert: error: {weights} is a folder; -i takes a weights file (.pth, .safetensors, .npz). "
              "A checkpoint folder needs no conversion: pass it to lsm-upscale --checkpoint", file=sys.stderr)
        return 2
    try:
        cfg = convert(weights, args.network_options, args.output, args.key, args.overwrite,
                      report=(lambda line: None) if args.quiet else print)
    except (ConversionError, CheckpointError) as err:
        print(f"lsm-convert: error: {err}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"wrote {args.output} ({cfg.arch} x{cfg.upscale}, {count_parameters(cfg):,} parameters, "
              "semantics=reference)")
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
