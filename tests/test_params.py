"""Parameter counts of the nine official variants equal the reference's (spec §8), from shapes only."""

import pytest

from lsm_jax.model.network import count_parameters
from lsm_jax.model.variants import network_config

OFFICIAL = {  # spec §8, measured with the reference code
    'lsm': (12_771_607, 12_956_247, 12_919_319),
    'lsm_s': (9_716_387, 9_901_027, 9_864_099),
    'lsm_light': (763_344, 771_459, 782_820),
}


@pytest.mark.parametrize('variant, scale', [(v, s) for v in OFFICIAL for s in (2, 3, 4)])
def test_parameter_count(variant, scale):
    assert count_parameters(network_config(variant, scale)) == OFFICIAL[variant][scale - 2]
