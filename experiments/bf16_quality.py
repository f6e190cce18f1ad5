r"""The committed bf16 quality study (configs/studies/bf16_quality.py): the demo recipe trained with bfloat16
and with float32 compute, seed for seed; its table and its loss curves.

    lsm-study --config studies/bf16_quality --workdir WORK [--run-index K --num-runs 3]   # train runs
    python -m experiments.bf16_quality --workdir WORK        # harvest WORK's finished runs, rebuild all
    python -m experiments.bf16_quality                       # rebuild all from the committed runs alone
    python -m experiments.bf16_quality --check               # the committed tables match the runs?

experiments/results/studies/bf16_quality/ is a committed study folder (experiments.study_folder): study.json
and, per finished run, `runs/<label>/seed<k>/result.json` (the study tool's result) and `history.json` (the
run's logged training loss and gradient norm, copied from its metrics.jsonl when harvested). From them:

    report.md, report.csv, runs.csv   the study tool's table: Set5 x2 / Gray6 x2 PSNR and SSIM and the final
                                      loss, mean and 95 % CI, Δ paired by seed against float32
    loss_curves.csv                   per logged step: each row's mean training loss over its seeds (95 % CI)
                                      and bfloat16 − float32 paired by seed [95 % CI], also relative
    loss.png                          the loss curves (each seed thin, the mean thick) and the paired
                                      relative difference with its 95 % CI band

Seed k of both rows draws the same initial weights and the same batches, so each difference is a pair.
"""

from __future__ import annotations

import json
from pathlib import Path

from experiments import study_folder
from experiments.results_csv import write_rows
from experiments.study_folder import unstamped

OUT = Path("experiments/results/studies/bf16_quality")
KEY = "model.dtype"


def history_text(run_dir: Path) -> str:
    """history.json of a run: per logged step, the training loss (the mean over the logging window) and the
    gradient norm (JSON: a per-run record, like result.json, not a results table)."""
    from lsm_jax.training.reporting import read_history
    rows = [dict(step=int(r["step"]), loss=float(r["train/loss"]), grad_norm=r.get("train/grad_norm"))
            for r in read_history(run_dir) if r.get("train/loss") is not None]
    return json.dumps(rows) + "\n"


def harvest(workdir: Path, out: Path) -> list[str]:
    """Copies WORK's finished runs, each with its history.json, into `out` (experiments.study_folder.harvest)."""
    return study_folder.harvest(workdir, out, {"history.json": history_text})


def histories(out: Path) -> tuple[dict[str, dict[int, dict[int, float]]], str | None]:
    """({row name (its compute dtype): {seed: {step: loss}}}, the baseline row's name) from the committed runs'
    history.json files, read once for the table and the picture."""
    from lsm_jax.studies.report import collect
    study = collect(out)
    losses = {}
    for row in study["rows"]:
        name = row["values"].get(KEY, row["label"])
        for result in row["results"]:
            rows = json.loads((out / "runs" / row["label"] / f"seed{result['seed']}" / "history.json").read_text())
            losses.setdefault(name, {})[result["seed"]] = {int(r["step"]): float(r["loss"]) for r in rows}
    base = next((row["values"].get(KEY, row["label"]) for row in study["rows"] if row["label"] == study["baseline"]),
                None)
    return losses, base


def loss_curves(losses: dict[str, dict[int, dict[int, float]]], base: str | None) -> list[dict]:
    """Per step logged by every run: per row the mean loss and 95 % CI over the seeds, and for each row but
    the baseline its loss − the baseline's, paired by seed [95 % CI, p], and that difference as a share of
    the baseline's mean (`histories` gives the arguments)."""
    from lsm_jax.studies import statistics as st
    if not losses:
        return []
    steps = sorted(set.intersection(*(set(h) for seeds in losses.values() for h in seeds.values())))
    table = []
    for step in steps:
        line = dict(step=step)
        for name, seeds in losses.items():
            s = st.mean_ci([h[step] for h in seeds.values()])
            line.update({f"{name}_mean": s.mean, f"{name}_ci_lo": s.lo, f"{name}_ci_hi": s.hi, f"{name}_seeds": s.n})
        for name, seeds in losses.items():
            if base is None or name == base:
                continue
            p = st.paired_difference({k: h[step] for k, h in seeds.items()},
                                     {k: h[step] for k, h in losses[base].items()})
            ref = line[f"{base}_mean"]
            line.update({f"{name}_delta_mean": p.mean, f"{name}_delta_ci_lo": p.lo, f"{name}_delta_ci_hi": p.hi,
                         f"{name}_delta_p": p.p, f"{name}_delta_pairs": p.n,
                         f"{name}_delta_rel_mean": p.mean / ref, f"{name}_delta_rel_ci_lo": p.lo / ref,
                         f"{name}_delta_rel_ci_hi": p.hi / ref})
        table.append(line)
    return [study_folder.cells(r) for r in table]


def plot_loss(out: Path, losses: dict[str, dict[int, dict[int, float]]], curves: list[dict]) -> Path:
    """loss.png: left, every run's loss (thin) and each row's mean (thick), log scale; right, each row's
    paired relative difference to the baseline with its 95 % CI band."""
    from lsm_jax.studies.eigen import _plt
    plt = _plt()
    fig, (left, right) = plt.subplots(ncols=2, figsize=(9.0, 3.4))
    steps = [int(r["step"]) for r in curves]
    for colour, (name, seeds) in zip(("tab:blue", "tab:orange", "tab:green"), losses.items()):
        for h in seeds.values():
            left.plot(list(h), list(h.values()), color=colour, lw=0.6, alpha=0.5)
        left.plot(steps, [float(r[f"{name}_mean"]) for r in curves], color=colour, lw=2.0,
                  label=f"{name} ({len(seeds)} seeds)")
        if f"{name}_delta_rel_mean" in (curves[0] if curves else {}):
            mean = [100 * float(r[f"{name}_delta_rel_mean"]) for r in curves]
            lo = [100 * float(r[f"{name}_delta_rel_ci_lo"] or "nan") for r in curves]
            hi = [100 * float(r[f"{name}_delta_rel_ci_hi"] or "nan") for r in curves]
            right.fill_between(steps, lo, hi, color=colour, alpha=0.25, label="95 % CI, paired by seed")
            right.plot(steps, mean, color=colour, lw=1.5, label=f"{name} − baseline")
    left.set(yscale="log", xlabel="step", ylabel="training L1 loss", title="loss, each seed and the mean")
    right.axhline(0.0, color="k", lw=0.8)
    right.set(xlabel="step", ylabel="difference (% of the baseline's loss)", title="paired difference")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    fig.tight_layout()
    path = out / "loss.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def check(out: Path) -> list[str]:
    """Differences between the committed tables and the ones rebuilt from the committed runs (empty: equal)."""
    problems = study_folder.check_report(out)
    if unstamped(out / "loss_curves.csv") != [{k: str(v) for k, v in r.items()} for r in loss_curves(*histories(out))]:
        problems.append(f"{out / 'loss_curves.csv'}: differs from the runs' history.json files")
    return problems


def rebuild(out: Path) -> None:
    """loss_curves.csv and loss.png from the committed runs."""
    losses, base = histories(out)
    curves = loss_curves(losses, base)
    write_rows(out / "loss_curves.csv", curves)
    plot_loss(out, losses, curves)


def main(argv: list[str] | None = None) -> int:
    return study_folder.main(argv, prog="experiments.bf16_quality", description=__doc__.split("\n\n")[0],
                             default_out=OUT, harvest=harvest, rebuild=rebuild, check=check)


if __name__ == "__main__":
    raise SystemExit(main())
