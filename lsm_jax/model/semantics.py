"""The semantics switches of a network (spec §10), resolved once from its config.

A preset (`reference`: what the authors' code computes; `paper`: what the paper describes) fixes
three independent switches (spec Q1, Q5, Q6); a config may override each one. `resolve_semantics` is
the only place that reads them: the network resolves once at construction and hands the result down.
"""

from __future__ import annotations

from typing import NamedTuple


class Semantics(NamedTuple):
    """Resolved semantics switches of a network."""
    scan_axis: str          # 'batch' (reference, Q1) | 'tokens' (paper)
    mk_a_batch_mean: bool   # Mk_A averaged over the batch (reference, Q6)
    modulation_order: str   # 'raster' (reference, Q5) | 'sorted' (Mk gathered with the tokens)

    @property
    def cross_image(self) -> bool:
        """Whether images in a batch interact (the recurrence or Mk_A crosses images)."""
        return self.scan_axis == 'batch' or self.mk_a_batch_mean


SEMANTICS = {
    # What the authors' code computes: scan over the batch axis, Mk_A averaged over the batch,
    # modulations left in raster order while the LRU input is sorted.
    "reference": Semantics(scan_axis="batch", mk_a_batch_mean=True, modulation_order="raster"),
    # What the paper describes: each image's sorted tokens form the sequence, each image is
    # modulated by its own Mk, gathered into the sorted order together with the tokens.
    "paper": Semantics(scan_axis="tokens", mk_a_batch_mean=False, modulation_order="sorted"),
}
_CHOICES = dict(scan_axis=("batch", "tokens"), mk_a_batch_mean=(True, False),
                modulation_order=("raster", "sorted"))


def resolve_semantics(cfg) -> Semantics:
    """The preset named by `cfg.semantics` with any explicit per-switch overrides (None = the preset's)."""
    if cfg.semantics not in SEMANTICS:
        raise ValueError(f"model.semantics must be one of {sorted(SEMANTICS)}, got {cfg.semantics!r}")
    preset = SEMANTICS[cfg.semantics]
    values = {k: (preset._asdict()[k] if cfg.get(k) is None else cfg.get(k)) for k in Semantics._fields}
    for key, value in values.items():
        if value not in _CHOICES[key]:
            raise ValueError(f"model.{key} must be one of {_CHOICES[key]}, got {value!r}")
    return Semantics(**values)
