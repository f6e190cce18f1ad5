"""The study report's statistics against hand computations: t quantiles and p-values, the t-based
CI of a mean, the difference paired by seed, the minimum detectable effect; the declared baseline
(no best row picked after the fact), `report --compare A B`, and the table rebuilt from runs.csv
alone. Synthetic study folders (result.json files written as the runner writes them): no training,
no JAX."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from lsm_jax import study as cli
from lsm_jax.studies import report, runner
from lsm_jax.studies import statistics as st
from lsm_jax.studies.sweep import Sweep

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------- Student t, by table

@pytest.mark.parametrize("q, df, expected", [
    (0.975, 4, 2.776445), (0.975, 2, 4.302653), (0.975, 1, 12.706205), (0.975, 9, 2.262157),
    (0.95, 10, 1.812461), (0.8, 2, 1.060660), (0.8, 4, 0.940965), (0.995, 30, 2.749996)])
def test_t_quantiles_match_the_printed_tables(q, df, expected):
    assert st.t_ppf(q, df) == pytest.approx(expected, abs=2e-6)
    assert st.t_ppf(1 - q, df) == pytest.approx(-expected, abs=2e-6)


def test_t_p_values_match_closed_forms():
    # df 2 has a closed-form CDF: P(T ≤ t) = 1/2 + t / (2 √(2 + t²)).
    for t in (0.3, 1.0, 2.5, 7.0):
        assert st.t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)
    # df 1 is Cauchy: P(|T| ≥ t) = 1 − 2 atan(t) / π.
    assert st.t_sf_two_sided(2.0, 1) == pytest.approx(1 - 2 * math.atan(2.0) / math.pi, abs=1e-12)
    # tabulated: two-sided p of t = 2.5 with 4 df.
    assert st.t_sf_two_sided(2.5, 4) == pytest.approx(0.06677, abs=5e-6)
    assert st.t_sf_two_sided(0.0, 4) == pytest.approx(1.0)


# ------------------------------------------------------------------------------- CI, paired Δ, MDE

def test_mean_ci_by_hand():
    # x = 1, 2, 3, 4, 5: mean 3, s² = (4+1+0+1+4)/4 = 2.5, s = 1.5811388, s/√5 = 0.7071068;
    # half-width = t_{0.975,4} · 0.7071068 = 2.776445 · 0.7071068 = 1.963243 → [1.036757, 4.963243].
    m = st.mean_ci([1, 2, 3, 4, 5])
    assert (m.mean, m.n) == (3.0, 5)
    assert m.std == pytest.approx(1.5811388, abs=1e-7)
    assert m.lo == pytest.approx(1.036757, abs=1e-6) and m.hi == pytest.approx(4.963243, abs=1e-6)
    one = st.mean_ci([2.0, None, math.nan])            # non-finite dropped; one value: no interval
    assert one.mean == 2.0 and one.n == 1 and math.isnan(one.lo)


def test_paired_difference_by_hand():
    # Seeds 0..2 in both rows (seed 3 only in a: not a pair). a − b = 0.5, 0.1, 0.3:
    # mean 0.3, s² = (0.04 + 0.04 + 0)/2 = 0.04, s = 0.2, s/√3 = 0.1154701, t = 0.3/0.1154701 = 2.598076;
    # half-width = t_{0.975,2} · 0.1154701 = 4.302653 · 0.1154701 = 0.496828 → [−0.196828, 0.796828];
    # p = P(|T_2| ≥ 2.598076) = 1 − 2.598076/√(2 + 6.75) = 1 − 0.878310 = 0.121690 (df-2 closed form).
    a = {0: 30.0, 1: 30.1, 2: 29.9, 3: 31.0}
    b = {0: 29.5, 1: 30.0, 2: 29.6}     # paired by rank instead of seed: 0.4, 0.4, 0.1 (wrong)
    d = st.paired_difference(a, b)
    assert d.n == 3 and d.mean == pytest.approx(0.3, abs=1e-12) and d.sd == pytest.approx(0.2, abs=1e-12)
    assert d.lo == pytest.approx(-0.196828, abs=1e-6) and d.hi == pytest.approx(0.796828, abs=1e-6)
    assert d.p == pytest.approx(0.121690, abs=1e-6)
    same = st.paired_difference({0: 1.0, 1: 2.0}, {0: 0.5, 1: 1.5})   # Δ = 0.5 for every seed: SD 0
    assert (same.mean, same.sd, same.p) == (0.5, 0.0, 0.0)


def test_minimum_detectable_effect_formula():
    # n = 3 pairs, SD 0.2: (t_{0.975,2} + t_{0.8,2}) · 0.2/√3 = (4.302653 + 1.060660) · 0.1154701 = 0.619303.
    assert st.minimum_detectable_effect(0.2, 3) == pytest.approx(0.619303, abs=1e-6)
    # n = 5, SD 1: (2.776445 + 0.940965) / √5 = 1.662476.
    assert st.minimum_detectable_effect(1.0, 5) == pytest.approx(1.662476, abs=1e-6)
    assert math.isnan(st.minimum_detectable_effect(1.0, 1))
    assert st.largest_effect_left_open(st.Paired(0.3, -0.2, 0.8, 0.1, 3, 0.2)) == 0.8


# ------------------------------------------------------------------------------- synthetic studies

PSNR = {  # label -> seed -> Set5 PSNR
    "rmin=0.4": {0: 30.0, 1: 30.4, 2: 29.9},
    "rmin=0.9": {0: 30.5, 1: 30.1, 2: 29.8},   # − rmin=0.4: +0.5, −0.3, −0.1
}


def _study(tmp_path: Path, baseline: str | None) -> Path:
    """A 2-setting × 3-seed study folder with result.json files as `runner.run_study` writes them."""
    sweep = Sweep.parse(["model.rmin=0.4,0.9"], [], seeds=3)
    spec = runner.study_spec("configs/lsm_light.py:tiny", sweep, [("ema_decay", "0.0")], 10, [], baseline=baseline)
    study = tmp_path / "study"
    study.mkdir()
    runner.write_json(study / runner.STUDY_FILE, spec)
    for run in runner.runs_of(study, sweep):
        run.directory.mkdir(parents=True)
        psnr = PSNR[run.setting.label][run.seed]
        runner.write_json(run.directory / runner.RESULT_FILE, dict(
            label=run.setting.label, overrides=dict(run.setting.overrides), seed=run.seed, config_seed=10 + run.seed,
            status="done", step=10, metrics={"Set5/psnr": psnr, "Set5/ssim": psnr / 40.0},
            final_loss=0.03 + 0.001 * run.seed, versions=dict(python="3.x", jax="0.0.test")))
    return study


def test_declared_baseline_is_the_reference_of_every_delta(tmp_path):
    data = report.collect(_study(tmp_path, baseline="rmin=0.4"))
    assert data["baseline"] == "rmin=0.4"
    rows = {r["label"]: r for r in data["rows"]}
    assert rows["rmin=0.4"]["paired"] == {}
    # rmin=0.9 − rmin=0.4 = +0.5, −0.3, −0.1: mean +0.033333,
    # s = √(((0.466667)² + (0.333333)² + (0.133333)²)/2) = √(0.346667/2) = 0.416333.
    d = rows["rmin=0.9"]["paired"]["Set5/psnr"]
    assert d.mean == pytest.approx(0.1 / 3, abs=1e-9) and d.sd == pytest.approx(0.416333, abs=1e-6)
    assert d.n == 3
    # The declared baseline is not the best row (30.100 vs 30.133 dB), so a Δ may be positive: it is not
    # measured from the best mean picked after the fact.
    assert rows["rmin=0.4"]["stats"]["Set5/psnr"].mean < rows["rmin=0.9"]["stats"]["Set5/psnr"].mean
    md = report.markdown(data)
    assert md.count("◆ baseline") == 1 and "vs baseline [95 % CI]" in md and "★" not in md
    assert "| +0.03 [−1.00, 1.07] | 0.902 |" in md
    assert "Minimum detectable effect" in md and "`rmin=0.9`: MDE" in md
    line = next(ln for ln in report.csv_text(data).splitlines() if ln.startswith("rmin=0.9"))
    assert line.endswith(",3,0") and f"{d.p:.6g}" in line
    with pytest.raises(ValueError, match="not a setting"):
        _study(tmp_path / "other", baseline="rmin=0.5")


def test_without_a_declared_baseline_no_delta_and_no_best_row(tmp_path):
    data = report.collect(_study(tmp_path, baseline=None))
    assert data["baseline"] is None and all(r["paired"] == {} for r in data["rows"])
    md = report.markdown(data)
    assert "No declared baseline" in md and "Δ" not in md.split("\n\n")[0] and "★" not in md
    assert "baseline" not in json.loads((tmp_path / "study" / runner.STUDY_FILE).read_text())


def test_compare_two_rows_through_the_cli(tmp_path, capsys):
    study = _study(tmp_path, baseline=None)
    assert cli.main(["report", str(study), "--compare", "rmin=0.9", "1"]) == 0
    out = capsys.readouterr().out
    # rmin=0.9 − rmin=0.4 = +0.5, −0.3, −0.1: mean +0.033333, sd 0.416333, t = 0.138675 (df 2),
    # half-width 4.302653 · 0.416333/√3 = 1.034243 → [−1.00, +1.07], p = 1 − t/√(2+t²) = 0.902347.
    line = next(ln for ln in out.splitlines() if ln.startswith("| Set5/psnr"))
    assert "+0.03 [−1.00, 1.07]" in line and "| 0.902 |" in line and "| 3 |" in line
    assert out.startswith("A = rmin=0.9 (n 3)\nB = rmin=0.4 (n 3)")
    assert not (study / "report.md").exists()                    # --compare only prints
    assert cli.main(["report", str(study), "--compare", "rmin=0.9", "nope"]) == 2
    assert "--compare nope: no such row" in capsys.readouterr().err


def test_table_rebuilt_from_runs_csv_alone(tmp_path):
    study = _study(tmp_path, baseline="rmin=0.4")
    (study / "runs" / "rmin=0.9" / "seed2" / runner.RESULT_FILE).unlink()   # one run still to do
    paths = report.write_report(study, plots=False)
    assert [p.name for p in paths] == ["report.md", "report.csv", "runs.csv"]
    committed = tmp_path / "committed"
    committed.mkdir()
    (committed / "runs.csv").write_text((study / "runs.csv").read_text())
    rebuilt = report.table_from_runs(committed / "runs.csv")
    original = report.collect(study)
    assert [(r["label"], r["seed"], r["status"], r["metrics"], r["versions"]) for r in rebuilt["records"]] == \
        [(r["label"], r["seed"], r["status"], r["metrics"], r["versions"]) for r in original["records"]]
    assert report.markdown(rebuilt) == (study / "report.md").read_text()
    assert report.csv_text(rebuilt) == (study / "report.csv").read_text()
    assert "(1 to run)" in (study / "report.md").read_text()
    runs_csv = (study / "runs.csv").read_text().splitlines()
    assert runs_csv[0].startswith("label,seed,config_seed,status,override:model.rmin,metric:Set5/psnr")
    assert "version:jax" in runs_csv[0] and "study:baseline" in runs_csv[0] and len(runs_csv) == 7
    # The report command on the folder holding runs.csv only: the same table, no figures.
    assert cli.main(["report", str(committed)]) == 0
    assert (committed / "report.md").read_text() == (study / "report.md").read_text()


@pytest.mark.parametrize("name", ["first_results", "ring_settings", "max_phase", "semantics", "rmin_rmax_grid",
                                  "ring_ablation"])
def test_study_documents_declare_the_authors_ring_as_baseline(name):
    """Where a document has the authors' ring (r_min 0.9, r_max 0.99, θ_max 2π, `paper`) as a row, that row
    is its declared baseline; rmin_rmax_grid has no such cell and declares none."""
    from lsm_jax.studies.sweep import override_flags
    from lsm_jax.training.config_loader import load_config
    arg = f"studies/{name}"   # the packaged study document, by name
    doc = cli.study_document(arg)
    sweep = Sweep.parse(doc.get("sweep", []), doc.get("zip", []), doc.get("seeds", 1))
    fixed = [tuple(s.split("=", 1)) for s in doc.get("set", [])]
    rings = {s.label: load_config(arg, override_flags([*fixed, *s.overrides])).model for s in sweep.settings()}
    authors = [label for label, m in rings.items()
               if (m.rmin, m.rmax, m.max_phase, m.semantics) == (0.9, 0.99, 6.283, "paper")]
    assert doc.get("baseline") == (authors[0] if authors else None)
    runner.study_spec(arg, sweep, fixed, doc.get("steps"), [], baseline=doc.get("baseline"))  # a valid label


def test_docs_renderer_reads_the_new_report_csv(tmp_path, monkeypatch):
    """experiments/render_tables.py (its doc_tables) renders a regenerated study report.csv (CI, declared baseline, paired Δ)."""
    import csv
    from experiments import doc_tables
    study = _study(tmp_path, baseline="rmin=0.4")
    report.write_report(study, plots=False)
    with open(study / "report.csv", newline="") as fh:
        lines = doc_tables.study_first_results(list(csv.DictReader(fh)))
    assert lines[0].startswith("| r_min | Set5 PSNR (dB), ± 95 % CI | PSNR std |") and "| p | seeds |" in lines[0]
    assert lines[2] == "| 0.4 | 30.10 ± 0.66 | 0.26 | 0.7525 ± 0.0164 | 0.0310 ± 0.0025 | ◆ baseline | – | 3 |"
    assert lines[3].startswith("| 0.9 | 30.13 ± 0.87 | 0.35 |") and "| +0.03 [−1.00, 1.07] | 0.902 | 3 |" in lines[3]


def test_statistics_module_does_not_import_jax_or_scipy():
    code = ("import sys; import lsm_jax.studies.statistics, lsm_jax.studies.report; "
            "assert 'jax' not in sys.modules and 'scipy' not in sys.modules")
    import subprocess
    subprocess.run([sys.executable, "-c", code], check=True)


def test_runs_record_their_versions():
    v = runner.versions()
    assert set(v) == {"python", "jax", "jaxlib", "flax", "optax", "numpy", "lsm_jax_commit"}
    assert v["python"].count(".") == 2 and v["numpy"]
