"""Converter: the key table read both ways, round trip, and one clear error listing every problem for bad inputs."""

import numpy as np
import pytest
import yaml
from flax import nnx

from fixture_checkpoint import fixture_arrays, official_param_shapes, param_shapes, write_reference_files
from lsm_jax.convert import main
from lsm_jax.model.saved import load_model
from lsm_jax.model.variants import network_config
from lsm_jax.porting import keys
from lsm_jax.porting.checkpoint import ConversionError, convert, load_state_dict

OFFICIAL = [(v, s) for v in ('lsm', 'lsm_s', 'lsm_light') for s in (2, 3, 4)]


@pytest.fixture(scope='module')
def reference_files(tmp_path_factory):
    return write_reference_files(tmp_path_factory.mktemp('ref'))


def _state():
    return {k: v for k, v in fixture_arrays().items() if '/' not in k}


def test_round_trip_keeps_every_tensor(reference_files, tmp_path):
    weights, options = reference_files
    convert(weights, options, tmp_path / 'ckpt')
    model, cfg = load_model(tmp_path / 'ckpt')
    state = _state()
    assert cfg.arch == 'LSM' and cfg.upscale == 2 and cfg.d_state == 4
    np.testing.assert_array_equal(np.asarray(model.layers[0].blocks[1].lru.lru_core.D[...]),
                                  state['layers.0.blocks.1.lru.lru_core.D'])
    np.testing.assert_array_equal(np.asarray(model.layers[1].blocks[0].attn.qkv.kernel[...]),
                                  state['layers.1.blocks.0.attn.qkv.weight'].T)
    np.testing.assert_array_equal(np.asarray(model.upsample[0].kernel[...]),
                                  state['upsample.0.weight'].transpose(2, 3, 1, 0))


def _round_trip(shapes: dict[str, tuple], used: set) -> None:
    """ours -> torch -> ours and torch -> ours -> torch over every parameter path of `shapes`."""
    torch_keys = set()
    for ours, shape in shapes.items():
        pair = keys.from_ours(ours)
        assert pair is not None, f"no row of the key table holds {ours!r}"
        assert keys.from_torch(pair.torch) == pair, ours          # the same key, row, leaf and layout
        assert keys.ours_to_torch(keys.torch_to_ours(pair.torch)) == pair.torch
        assert pair.to_ours(np.empty(pair.torch_shape(shape), np.int8)).shape == shape
        torch_keys.add(pair.torch)
        used.add((pair.row, pair.leaf))
    assert len(torch_keys) == len(shapes)                         # no two paths share a torch key
    assert not any(keys.BUFFERS.search(k) for k in torch_keys)


def _table_leaves() -> set:
    return {(row, leaf) for row, (_, _, layout) in enumerate(keys.KEYS) for leaf, _ in layout.leaves}


def test_key_table_round_trips_every_parameter_of_the_official_variants():
    """Each official variant at each scale, both directions; together they use every row and leaf."""
    used = set()
    for variant, scale in OFFICIAL:
        _round_trip(official_param_shapes(variant, scale), used)
    assert _table_leaves() - used == set(), "rows of the key table that no official variant uses"


def test_key_table_reads_the_authors_keys_and_tensors():
    """The fixture's state_dict (written by the authors' code): every key but the buffers has a row,
    the rows give exactly our tiny x2 tree, and each tensor comes back bit for bit."""
    state = _state()
    shapes = param_shapes(network_config('tiny', 2))
    ours = {}
    for key, value in state.items():
        if keys.BUFFERS.search(key):
            continue
        pair = keys.from_torch(key)
        assert pair is not None and keys.from_ours(pair.ours) == pair, key
        ours[pair.ours] = pair.to_ours(value)
        np.testing.assert_array_equal(pair.to_torch(ours[pair.ours]), value, err_msg=key)
    assert {k: v.shape for k, v in ours.items()} == shapes


@pytest.mark.parametrize('torch_key, ours', [
    ('before_RG.1.weight', 'before_norm.scale'),
    ('layers.1.blocks.2.attn.attns.1.pos.pos3.0.bias', 'layers.1.blocks.2.attn.attns.1.pos.pos3_norm.bias'),
    ('layers.1.blocks.2.attn.attns.0.pos.pos2.2.weight', 'layers.1.blocks.2.attn.attns.0.pos.pos2.kernel'),
    ('layers.0.blocks.1.lru.in_proj.0.weight', 'layers.0.blocks.1.lru.in_proj.kernel'),
    ('layers.0.blocks.1.embedding.weight', 'layers.0.blocks.1.embedding'),
    ('layers.0.blocks.1.mlp.sg.norm.weight', 'layers.0.blocks.1.mlp.sg_norm.scale'),
    ('upsample.2.weight', 'upsample.1.kernel'),
    ('upsample.1.weight', None),                 # a PixelShuffle's index holds no tensor
    ('layers.0.blocks.1.lru.extra', None),
])
def test_key_table_examples(torch_key, ours):
    assert keys.torch_to_ours(torch_key) == ours
    if ours is not None:
        assert keys.ours_to_torch(ours) == torch_key


def test_key_table_layouts():
    conv, linear = keys.from_torch('conv_first.weight'), keys.from_torch('layers.0.blocks.0.attn.qkv.weight')
    w = np.arange(2 * 3 * 5 * 7).reshape(2, 3, 5, 7)                # (O, I, kh, kw)
    assert conv.to_ours(w).shape == (5, 7, 3, 2) and conv.torch_shape((5, 7, 3, 2)) == (2, 3, 5, 7)
    np.testing.assert_array_equal(conv.to_ours(w)[4, 6, 2, 1], w[1, 2, 4, 6])
    np.testing.assert_array_equal(linear.to_ours(w[0, 0]), w[0, 0].T)
    assert keys.from_torch('conv_first.bias').axes is None


def test_missing_and_unexpected_keys_are_all_listed(reference_files, tmp_path):
    _, options = reference_files
    state = _state()
    del state['layers.0.blocks.1.lru.lru_core.D']
    del state['conv_last.bias']
    del state['layers.1.blocks.3.lru.in_proj.0.weight']
    state['layers.0.blocks.1.lru.extra'] = np.zeros(3, np.float32)
    np.savez(tmp_path / 'w.npz', **state)
    with pytest.raises(ConversionError) as err:
        convert(tmp_path / 'w.npz', options, tmp_path / 'out')
    message = str(err.value)
    assert "4 problem(s)" in message
    assert "missing key 'layers.1.blocks.3.lru.in_proj.0.weight'" in message   # named as the authors name it
    assert "'layers.0.blocks.1.lru.extra'" in message
    assert "layers.0.blocks.1.lru.lru_core.D" in message and "conv_last.bias" in message
    assert not (tmp_path / 'out' / 'params').exists()


def test_wrong_shape_names_the_key(reference_files, tmp_path):
    _, options = reference_files
    state = _state()
    state['layers.1.blocks.2.attn.proj.weight'] = np.zeros((64, 32), np.float32)
    np.savez(tmp_path / 'w.npz', **state)
    with pytest.raises(ConversionError, match=r"1 problem\(s\): wrong shape for 'layers\.1\.blocks\.2\.attn\.proj"
                                              r"\.weight': \(64, 32\) \(expected \(64, 64\)\)$"):
        convert(tmp_path / 'w.npz', options, tmp_path / 'out')


def test_buffers_are_recognised_and_dropped():
    assert keys.BUFFERS.search('layers.0.blocks.2.attn.attn_mask_1')
    assert keys.BUFFERS.search('layers.0.blocks.0.attn.attns.1.relative_position_index')
    assert not keys.BUFFERS.search('layers.0.blocks.0.attn.qkv.weight')


@pytest.mark.parametrize('content, match', [(b'not a zip archive', 'cannot read weights'),
                                             (None, 'not a state_dict')])
def test_file_that_is_not_a_state_dict(tmp_path, content, match):
    path = tmp_path / 'w.npz'
    if content is None:
        np.savez(path)  # an archive with no tensors
    else:
        path.write_bytes(content)
    with pytest.raises(ConversionError, match=match):
        load_state_dict(path)


def test_unsupported_suffix_and_missing_file(tmp_path):
    (tmp_path / 'w.bin').write_bytes(b'x')
    with pytest.raises(ConversionError, match='unsupported weights format'):
        load_state_dict(tmp_path / 'w.bin')
    with pytest.raises(ConversionError, match='no such weights file'):
        load_state_dict(tmp_path / 'absent.npz')


def test_options_errors(reference_files, tmp_path):
    weights, options = reference_files
    opts = yaml.safe_load(options.read_text())
    opts['network_g']['type'] = 'SwinIR'
    bad = tmp_path / 'bad.yml'
    bad.write_text(yaml.safe_dump(opts))
    with pytest.raises(ConversionError, match="network_g.type is 'SwinIR'"):
        convert(weights, bad, tmp_path / 'out')
    opts['network_g'].update(type='LSM', windw_size=8)
    bad.write_text(yaml.safe_dump(opts))
    with pytest.raises(ConversionError, match=r"unknown network_g options \['windw_size'\]"):
        convert(weights, bad, tmp_path / 'out')


def test_safetensors_converts_like_npz(reference_files, tmp_path):
    """The fixture's weights as a DataParallel-prefixed .safetensors give the .npz conversion, tensor for tensor."""
    from safetensors.numpy import save_file
    weights, options = reference_files
    save_file({f'module.{k}': np.ascontiguousarray(v) for k, v in _state().items()}, tmp_path / 'w.safetensors')
    state = load_state_dict(tmp_path / 'w.safetensors')
    assert 'conv_first.weight' in state and not any(k.startswith('module.') for k in state)
    convert(tmp_path / 'w.safetensors', options, tmp_path / 'from_safetensors')
    convert(weights, options, tmp_path / 'from_npz')
    ours = nnx.to_flat_state(nnx.state(load_model(tmp_path / 'from_safetensors')[0], nnx.Param))
    theirs = dict(nnx.to_flat_state(nnx.state(load_model(tmp_path / 'from_npz')[0], nnx.Param)))
    assert len(ours) == len(theirs) > 100
    for path, value in ours:
        np.testing.assert_array_equal(np.asarray(value[...]), np.asarray(theirs[path][...]), err_msg=str(path))


def test_pth_with_params_ema(reference_files, tmp_path):
    torch = pytest.importorskip('torch')
    _, options = reference_files
    state = {f'module.{k}': torch.from_numpy(v) for k, v in _state().items()}
    torch.save({'params': {k: v * 0 for k, v in state.items()}, 'params_ema': state}, tmp_path / 'net.pth')
    convert(tmp_path / 'net.pth', options, tmp_path / 'ckpt')
    model, _ = load_model(tmp_path / 'ckpt')
    assert np.abs(np.asarray(model.conv_first.kernel[...])).sum() > 0   # params_ema, not the zeroed params


def test_cli_reports_one_line_and_exit_code(reference_files, tmp_path, capsys):
    _, options = reference_files
    assert main(['-i', str(tmp_path / 'absent.npz'), '--network-options', str(options),
                 '-o', str(tmp_path / 'out')]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('lsm-convert: error: ') and 'absent.npz' in err and '\n' not in err


def test_cli_refuses_to_overwrite(reference_files, tmp_path, capsys):
    weights, options = reference_files
    args = ['-i', str(weights), '--network-options', str(options), '-o', str(tmp_path / 'ck')]
    assert main(args) == 0
    assert main(args) == 2
    assert 'already holds a checkpoint' in capsys.readouterr().err
    assert main(args + ['--overwrite']) == 0
