"""convert without an options file: the architecture read back from state_dict keys and shapes."""

import jax
import numpy as np
import pytest
import yaml

from fixture_checkpoint import official_param_shapes, param_shapes, write_reference_files
from lsm_jax.convert import main
from lsm_jax.porting.architecture import (ArchitectureError, SHAPE_FIELDS, describe_mismatch,
                                          infer_network_config, official_match)
from lsm_jax.porting.checkpoint import ConversionError, convert, convert_state_dict
from lsm_jax.porting.keys import from_ours
from lsm_jax.model.variants import network_config
from lsm_jax.model.window_attention import relative_offsets, relative_position_index

VARIANTS = [(v, s) for v in ('lsm', 'lsm_s', 'lsm_light') for s in (2, 3, 4)]


def abstract_state_dict(cfg, shapes_only_buffers: bool = False, shapes: dict | None = None) -> dict:
    """A reference state_dict of `cfg` built from abstract shapes: zero-stride arrays for the weights,
    and the position buffers every released checkpoint stores (real values, they are tiny)."""
    zero = np.zeros((), np.float32)
    sd = {}
    for name, shape in (shapes or param_shapes(cfg)).items():
        pair = from_ours(name)
        sd[pair.torch] = np.broadcast_to(zero, pair.torch_shape(shape))
    s0, s1 = cfg.split_size
    for g, depth in enumerate(cfg.depth):
        for j in range(0, depth, 2):
            for b, (hs, ws) in enumerate(((s0, s1), (s1, s0))):
                prefix = f'layers.{g}.blocks.{j}.attn.attns.{b}.'
                rpe, idx = relative_offsets(hs, ws), relative_position_index(hs, ws)
                if shapes_only_buffers:
                    rpe, idx = jax.ShapeDtypeStruct(rpe.shape, rpe.dtype), jax.ShapeDtypeStruct(idx.shape, idx.dtype)
                sd[prefix + 'rpe_biases'], sd[prefix + 'relative_position_index'] = rpe, idx
    return sd


@pytest.mark.parametrize('variant,scale', VARIANTS)
def test_official_variants_are_recognised(variant, scale):
    cfg = network_config(variant, scale)
    sd = abstract_state_dict(cfg, shapes=official_param_shapes(variant, scale))
    inferred, notes = infer_network_config(sd)
    assert describe_mismatch(cfg, inferred) == []
    assert [inferred[f] for f in SHAPE_FIELDS] == [cfg[f] for f in SHAPE_FIELDS]   # incl. official heads
    assert official_match(inferred) == variant
    if variant == 'lsm_light' and scale == 4:
        # The key table read backwards feeds the converter: every key is consumed, every shape fits.
        tree = convert_state_dict(sd, inferred)
        assert tree['upsample'][0]['kernel'].shape == (3, 3, 60, 48)


def test_fixture_and_disagreeing_options_name_the_fields(tmp_path, capsys):
    weights, options = write_reference_files(tmp_path / 'src')
    assert main(['-i', str(weights), '-o', str(tmp_path / 'ck')]) == 0
    out = capsys.readouterr().out
    assert 'inferred from' in out and 'LSM x2' in out and 'split_size [4, 8]' in out and 'num_heads' in out
    # The authors' wrong option files: LSM (8 groups, embed 180) pointed at other weights.
    wrong = yaml.safe_load(options.read_text())
    wrong['network_g'].update(depth=[5] * 8, num_heads=[5] * 8, embed_dim=180)
    (tmp_path / 'wrong.yml').write_text(yaml.safe_dump(wrong))
    with pytest.raises(ConversionError) as err:
        convert(weights, tmp_path / 'wrong.yml', tmp_path / 'ck2')
    msg = str(err.value)
    assert 'embed_dim: options 180, weights 64' in msg and 'depth: options [5, 5, 5, 5, 5, 5, 5, 5], weights [4, 4]' in msg
    assert 'split_size' not in msg and 'num_heads: options' in msg


def test_two_fits_are_both_named():
    cfg = network_config('tiny', 2)        # split [4, 8]: shapes alone cannot order the pair
    with pytest.raises(ArchitectureError, match=r"split_size \[4, 8\] or \[8, 4\]"):
        infer_network_config(abstract_state_dict(cfg, shapes_only_buffers=True))
    sd = abstract_state_dict(network_config('lsm', 2), shapes=official_param_shapes('lsm', 2))
    sd['upsample.0.weight'] = np.zeros((12, 180, 3, 3), np.float32)   # a light tail grafted on
    with pytest.raises(ArchitectureError, match="two architectures fit: LSM .* and LSM_light"):
        infer_network_config(sd)
