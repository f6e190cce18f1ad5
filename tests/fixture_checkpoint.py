"""The golden fixture as the authors would ship it: a state_dict file plus a BasicSR options YAML.

Tests convert it through `lsm_jax.convert`, so parity is checked on the converter's path.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import yaml

FIXTURE_DIR = Path(__file__).parent / 'fixtures'
FIXTURE_NPZ = FIXTURE_DIR / 'lsm_tiny_x2.npz'
FIXTURE_JSON = FIXTURE_DIR / 'lsm_tiny_x2.json'


def fixture_arrays() -> dict[str, np.ndarray]:
    """Every array of the golden fixture (state_dict entries and `io/`, `act/`, `cml/`, `alt/`)."""
    with np.load(FIXTURE_NPZ) as data:
        return {k: data[k] for k in data.files}


def fixture_meta() -> dict:
    return json.loads(FIXTURE_JSON.read_text())


def write_reference_files(directory: Path) -> tuple[Path, Path]:
    """Write the fixture's state_dict to `weights.npz` and its architecture to `options.yml`."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in fixture_arrays().items() if '/' not in k}
    weights = directory / 'weights.npz'
    np.savez(weights, **state)
    meta = fixture_meta()
    options = directory / 'options.yml'
    options.write_text(yaml.safe_dump({'name': 'lsm_tiny_x2', 'scale': 2,
                                       'network_g': {'type': meta['arch_class'], **meta['config']}}))
    return weights, options


def tiny_checkpoint(tmp_path_factory) -> Path:
    """A converted checkpoint of the fixture's tiny x2 network (reference semantics)."""
    from lsm_jax.porting.checkpoint import convert
    root = tmp_path_factory.mktemp('tiny_ckpt')
    weights, options = write_reference_files(root / 'src')
    convert(weights, options, root / 'ckpt')
    return root / 'ckpt'


def param_shapes(cfg) -> dict[str, tuple]:
    """Our parameter paths ('layers.0.blocks.0.attn.qkv.kernel') and shapes for `cfg`, built abstractly."""
    from flax import nnx
    from lsm_jax.model.network import LSM
    abstract = nnx.eval_shape(lambda: LSM(cfg, rngs=nnx.Rngs(0)))
    return {'.'.join(map(str, p)): tuple(leaf.shape) for p, leaf in nnx.to_flat_state(nnx.state(abstract, nnx.Param))}


TAIL = ('conv_before_upsample', 'upsample', 'conv_last')


@functools.lru_cache(maxsize=None)
def official_param_shapes(variant: str, scale: int) -> dict[str, tuple]:
    """`param_shapes` of an official variant. The body does not depend on the scale, so x3/x4 reuse
    the x2 body and take the tail from a one-group network of the same width (saves ~2 s each)."""
    from lsm_jax.model.variants import network_config
    if scale == 2:
        return param_shapes(network_config(variant, 2))
    body = {k: v for k, v in official_param_shapes(variant, 2).items() if not k.startswith(TAIL)}
    small = network_config(variant, scale)
    small.update(depth=[2], num_heads=small.num_heads[:1])
    return {**body, **{k: v for k, v in param_shapes(small).items() if k.startswith(TAIL)}}
