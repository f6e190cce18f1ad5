"""Converter: round trip, and one clear error listing every problem for bad inputs."""

import numpy as np
import pytest
import yaml
from flax import nnx

from fixture_checkpoint import fixture_arrays, write_reference_files
from lsm_jax.porting import checkpoint as convert_mod
from lsm_jax.porting.checkpoint import ConversionError, convert, load_state_dict
from lsm_jax.convert import main
from lsm_jax.model.saved import load_model


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


def test_missing_and_unexpected_keys_are_all_listed(reference_files, tmp_path):
    _, options = reference_files
    state = _state()
    del state['layers.0.blocks.1.lru.lru_core.D']
    del state['conv_last.bias']
    state['layers.0.blocks.1.lru.extra'] = np.zeros(3, np.float32)
    np.savez(tmp_path / 'w.npz', **state)
    with pytest.raises(ConversionError) as err:
        convert(tmp_path / 'w.npz', options, tmp_path / 'out')
    message = str(err.value)
    assert "3 problem(s)" in message
    assert "'layers.0.blocks.1.lru.extra'" in message
    assert "layers.0.blocks.1.lru.lru_core.D" in message and "conv_last.bias" in message
    assert not (tmp_path / 'out' / 'params').exists()


def test_wrong_shape_names_the_key(reference_files, tmp_path):
    _, options = reference_files
    state = _state()
    state['layers.1.blocks.2.attn.proj.weight'] = np.zeros((64, 32), np.float32)
    np.savez(tmp_path / 'w.npz', **state)
    with pytest.raises(ConversionError, match=r"wrong shape for 'layers\.1\.blocks\.2\.attn\.proj\.weight'"):
        convert(tmp_path / 'w.npz', options, tmp_path / 'out')


def test_buffers_are_recognised_and_dropped():
    assert convert_mod.BUFFER_PATTERN.search('layers.0.blocks.2.attn.attn_mask_1')
    assert convert_mod.BUFFER_PATTERN.search('layers.0.blocks.0.attn.attns.1.relative_position_index')
    assert not convert_mod.BUFFER_PATTERN.search('layers.0.blocks.0.attn.qkv.weight')


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
    assert main(['--weights', str(tmp_path / 'absent.npz'), '--network-options', str(options),
                 '--out', str(tmp_path / 'out')]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and 'absent.npz' in err and '\n' not in err


def test_cli_refuses_to_overwrite(reference_files, tmp_path, capsys):
    weights, options = reference_files
    args = ['--weights', str(weights), '--network-options', str(options), '--out', str(tmp_path / 'ck')]
    assert main(args) == 0
    assert main(args) == 2
    assert 'already holds a checkpoint' in capsys.readouterr().err
    assert main(args + ['--overwrite']) == 0
