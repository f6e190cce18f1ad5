"""Benchmarks and the tables they feed (README.md, docs/*.md): a package of scripts, not part of lsm_jax.

How an experiment runs: as a module, from the repository root,

    python -m experiments.bench_scan --smoke
    python -m experiments.render_tables --check

`-m` puts the current folder (the root) on the import path, so the scripts import each other as
`from experiments.results_csv import write_rows`, and `lsm_jax` through its install (`pip install -e .`);
no script edits `sys.path`. A script that starts a copy of itself in a fresh process does so the same way
(`python -m experiments.<name>`, the working folder inherited). `python experiments/X.py` is not supported
(it stops at `No module named 'experiments'`), with one exception: `reference_worker.py`, which runs as a
file under the Python that has torch (see `bench_vs_reference`). Tests import the scripts as
`experiments.<name>` (pyproject's pytest `pythonpath` puts the root on the path).

The scripts use lsm_jax through its public names only (no `_private` imports; the uses marked `to become
public` are the ones left).
"""
