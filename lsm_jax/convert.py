"""Convert the authors' PyTorch checkpoints into lsm-jax inference checkpoints.

    python -m lsm_jax.convert --weights net_g.pth [--network-options test_LSM_light_x4.yml] --out DIR

The weights are a BasicSR checkpoint (`{'params': ..., 'params_ema': ...}`, `params_ema` by default,
any `module.` prefix stripped) or an `.npz`/`.safetensors` of the same state_dict keys. The options
file is a BasicSR YAML whose `network_g` section gives the architecture; without one, the architecture
is read from the state_dict's keys and shapes (`lsm_jax.porting.architecture`) and printed. When
both are given and disagree, the error names the fields. Every key must be consumed
or be a known recomputable buffer; otherwise one error lists every problem. Converted checkpoints
use `reference` semantics, which is what the weights were trained with.
"""

from __future__ import annotations

import argparse
import sys


from lsm_jax.model.saved import CheckpointError
from lsm_jax.model.network import count_parameters
from lsm_jax.porting.checkpoint import ConversionError, convert

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m lsm_jax.convert', description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', required=True, help='.pth (BasicSR), .npz or .safetensors state_dict')
    parser.add_argument('--network-options', default=None,
                        help="BasicSR options YAML with network_g (default: read the architecture from the weights)")
    parser.add_argument('--out', required=True, help='output checkpoint directory')
    parser.add_argument('--key', default=None, help="entry of a BasicSR checkpoint (default params_ema)")
    parser.add_argument('--overwrite', action='store_true', help='replace an existing checkpoint in --out')
    args = parser.parse_args(argv)
    try:
        cfg = convert(args.weights, args.network_options, args.out, args.key, args.overwrite, report=print)
    except (ConversionError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({cfg.arch} x{cfg.upscale}, {count_parameters(cfg):,} parameters, "
          "semantics=reference)")
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
