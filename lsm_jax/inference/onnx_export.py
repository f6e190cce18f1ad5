"""ONNX export of an inference checkpoint, checked with onnxruntime before it is put in place.

    from lsm_jax.inference.onnx_export import export_onnx
    result = export_onnx('ckpt/', 'model.onnx', (48, 48))           # what `lsm-export` runs

The jitted forward (`lsm_jax.inference.forward.make_forward`) is traced at one batch-1 input shape
with the parameters closed over, and the jaxpr is lowered node by node
(`lsm_jax.inference.onnx_lowering`). One file serves one input shape: window padding, the shifted
windows' rolls and masks and the token reshapes are computed from H and W at trace time. With
`padded=True` the file serves every image up to that shape instead: the image goes in zero-padded at
the top left with its true height and width as two more inputs (`lsm_jax.model.extent`, the
mechanism of the inference buckets), and the top-left (s·h, s·w) of the output is its result.

The check runs the written file with onnxruntime and the JAX forward (full float32 matmul
precision) on the same crop of a bundled Set5 low-resolution image, and compares them in float32 and
after `lsm_jax.data.quantize.quantize`. The file is written under a temporary name in the target
folder and renamed only after the check passes.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from lsm_jax.data.quantize import quantize
from lsm_jax.inference.forward import make_forward
from lsm_jax.inference.onnx_graph import OPSET, ExportError
from lsm_jax.model.extent import Extent
from lsm_jax.model.saved import load_model

TOLERANCE = 1e-4
LAYOUTS = ('nhwc', 'nchw')
SAMPLE_IMAGE = 'baby'   # Set5/LR_bicubic/X{s}/babyx{s}.png, the largest of the set


class VerificationError(ExportError):
    """The exported graph and the JAX forward disagree beyond the tolerance."""


def _trace(forward, params, shape, *, padded: bool, layout: str):
    """The closed jaxpr of the batch-1 forward at `shape` (1, H, W, C), in the file's layout."""
    def fn(x, *hw):
        if layout == 'nchw':
            x = jnp.transpose(x, (0, 2, 3, 1))
        y = forward(params, x, Extent(*hw) if padded else None)
        return jnp.transpose(y, (0, 3, 1, 2)) if layout == 'nchw' else y

    n, h, w, c = shape
    x = jax.ShapeDtypeStruct((n, c, h, w) if layout == 'nchw' else shape, jnp.float32)
    extent = (jax.ShapeDtypeStruct((), jnp.int32),) * 2 if padded else ()
    return jax.make_jaxpr(fn)(x, *extent), fn


def sample_image(scale: int, size: tuple[int, int], channels: int) -> tuple[np.ndarray, str]:
    """A (H, W, channels) float32 crop of the bundled Set5 LR image at `scale`, from its centre,
    mirrored at the borders when `size` exceeds it; gray models get its luma. And its description."""
    from lsm_jax.data.image_io import read_rgb8
    from lsm_jax.evaluation.benchmarks import bundled_set5
    name = f"{SAMPLE_IMAGE}x{scale}.png"
    rgb = read_rgb8(bundled_set5() / 'LR_bicubic' / f"X{scale}" / name).astype(np.float32) / 255.0
    h, w = size
    ph, pw = max(0, h - rgb.shape[0]), max(0, w - rgb.shape[1])
    rgb = np.pad(rgb, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), mode='symmetric')
    top, left = (rgb.shape[0] - h) // 2, (rgb.shape[1] - w) // 2
    crop = rgb[top:top + h, left:left + w]
    if channels == 1:
        crop = crop @ np.asarray([[0.299], [0.587], [0.114]], np.float32)
    return np.ascontiguousarray(crop, np.float32), f"a {h}x{w} crop of Set5 {name}"


def compare(onnx_out: np.ndarray, jax_out: np.ndarray) -> dict:
    """Max abs difference, and the 8-bit images (`quantize`): samples that differ and by how much."""
    diff = float(np.max(np.abs(onnx_out.astype(np.float64) - jax_out))) if onnx_out.size else 0.0
    q1, q2 = quantize(onnx_out).astype(np.int16), quantize(jax_out).astype(np.int16)
    return dict(max_abs_diff=diff, levels_differing=int(np.count_nonzero(q1 != q2)),
                max_level_step=int(np.max(np.abs(q1 - q2))) if q1.size else 0, samples=int(q1.size))


def verify(path: Path, forward, scale: int, size: tuple[int, int], channels: int, *, padded: bool,
           layout: str, tolerance: float = TOLERANCE) -> dict:
    """Run the file at `path` with onnxruntime and `forward` (the traced function) with JAX on a
    Set5 crop; at the full size, and for a padded file also with a smaller image inside it.
    Raises VerificationError past `tolerance`; returns the figures of the worst run."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("verifying the export needs onnxruntime (pip install onnxruntime), "
                          "or pass --no-verify") from None
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    image, what = sample_image(scale, size, channels)
    h, w = size
    runs = [(h, w)] + ([(max(1, math.ceil(h * 0.6)), max(1, math.ceil(w * 0.8)))] if padded else [])
    jitted = jax.jit(forward)
    worst = None
    for rh, rw in runs:
        x = np.zeros((1, h, w, channels), np.float32)
        x[0, :rh, :rw] = image[:rh, :rw]
        x = x.transpose(0, 3, 1, 2) if layout == 'nchw' else x
        extent = (np.asarray(rh, np.int32), np.asarray(rw, np.int32)) if padded else ()
        feeds = dict(zip([i.name for i in session.get_inputs()], (x, *extent)))
        got = session.run(None, feeds)[0]
        with jax.default_matmul_precision('highest'):
            want = np.asarray(jitted(jnp.asarray(x), *extent))
        if layout == 'nchw':
            got, want = got.transpose(0, 2, 3, 1), want.transpose(0, 2, 3, 1)
        region = (slice(None), slice(0, rh * scale), slice(0, rw * scale))
        figures = compare(got[region], want[region]) | dict(image=what, size=(rh, rw),
                                                            onnxruntime=ort.__version__)
        if worst is None or figures['max_abs_diff'] > worst['max_abs_diff']:
            worst = figures
        if not figures['max_abs_diff'] <= tolerance:
            raise VerificationError(
                f"onnxruntime and JAX disagree on {what} at {rh}x{rw}: max |ONNX - JAX| = "
                f"{figures['max_abs_diff']:.3g} > {tolerance:g}")
    return worst | dict(runs=runs)


def _usage(cfg, shape_in, shape_out, *, semantics: str, padded: bool, layout: str) -> str:
    kind = "RGB" if cfg.in_chans == 3 else "gray"
    text = (f"LSM {cfg.arch} x{cfg.upscale} super-resolution ({semantics} semantics), exported by lsm-jax. "
            f"Input 'lr': float32 {list(shape_in)} {layout.upper()} {kind} in [0, 1]. Output 'sr': float32 "
            f"{list(shape_out)}, not clamped: clip to [0, 1], then round(x * 255) for 8 bits. ")
    if padded:
        text += ("Inputs 'height', 'width' (int32 scalars, 1 <= height <= H, 1 <= width <= W): the real "
                 "image is lr's top-left height x width, the rest zeros; the result is sr's top-left "
                 f"{cfg.upscale}*height x {cfg.upscale}*width.")
    return text


def export_onnx(checkpoint, output, size: tuple[int, int], *, padded: bool = False,
                semantics: str | None = None, layout: str = 'nhwc', opset: int = OPSET,
                check: bool = True, tolerance: float = TOLERANCE, report=None) -> dict:
    """Export `checkpoint` to the ONNX file `output` for batch-1 images of `size` (H, W) (with
    `padded`: up to that size), check it (unless `check` is False) and rename it into place.
    `semantics`: 'reference' or 'paper' (default: the checkpoint's). Returns a dict of figures:
    path, bytes, nodes, op_types, primitives, folded, input/output shapes, seconds, and `verified`
    (from `verify`, or None)."""
    from lsm_jax.inference.onnx_lowering import jaxpr_to_onnx
    if layout not in LAYOUTS:
        raise ExportError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    h, w = size
    if h < 1 or w < 1:
        raise ExportError(f"size must be at least 1x1, got {h}x{w}")
    say = report or (lambda _msg: None)
    start = time.perf_counter()
    # float32, and the associative scan: a flat graph (the paper semantics' recurrence over tokens
    # becomes log2(L) levels of pair arithmetic; at batch 1 the reference's recurrence is empty, Q1).
    overrides = dict(dtype='float32', scan=dict(impl='associative'))
    if semantics is not None:
        overrides['semantics'] = semantics
    model, cfg = load_model(checkpoint, **overrides)
    semantics = cfg.semantics
    forward, params = make_forward(model)
    channels, scale = int(cfg.in_chans), int(cfg.upscale)
    shape = (1, h, w, channels)
    say(f"tracing {cfg.arch} x{scale} ({semantics} semantics) at {h}x{w}" + (" (padded)" if padded else ""))
    closed, fn = _trace(forward, params, shape, padded=padded, layout=layout)
    out_shape = tuple(closed.jaxpr.outvars[0].aval.shape)
    in_shape = tuple(closed.jaxpr.invars[0].aval.shape)
    names = ['lr'] + (['height', 'width'] if padded else [])
    metadata = {'lsm_jax.arch': cfg.arch, 'lsm_jax.scale': scale, 'lsm_jax.semantics': semantics,
                'lsm_jax.channels': channels, 'lsm_jax.layout': layout.upper(),
                'lsm_jax.input_shape': 'x'.join(map(str, in_shape)), 'lsm_jax.padded': str(padded).lower(),
                'lsm_jax.checkpoint': Path(checkpoint).name}
    proto, info = jaxpr_to_onnx(closed, input_names=names, output_names=['sr'], name='lsm', opset=opset,
                                doc=_usage(cfg, in_shape, out_shape, semantics=semantics, padded=padded,
                                           layout=layout), metadata=metadata)
    import onnx
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    exported = time.perf_counter()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix='.tmp', dir=output.parent)
    verified = None
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes it private; a written file gets the usual mode
        if check:
            say("checking it with onnxruntime against JAX")
            verified = verify(Path(tmp), fn, scale, (h, w), channels, padded=padded, layout=layout,
                              tolerance=tolerance)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    done = time.perf_counter()
    return dict(path=output, bytes=len(data), nodes=info['nodes'], op_types=info['op_types'],
                primitives=info['primitives'], folded=info['folded'], input_shape=in_shape,
                output_shape=out_shape, input_names=names, semantics=semantics, arch=cfg.arch, scale=scale,
                opset=opset, padded=padded, layout=layout, export_seconds=exported - start,
                verify_seconds=done - exported, verified=verified)
