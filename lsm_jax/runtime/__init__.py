"""The machine and the process: the accelerators' peak figures (`chips`), the persistent compilation cache and
user cache folder (`compile_cache`), and what every command's command line shares (`command_line`)."""
