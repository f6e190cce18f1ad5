"""Read the authors' PyTorch checkpoints and write lsm-jax inference checkpoints (the command is
`lsm_jax.convert`).

    lsm-convert -i net_g.pth [--network-options test_LSM_light_x4.yml] -o DIR

The weights are a BasicSR checkpoint (`{'params': ..., 'params_ema': ...}`, `params_ema` by default,
any `module.` prefix stripped) or an `.npz`/`.safetensors` of the same state_dict keys. A `.pth` is read
with PyTorch when it is installed, else by `lsm_jax.porting.pth` (tensors and dicts only). The options
file is a BasicSR YAML whose `network_g` section gives the architecture; without one, the architecture
is read from the state_dict's keys and shapes (`lsm_jax.porting.architecture`) and printed. When
both are given and disagree, the error names the fields. Every key must be consumed (its name and
layout on our side are the table `lsm_jax.porting.keys`) or be a known recomputable buffer; otherwise
one error lists every problem. Converted checkpoints use `reference` semantics, which is what the
weights were trained with.
"""

from __future__ import annotations

import math
from pathlib import Path

import ml_collections
import numpy as np
import yaml
from flax import nnx

from lsm_jax.porting.architecture import (ArchitectureError, describe_mismatch, infer_network_config,
                                          official_match)
from lsm_jax.porting.keys import BUFFERS, from_torch, ours_to_torch
from lsm_jax.model.saved import save_model
from lsm_jax.model.network import IN_CHANS, LSM
from lsm_jax.model.variants import network_config

# Constructor keyword arguments of the reference classes, with their defaults (spec §8, §10 Q7).
_REFERENCE_DEFAULTS = dict(img_size=64, in_chans=3, embed_dim=180, depth=[10, 10, 10, 10],
                           num_heads=[4, 4, 4, 4], mlp_ratio=4.0, drop_path_rate=0.1, upscale=2,
                           img_range=1.0, resi_connection='1conv', split_size=[8, 8], rmin=0.9,
                           rmax=0.99, max_phase=2 * math.pi, num_tokens=128)
# Accepted but without effect on inference (dropouts are 0 in every release; img_size is dead, Q9).
_IGNORED = {'img_size', 'qkv_bias', 'qk_scale', 'drop_rate', 'attn_drop_rate', 'use_chk',
            'act_layer', 'norm_layer', 'resi_connection', 'type'}


class ConversionError(ValueError):
    """A checkpoint or options file that cannot be converted; the message lists every problem."""


def network_config_from_options(options: dict, source: str = 'options') -> ml_collections.ConfigDict:
    """A network config from a BasicSR options dict (its `network_g` section, or the section itself)."""
    net = options.get('network_g', options) if isinstance(options, dict) else None
    if not isinstance(net, dict) or 'type' not in net:
        raise ConversionError(f"{source}: no network_g section with a 'type'")
    arch = net['type']
    if arch not in ('LSM', 'LSM_light'):
        raise ConversionError(f"{source}: network_g.type is {arch!r}; expected 'LSM' or 'LSM_light'")
    known = set(_REFERENCE_DEFAULTS) | _IGNORED | {'d_state'}
    unknown = sorted(set(net) - known)
    if unknown:
        raise ConversionError(f"{source}: unknown network_g options {unknown}")
    if net.get('resi_connection', '1conv') != '1conv':
        raise ConversionError(f"{source}: resi_connection {net['resi_connection']!r} is not supported ('1conv')")
    kw = {**_REFERENCE_DEFAULTS, 'd_state': 16 if arch == 'LSM_light' else 32, **net}
    if kw['in_chans'] not in IN_CHANS:
        raise ConversionError(f"{source}: network_g.in_chans is {kw['in_chans']!r}; expected 1 (gray) or 3 (RGB)")
    cfg = network_config('lsm', int(kw['upscale']))
    cfg.arch = arch
    for key in ('in_chans', 'embed_dim', 'mlp_ratio', 'drop_path_rate', 'img_range', 'rmin', 'rmax',
                'max_phase', 'num_tokens', 'd_state'):
        cfg[key] = type(cfg[key])(kw[key])
    cfg.depth, cfg.num_heads = [int(d) for d in kw['depth']], [int(h) for h in kw['num_heads']]
    cfg.split_size = [int(s) for s in kw['split_size']]
    cfg.semantics = 'reference'
    return cfg


def read_options(path: str | Path) -> ml_collections.ConfigDict:
    """Parse a BasicSR options YAML into a network config."""
    try:
        options = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConversionError(f"{path}: cannot read options file: {err}") from err
    return network_config_from_options(options, str(path))


def load_state_dict(path: str | Path, key: str | None = None) -> dict[str, np.ndarray]:
    """The state_dict of a `.pth`, `.npz` or `.safetensors` file as float/int numpy arrays."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: no such weights file")
    suffix = path.suffix.lower()
    try:
        if suffix in ('.pth', '.pt', '.ckpt'):
            from lsm_jax.porting.pth import PthError, read_pth, torch_available
            if torch_available():
                import torch
                # weights_only: no pickled code runs while loading an untrusted file.
                raw = torch.load(path, map_location='cpu', weights_only=True)
            else:   # tensors and dicts only, without PyTorch (torch.save zip archives)
                try:
                    raw = read_pth(path)
                except PthError as err:
                    raise ConversionError(str(err)) from None
        elif suffix == '.npz':
            with np.load(path, allow_pickle=False) as data:
                raw = {k: data[k] for k in data.files}
        elif suffix == '.safetensors':
            from safetensors.numpy import load_file
            raw = load_file(str(path))
        else:
            raise ConversionError(f"{path}: unsupported weights format {suffix!r} (.pth, .npz, .safetensors)")
    except ConversionError:
        raise
    except Exception as err:  # noqa: BLE001 - any decoder failure is reported with the file name
        raise ConversionError(f"{path}: cannot read weights: {err}") from err
    return select_state_dict(raw, key, str(path))


def select_state_dict(obj, key: str | None = None, source: str = 'weights') -> dict[str, np.ndarray]:
    """The state_dict in a loaded weights object: a BasicSR checkpoint's `key` entry (default `params_ema`,
    else `params`) or a bare state_dict, as numpy arrays, `module.` prefixes stripped."""
    if not isinstance(obj, dict):
        raise ConversionError(f"{source}: not a state_dict (got {type(obj).__name__})")
    if 'params' in obj or 'params_ema' in obj:
        chosen = key or ('params_ema' if 'params_ema' in obj else 'params')
        if chosen not in obj:
            raise ConversionError(f"{source}: no {chosen!r} entry (has {sorted(obj)})")
        obj = obj[chosen]
    elif key not in (None, 'params_ema', 'params'):
        raise ConversionError(f"{source}: a bare state_dict has no {key!r} entry")
    if not isinstance(obj, dict) or not obj:
        raise ConversionError(f"{source}: not a state_dict (no tensor entries)")
    out = {}
    for name, value in obj.items():
        value = value.detach().cpu().numpy() if hasattr(value, 'detach') else value
        if not isinstance(value, np.ndarray):
            raise ConversionError(f"{source}: not a state_dict (entry {name!r} is a {type(value).__name__})")
        out[str(name).removeprefix('module.')] = value
    return out


def convert_state_dict(state_dict: dict[str, np.ndarray], cfg, source: str = 'weights') -> dict:
    """Map a reference state_dict onto the Flax parameter tree of `cfg`; strict, listing all problems."""
    abstract = nnx.eval_shape(lambda: LSM(cfg, rngs=nnx.Rngs(0)))
    expected = {'.'.join(map(str, path)): leaf
                for path, leaf in nnx.to_flat_state(nnx.state(abstract, nnx.Param))}
    converted, misshapen, problems = {}, set(), []
    for torch_key, value in state_dict.items():
        if BUFFERS.search(torch_key):
            continue
        pair = from_torch(torch_key)
        if pair is None or pair.ours not in expected:
            problems.append(f"unexpected key {torch_key!r}")
            continue
        want = pair.torch_shape(tuple(expected[pair.ours].shape))
        if tuple(np.shape(value)) != want:
            problems.append(f"wrong shape for {torch_key!r}: {tuple(np.shape(value))} (expected {want})")
            misshapen.add(pair.ours)
            continue
        converted[pair.ours] = pair.to_ours(np.asarray(value)).astype(np.float32)
    problems += [f"missing key {ours_to_torch(name)!r}"
                 for name in sorted(set(expected) - set(converted) - misshapen)]
    if problems:
        raise ConversionError(f"{source}: {len(problems)} problem(s): " + '; '.join(problems))
    tree: dict = {}
    for name, array in converted.items():
        node = tree
        parts = [int(p) if p.isdigit() else p for p in name.split('.')]
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = array
    return tree


def architecture(state_dict: dict, options: str | Path | None, source: str = 'weights'
                 ) -> tuple[ml_collections.ConfigDict, list[str]]:
    """The network config to convert with, and notes on what was inferred.

    Without `options`: inferred from the weights. With `options`: the options file's config, after
    checking that it builds the network the weights hold (an error names the fields that disagree).
    """
    try:
        inferred, notes = infer_network_config(state_dict, source)
    except ArchitectureError as err:
        if options is None:
            raise ConversionError(str(err)) from err
        inferred, notes = None, []      # the strict key/shape check below still reports everything
    if options is None:
        return inferred, notes
    cfg = read_options(options)
    if inferred is not None:
        diff = describe_mismatch(cfg, inferred)
        if diff:
            raise ConversionError(f"{options} does not describe {source}: " + "; ".join(diff)
                                  + " (omit --network-options to use the weights' architecture)")
    return cfg, notes


def convert(weights: str | Path, options: str | Path | None, out: str | Path, key: str | None = None,
            overwrite: bool = False, report=None) -> ml_collections.ConfigDict:
    """Convert `weights` (architecture from `options`, or inferred when None) into a checkpoint at `out`.

    `report`, if given, receives one line describing the inferred architecture and one per note.
    """
    state_dict = load_state_dict(weights, key)
    cfg, notes = architecture(state_dict, options, str(weights))
    if report is not None and options is None:
        name = official_match(cfg)
        report(f"inferred from {weights}: {cfg.arch} x{cfg.upscale}"
               + (f" (official {name})" if name else "")
               + f", embed_dim {cfg.embed_dim}, depth {list(cfg.depth)}, num_heads {list(cfg.num_heads)}, "
               f"mlp_ratio {cfg.mlp_ratio:g}, split_size {list(cfg.split_size)}, d_state {cfg.d_state}, "
               f"num_tokens {cfg.num_tokens}")
        for note in notes:
            report(f"  note: {note}")
    params = convert_state_dict(state_dict, cfg, str(weights))
    save_model(out, cfg, params, overwrite=overwrite)
    return cfg
