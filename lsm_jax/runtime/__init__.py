"""The machine the code runs on: the accelerators' peak figures (`chips`) and the persistent compilation
cache and user cache folder (`compile_cache`)."""
