"""The scan registry (`lsm_jax.scan.registry`): every entry's options validated (an unknown name and a
bad value refused, for each strategy), the entries' options against their functions' keywords, the
docs table against the entries, the axis legend of the scan docstrings, `config.model.scan` from the
options. The strategies' values, gradients and claims (autodiff, 'auto'): tests/test_scan.py."""

import pytest

from lsm_jax.scan import SCAN_IMPLS, STRATEGIES

CONCRETE = [name for name, entry in STRATEGIES.items() if entry.function is not None]   # all but 'auto'


@pytest.mark.parametrize('impl', SCAN_IMPLS)
def test_validation_rejects_unknown_options_and_bad_values_for_every_strategy(impl):
    from lsm_jax.scan import COMMON, OPTIONS, check_options
    needed = {name: 'seq' for name in STRATEGIES[impl].needs}
    check_options(impl, {**{k: o.default for k, o in OPTIONS.items()}, **needed})   # the defaults pass
    with pytest.raises(ValueError, match=rf"unknown scan options \['chunks'\]; '{impl}' takes"):
        check_options(impl, dict(needed, chunks=8))
    for option in STRATEGIES[impl].options + COMMON:      # a wrong type, and True for an int, named
        for bad in [object()] + ([True] if int in option.types else []):
            with pytest.raises(ValueError, match=rf"^where: {option.name} must be "):
                check_options(impl, {**needed, option.name: bad}, 'where')
    for name in STRATEGIES[impl].needs:
        with pytest.raises(ValueError, match=rf"impl '{impl}' needs {name}"):
            check_options(impl, {})


@pytest.mark.parametrize('impl', CONCRETE)
def test_entry_options_are_the_functions_keywords_with_their_defaults(impl):
    import inspect
    from lsm_jax.scan import OPTIONS
    params = inspect.signature(STRATEGIES[impl].load()).parameters
    assert list(params)[:4] == ['a3', 'x3', 'h0', 'reverse']
    for option in STRATEGIES[impl].options:
        assert params[option.name].kind is inspect.Parameter.KEYWORD_ONLY, option.name
        assert params[option.name].default in (inspect.Parameter.empty, option.default), option.name
        assert OPTIONS[option.name] is option                   # one Option per name, shared


def test_docs_table_is_the_registry_one_row_per_entry():
    import dataclasses
    import pathlib
    from lsm_jax.scan import strategies_table
    rows = strategies_table()
    assert len(rows) == 2 + len(STRATEGIES)
    assert [r.split(' | ')[0] for r in rows[2:]] == [f'| `{name}`' for name in STRATEGIES]
    changed = dict(STRATEGIES, two_pass=dataclasses.replace(STRATEGIES['two_pass'], description='X'))
    differ = [i for i, (r, r2) in enumerate(zip(rows, strategies_table(changed))) if r != r2]
    assert differ == [2 + SCAN_IMPLS.index('two_pass')]
    text = (pathlib.Path(__file__).parents[1] / 'docs' / 'scan.md').read_text()
    start, end = '<!-- scan-strategies -->\n', '<!-- /scan-strategies -->'
    want = start + '\n'.join(rows) + '\n' + end
    assert start in text and text[text.index(start):text.index(end) + len(end)] == want, \
        f"docs/scan.md: the block should read\n{want}"


def test_scan_docstrings_write_shapes_in_the_axis_legend():
    """Every scan module's docstring has an 'Axes' paragraph; every shape tuple in a docstring of
    the package (single capitals, digits, |, ·, / and dots) uses the letters of common's legend."""
    import importlib
    import inspect
    import pkgutil
    import re
    import lsm_jax.scan as scan
    from lsm_jax.scan import common
    legend = set(re.findall(r'^    (\S+)  ', common.__doc__.split('Axes.')[1].split('\n\n')[1], re.M))
    assert {'B', 'L', 'N', 'P', 'Q', 'M', '1|P'} <= legend
    modules = [scan] + [importlib.import_module(f'lsm_jax.scan.{m.name}') for m in pkgutil.iter_modules(scan.__path__)]
    used = set()
    for module in modules:
        if module.__name__ != 'lsm_jax.scan.spec':
            assert 'Axes' in module.__doc__.split('\n\n', 2)[1], module.__name__
        docs = [module.__doc__] + [inspect.getdoc(v) or '' for v in vars(module).values()
                                   if callable(v) and getattr(v, '__module__', '') == module.__name__]
        for doc in docs:
            for group in re.findall(r'\(([^()]*,[^()]*)\)', doc):
                if re.fullmatch(r'[A-Z0-9|·/.,\s]*', group) and not re.search(r'[A-Z]{2}', group):
                    used |= set(re.findall(r'[A-Z]', group))     # (GPU, TPU) is no shape
    assert used and used <= {k for k in legend if k.isalpha()}, used - legend


def test_scan_config_has_every_config_option_of_the_registry():
    from lsm_jax.scan import OPTIONS
    from lsm_jax.scan.spec import scan_config, scan_spec
    cfg = scan_config('two_pass')
    assert set(cfg.keys()) == {'impl'} | {k for k, o in OPTIONS.items() if o.in_config}
    cfg.interpret = True
    assert dict(scan_spec(cfg).options)['interpret'] is True and scan_spec(cfg).impl == 'two_pass'


def test_entries_are_well_formed():
    from lsm_jax.scan import COMMON
    assert [name for name, entry in STRATEGIES.items() if entry.function is None] == ['auto']
    for entry in STRATEGIES.values():
        assert entry.platforms and set(entry.platforms) <= {'cpu', 'gpu', 'tpu'}, entry.name
        assert entry.partitioning in (('xla', 'replicated', 'scan_axis') if entry.function else (None,)), entry.name
        assert (entry.plain_autodiff is None) == (entry.function is None), entry.name
        assert set(entry.needs) <= {o.name for o in entry.options}, entry.name
        assert entry.description and '\n' not in entry.description, entry.name
        assert not {o.name for o in entry.options} & {o.name for o in COMMON}, entry.name
    assert len(SCAN_IMPLS) == len(set(SCAN_IMPLS)) and SCAN_IMPLS[0] == 'auto'
