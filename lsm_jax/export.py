"""Export a checkpoint as an ONNX model, checked with onnxruntime against the JAX forward.

    lsm-export --checkpoint DIR --size 256x256 -o model.onnx            # 256x256 images only
    lsm-export --checkpoint DIR --max-size 512x512 -o model.onnx        # any image up to 512x512

The work is done by `lsm_jax.inference.onnx_export` (trace, check, atomic write) and
`lsm_jax.inference.onnx_lowering` (jaxpr to ONNX).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Sequence

PROG = "lsm-export"

_SIZE_HELP = (
    "A file serves one input shape: the window attention pads the map to its window multiple, rolls "
    "the shifted windows and reshapes the tokens with sizes computed from H and W when the graph is "
    "built, so ONNX dimensions cannot stay symbolic. --size HxW exports exactly that shape; "
    "--max-size HxW exports a file for every image up to HxW, which takes the image zero-padded at "
    "the top left together with its height and width (the same pixels as an exact export, at the "
    "cost of the full HxW).")


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2) or m.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"expected HxW (e.g. 256x256) or one side N, got {text!r}")
    return int(m.group(1)), int(m.group(2) or m.group(1))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Export an LSM checkpoint to ONNX (batch 1, float32), verified with "
        "onnxruntime against the JAX forward on a Set5 crop.", epilog=_SIZE_HELP)
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint directory (config.json, params/)")
    p.add_argument("-o", "--output", required=True, type=Path, help="the .onnx file to write (replaced if present)")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="output format (onnx)")
    shape = p.add_mutually_exclusive_group(required=True)
    shape.add_argument("--size", type=_size, metavar="HxW", help="the input's LR height x width (see below)")
    shape.add_argument("--max-size", type=_size, metavar="HxW",
                       help="the largest LR image the file takes, zero-padded to HxW, with inputs 'height' "
                            "and 'width' (see below)")
    p.add_argument("--semantics", choices=("reference", "paper"), default=None,
                   help="reference: what the authors' checkpoints compute; paper: the recurrence over each "
                        "image's sorted tokens (default: the checkpoint's own)")
    p.add_argument("--layout", choices=("nhwc", "nchw"), default="nhwc",
                   help="the input and output layout: nhwc (1, H, W, C) as lsm-jax, or nchw (1, C, H, W) as "
                        "PyTorch (default nhwc)")
    p.add_argument("--opset", type=int, default=None, metavar="N", help="ONNX opset (default 18, at least 18)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the check (onnxruntime against JAX on a Set5 crop, max |diff| <= --tolerance)")
    p.add_argument("--tolerance", type=float, default=None, metavar="T",
                   help="the check's largest allowed max |ONNX - JAX| in float32 (default 1e-4)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also print the JAX primitives lowered and the ONNX operators used")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    return p


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _summary(r: dict) -> list[str]:
    shape = lambda s: 'x'.join(map(str, s))  # noqa: E731
    extra = " + height, width (int32)" if r['padded'] else ""
    lines = [f"wrote {r['path']}: {_mb(r['bytes'])}, {r['nodes']:,} nodes, opset {r['opset']}, "
             f"{r['arch']} x{r['scale']} ({r['semantics']} semantics), input lr {shape(r['input_shape'])}"
             f" {r['layout'].upper()}{extra} -> sr {shape(r['output_shape'])}, exported in {r['export_seconds']:.1f} s"]
    v = r['verified']
    if v is None:
        lines.append("not verified (--no-verify)")
    else:
        q = (f"8-bit images identical ({v['samples']:,} samples)" if not v['levels_differing'] else
             f"8-bit images: {v['levels_differing']:,} of {v['samples']:,} samples one level apart "
             f"(float values astride a rounding boundary)")
        lines.append(f"verified with onnxruntime {v['onnxruntime']} on {v['image']}"
                     + ''.join(f" and its top-left {h}x{w} padded to it" for h, w in v['runs'][1:])
                     + f": max |ONNX - JAX| = {v['max_abs_diff']:.2g}; {q}; checked in {r['verify_seconds']:.1f} s")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        import onnx  # noqa: F401
    except ImportError:
        print(f"{PROG}: error: the onnx package is missing: pip install 'lsm-jax[export]'", file=sys.stderr)
        return 2
    from lsm_jax.inference.onnx_export import TOLERANCE, export_onnx
    from lsm_jax.inference.onnx_graph import OPSET, ExportError
    from lsm_jax.model.saved import CheckpointError
    opset = OPSET if args.opset is None else args.opset
    if opset < OPSET:
        print(f"{PROG}: error: --opset {opset}: the graph needs opset {OPSET} or later", file=sys.stderr)
        return 2
    report = None if args.quiet else (lambda msg: print(f"{PROG}: {msg}", file=sys.stderr))
    try:
        result = export_onnx(args.checkpoint, args.output, args.max_size or args.size, padded=args.max_size is not None,
                             semantics=args.semantics, layout=args.layout, opset=opset, check=not args.no_verify,
                             tolerance=TOLERANCE if args.tolerance is None else args.tolerance, report=report)
    except (ExportError, CheckpointError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    if args.verbose and not args.quiet:
        print(f"JAX primitives ({len(result['primitives'])}): {', '.join(result['primitives'])}")
        ops = sorted(result['op_types'].items(), key=lambda kv: (-kv[1], kv[0]))
        print(f"ONNX operators ({len(ops)}): {', '.join(f'{k} {v}' for k, v in ops)}; "
              f"{result['folded']:,} equations folded into constants")
    if not args.quiet:
        print('\n'.join(_summary(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
