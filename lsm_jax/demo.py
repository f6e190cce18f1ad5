r"""`make demo`: train the tiny LSM-light on this CPU, then compare it with bicubic on Set5 x2.

    lsm-demo [-o demo_out] [--steps N] [--target-db DB] [-q] [--config.KEY=VALUE ...]   (or python -m lsm_jax.demo)

1. Trains the packaged config `lsm_light:tiny` (paper semantics, 67K parameters; the file is
   configs/lsm_light.py in the checkout) on the embedded scikit-image photographs, validating on the
   Set5 x2 bundled with the package as it goes.
2. Scores the exported EMA weights and plain bicubic on Set5 x2 (Y-PSNR / SSIM, the protocol).
3. Writes `side_by_side.png` (bicubic | LSM | HR crops), `curves.png` (training loss and Set5
   PSNR against steps) and `summary.json` into the output folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from lsm_jax.evaluation.benchmarks import bundled_set5
from lsm_jax.runtime.command_line import new_spellings, refuse_set
from lsm_jax.training.config_loader import load_config, normalise

CONFIG = "lsm_light:tiny"
PROG = "lsm-demo"
# Spellings before the commands' one vocabulary: still read, not shown in the help.
RENAMED = {"--out": "--output", "--target_db": "--target-db"}


def demo_config(steps: int, overrides: list[str]):
    """`lsm_light:tiny` with the `--config.key=value` overrides (checked as the train command checks them),
    then `--steps` (which wins), validated on the bundled Set5."""
    config = load_config(CONFIG, overrides)
    config.eval.dirs = (str(bundled_set5()),)
    if steps:
        config.total_steps = steps
    return config


def plot_curves(workdir: Path, bicubic_psnr: float, path: Path) -> None:
    """Training loss and validation PSNR against steps, from the run's metrics.jsonl."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lsm_jax.training.reporting import read_history

    history = read_history(workdir)
    loss = [(r["step"], r["train/loss"]) for r in history if r.get("train/loss") is not None]
    psnr = [(r["step"], r["val/Set5/psnr"]) for r in history if r.get("val/Set5/psnr") is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    if loss:
        ax1.plot(*zip(*loss), lw=1)
    ax1.set(xlabel="step", ylabel="L1 loss", title="training loss", yscale="log")
    if psnr:
        ax2.plot(*zip(*psnr), "o-", label="tiny LSM-light (EMA)")
    ax2.axhline(bicubic_psnr, color="gray", ls="--", label=f"bicubic {bicubic_psnr:.2f} dB")
    ax2.set(xlabel="step", ylabel="Y-PSNR (dB)", title="Set5 x2")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def side_by_side(crops: list[dict], scores: dict[str, tuple[float, float]], path: Path) -> None:
    """One row per image: bicubic | LSM | HR, titled with each image's PSNR."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(crops), 3, figsize=(9, 3.1 * len(crops)), squeeze=False)
    for row, crop in zip(axes, crops):
        bic, lsm = scores[crop["name"]]
        for ax, key, title in zip(row, ("bicubic", "sr", "hr"),
                                  (f"bicubic {bic:.2f} dB", f"tiny LSM {lsm:.2f} dB", f"HR ({crop['name']})")):
            ax.imshow(np.clip(crop[key], 0, 1), interpolation="nearest")
            ax.set_title(title, fontsize=10)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, usage="%(prog)s [-h] [-o DIR] [--steps N] [--target-db DB] [-q] [--config.KEY=VALUE ...]",
        description="Train the tiny LSM-light (lsm_light:tiny) on this CPU and compare it with bicubic "
                               "on the bundled Set5 x2.",
        epilog="Config overrides: --config.KEY=VALUE (or --config.KEY VALUE), typed and checked as lsm-train "
               "checks them, applied to lsm_light:tiny. Exit status 1 when the margin over bicubic is below "
               "--target-db.")
    parser.add_argument("-o", "--output", metavar="DIR", default="demo_out",
                        help="output folder: side_by_side.png, curves.png, summary.json, and the run in run/ "
                             "(replaced) (default: demo_out)")
    parser.add_argument("--steps", type=int, default=0, metavar="N",
                        help="training steps (default: the tiny recipe's); wins over --config.total_steps")
    parser.add_argument("--target-db", type=float, default=1.0, metavar="DB",
                        help="margin over bicubic to call it a success (default: 1.0)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print only the result line (and errors): no stage lines, log lines or progress bar")
    return parser


def _arguments(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """(options, `--config.KEY=VALUE` overrides); ValueError in one line for `--set` or a stray argument."""
    argv = new_spellings(normalise(list(sys.argv[1:] if argv is None else argv)), RENAMED)
    args, rest = _parser().parse_known_args(argv)
    refuse_set(rest)   # the old spelling of an override: say how to write it now
    stray = [a for a in rest if not a.startswith("--config.")]
    if stray:
        raise ValueError(f"unrecognized arguments: {' '.join(stray)} (config overrides are --config.KEY=VALUE; "
                         f"see {PROG} --help)")
    return args, rest


def main(argv: list[str] | None = None) -> int:
    """Runs the demo; returns 0 when the tiny model beats bicubic by at least `--target-db`."""
    try:
        args, overrides = _arguments(argv)
        config = demo_config(args.steps, overrides)
    except ValueError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    say = (lambda *a, **k: None) if args.quiet else print   # the stage lines; the result line is always printed
    t_start = time.perf_counter()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", force=True)
    for noisy in ("absl", "jax"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from lsm_jax.evaluation.scoring import bicubic_upscaler, evaluate_folder
    from lsm_jax.inference.forward import Upscaler
    from lsm_jax.training import loop
    from lsm_jax.training.validation import crops

    if args.quiet:
        config.progress_bar = False
    out = Path(args.output)
    workdir = out / "run"
    shutil.rmtree(workdir, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)

    say(f"[demo] training the tiny LSM-light ({config.model.semantics} semantics) for {config.total_steps} "
        f"steps: batch {config.batch_size} of {config.patch_size}×{config.patch_size} LR patches")
    summary = loop.train_and_evaluate(config, workdir)

    say("[demo] scoring the exported EMA weights and bicubic on Set5 x2")
    model_dir = workdir / "export" / "latest"
    set5 = bundled_set5()
    upscaler = Upscaler.from_checkpoint(model_dir)
    lsm = evaluate_folder(upscaler, set5, 2, progress=False)
    bicubic = evaluate_folder(bicubic_upscaler(2), set5, 2, progress=False)
    margin = lsm["psnr"] - bicubic["psnr"]

    samples = crops(upscaler, set5, 2, n=3, size=96)
    scores = {b["name"]: (b["psnr"], m["psnr"]) for b, m in zip(bicubic["images"], lsm["images"])}
    side_by_side(samples, scores, out / "side_by_side.png")
    plot_curves(workdir, bicubic["psnr"], out / "curves.png")

    result = dict(
        steps=summary["final_step"], train_minutes=round(summary["train_s"] / 60, 2),
        step_s=round(summary["step_s"], 4), compile_s=round(summary["compile_s"], 1),
        set5_x2_psnr=round(lsm["psnr"], 3), set5_x2_ssim=round(lsm["ssim"], 4),
        bicubic_psnr=round(bicubic["psnr"], 3), bicubic_ssim=round(bicubic["ssim"], 4),
        margin_db=round(margin, 3), wall_minutes=round((time.perf_counter() - t_start) / 60, 2),
        model=str(model_dir))
    (out / "summary.json").write_text(json.dumps(result, indent=2))
    print(f"[demo] Set5 x2 Y-PSNR: tiny LSM-light {lsm['psnr']:.2f} dB (SSIM {lsm['ssim']:.4f}), "
          f"bicubic {bicubic['psnr']:.2f} dB (SSIM {bicubic['ssim']:.4f}): {margin:+.2f} dB")
    say(f"[demo] training {result['train_minutes']} min ({result['step_s']} s/step, compilation "
        f"{result['compile_s']} s not counted); whole demo {result['wall_minutes']} min")
    say(f"[demo] wrote {out / 'side_by_side.png'}, {out / 'curves.png'}, {out / 'summary.json'}; "
        f"the model is in {model_dir} (lsm-upscale --checkpoint / lsm-evaluate --checkpoint read it)")
    if margin < args.target_db:
        print(f"[demo] the margin is below the {args.target_db} dB target", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
