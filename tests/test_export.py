"""lsm-export: the ONNX file of the golden tiny network, run by onnxruntime, against the authors' output
(the fixture's io/) and against JAX (the command's own check on a Set5 crop); the padded file for
many sizes; paper semantics and complex pairs; one-line errors; nothing written when the check fails."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from fixture_checkpoint import fixture_arrays, tiny_checkpoint  # noqa: E402
from lsm_jax.data.quantize import quantize  # noqa: E402
from lsm_jax.export import main  # noqa: E402
from lsm_jax.inference import onnx_ops  # noqa: E402
from lsm_jax.inference.onnx_export import export_onnx  # noqa: E402
from lsm_jax.inference.onnx_graph import ExportError  # noqa: E402
from lsm_jax.inference.onnx_lowering import jaxpr_to_onnx  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


def _run(path, *inputs):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, dict(zip([i.name for i in session.get_inputs()], inputs)))[0]


def _assert_8bit_close(got, want):
    """The 8-bit images agree except where the two float values lie astride a rounding boundary (a
    difference of ~1e-6 moves a few samples so; XLA's own optimisation levels do as much)."""
    q1, q2 = quantize(got).astype(int), quantize(want).astype(int)
    apart = q1 != q2
    assert np.abs(q1 - q2).max(initial=0) <= 1
    assert apart.sum() <= max(2, apart.size // 1000), apart.sum()
    return int(apart.sum())


def test_export_reproduces_the_authors_output(ckpt, tmp_path, capsys):
    out = tmp_path / "tiny.onnx"
    assert main(["--checkpoint", str(ckpt), "--size", "19x27", "--layout", "nchw", "-o", str(out)]) == 0
    report = capsys.readouterr().out
    diff = float(re.search(r"max \|ONNX - JAX\| = (\S+);", report).group(1))
    assert diff <= TOL, report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx"]   # no temporary file left
    model = onnx.load(out)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["lsm_jax.input_shape"] == "1x3x19x27" and meta["lsm_jax.semantics"] == "reference"
    arrays = fixture_arrays()
    y = _run(out, arrays["io/input"].astype(np.float32))
    assert y.shape == (1, 3, 38, 54)
    assert np.abs(y - arrays["io/output"]).max() <= TOL
    _assert_8bit_close(y, arrays["io/output"])


def test_padded_export_serves_smaller_images(ckpt, tmp_path):
    out = tmp_path / "padded.onnx"
    result = export_onnx(ckpt, out, (24, 32), padded=True, layout="nchw")
    assert result["verified"]["max_abs_diff"] <= TOL and result["input_names"] == ["lr", "height", "width"]
    arrays = fixture_arrays()
    x = np.zeros((1, 3, 24, 32), np.float32)
    x[..., :19, :27] = arrays["io/input"]
    y = _run(out, x, np.asarray(19, np.int32), np.asarray(27, np.int32))[..., :38, :54]
    assert np.abs(y - arrays["io/output"]).max() <= TOL
    _assert_8bit_close(y, arrays["io/output"])


def test_paper_semantics_export(ckpt, tmp_path):
    """Token sort and the complex recurrence over the tokens (associative scan on (re, im) pairs)."""
    result = export_onnx(ckpt, tmp_path / "paper.onnx", (8, 16), semantics="paper")
    assert result["semantics"] == "paper" and result["verified"]["max_abs_diff"] <= TOL
    assert any(p.endswith("[c]") for p in result["primitives"])   # complex values were lowered


def test_complex_recurrence_as_pairs():
    from lsm_jax.scan import linear_recurrence
    key = jax.random.split(jax.random.PRNGKey(0), 4)
    ar, ai, xr, xi = (jax.random.uniform(k, (1, 37, 3), minval=-0.7, maxval=0.7) for k in key)

    def fn(ar, ai, xr, xi):
        h = linear_recurrence(jax.lax.complex(ar, ai), jax.lax.complex(xr, xi), axis=1, impl="associative")
        return jnp.real(h), jnp.imag(h) * 2.0

    args = [np.asarray(v) for v in (ar, ai, xr, xi)]
    model, _ = jaxpr_to_onnx(jax.make_jaxpr(fn)(*args), input_names=list("abcd"), output_names=["re", "im"])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, dict(zip("abcd", args)))
    for g, w in zip(got, fn(*args)):
        np.testing.assert_allclose(g, np.asarray(w), atol=1e-5)


def test_unsupported_primitive_is_one_line():
    closed = jax.make_jaxpr(lambda x: jax.lax.cumlogsumexp(x, axis=0) + 1.0)(np.ones(3, np.float32))
    with pytest.raises(ExportError) as err:
        jaxpr_to_onnx(closed, input_names=["x"], output_names=["y"])
    assert "'cumlogsumexp' (float32[3])" in str(err.value) and "\n" not in str(err.value)


def test_cli_errors_leave_no_file(ckpt, tmp_path, capsys, monkeypatch):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"old")
    # A failed check: the previous file stays and no temporary file is left.
    assert main(["--checkpoint", str(ckpt), "--size", "8x8", "--tolerance", "0", "-q", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("lsm-export: error: onnxruntime and JAX disagree") and "\n" not in err
    # A primitive without a rule: one line naming it.
    monkeypatch.delitem(onnx_ops.RULES, "erf")
    assert main(["--checkpoint", str(ckpt), "--size", "8x8", "--no-verify", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("lsm-export: error: no ONNX lowering for JAX primitive(s) 'erf'"), err
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.mark.parametrize("args", [["--size", "0x4"], ["--size", "8x8", "--max-size", "8x8"], []])
def test_cli_needs_one_valid_size(ckpt, tmp_path, args):
    with pytest.raises(SystemExit) as exit_:
        main(["--checkpoint", str(ckpt), "-o", str(tmp_path / "m.onnx"), *args])
    assert exit_.value.code == 2
