"""The logical-axis rule table: which mesh axis each logical name of the network's arrays maps to.

Pure data, so that a training config (`lsm_jax.training.recipes`) can carry the rules without
importing JAX; `lsm_jax.training.sharding` applies them.
"""

MESH_AXES = ("data", "fsdp", "model")

# Logical name -> mesh axis (or tuple of mesh axes, or None for replicated).
DEFAULT_RULES = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("feat", "fsdp"),
    ("mlp", "model"),
    ("prototypes", None),
    ("state", None),
    ("conv_spatial", None),
    # Activations (lsm_jax.model.activation_axes): examples over every batch axis, the rest whole.
    ("activation_batch", ("data", "fsdp")),
    ("activation_length", None),
    ("activation_height", None),
    ("activation_width", None),
    ("activation_embed", None),
)
