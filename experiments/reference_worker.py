"""Times the authors' PyTorch LSM on one case; run by `experiments.bench_vs_reference` under a Python with torch.

    <torch-python> experiments/reference_worker.py CASE.json

The one experiment run as a file, not as `-m experiments.reference_worker`: that Python need not have
lsm_jax or this checkout on its path, and this worker imports neither (only torch, numpy, einops).

CASE.json names the authors' checkout (`repo`), the architecture (`arch`: LSM or LSM_light), its
constructor arguments (`kwargs`), the input (`input_npz`, NCHW float32 under key `x`), where to write
the random-init state_dict and the output (`weights_npz`, `output_npz`), `reps` and `seed`. Prints
one JSON line: the forward times, torch's version and thread count.

With `"mode": "train"` it times their training step instead (`bench_train_vs_reference`): the input
npz holds `lq` and `gt` (NCHW), and one step is what their recipe's iteration computes: the network in
training mode (drop path as constructed), the L1 loss, backward, AdamW (`lr`, `betas`, no weight decay)
and the EMA of the weights (`ema_decay`). Prints the step times; nothing is written but the JSON line.
With `"profile_steps": n` it then records n more steps under `torch.profiler` and adds `ops`: each aten
op's self CPU time per step in ms (the torch side of the step's per-category comparison).

Nothing of the authors' code is copied here: their architecture files are imported from their checkout.
They import a few packages only for training utilities (cv2, matplotlib, torchvision, timm, jax);
small stand-ins are put in `sys.modules` for those, so only torch, numpy and einops are needed.
The released `lsm_arch.py` (LSM, LSM-S) cannot be constructed: its ResidualGroup takes no
`split_size` and never forwards `d_state`. As the architecture notes decide (docs/spec.md),
its ResidualGroup is replaced by the one of `lsm_light_arch.py` (which has that fix; the blocks are
otherwise the same), with `d_state` bound; the rest of `lsm_arch.py` (its upsampler) is kept.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch


def _stub(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


class _DropPath(torch.nn.Module):
    """Stochastic depth; identity in eval mode (all that inference runs)."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x):
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device) >= self.drop_prob
        return x * keep / (1.0 - self.drop_prob)


def _install_stand_ins() -> None:
    from torch.utils import _pytree

    _stub("cv2")
    _stub("matplotlib", pyplot=_stub("matplotlib.pyplot"))
    _stub("torchvision", utils=_stub("torchvision.utils", make_grid=None))
    # jax.tree_util's argument order (treedef first) over torch's pytree.
    _stub("jax", tree_util=_stub("jax.tree_util", tree_flatten=_pytree.tree_flatten,
                                  tree_unflatten=lambda spec, leaves: _pytree.tree_unflatten(leaves, spec)))
    layers = _stub("timm.models.layers", DropPath=_DropPath, trunc_normal_=torch.nn.init.trunc_normal_)
    _stub("timm", models=_stub("timm.models", layers=layers))


def _load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_architecture(repo: Path, arch: str, d_state: int):
    """The authors' network class from their checkout, without importing the rest of basicsr."""
    _install_stand_ins()
    _stub("basicsr").__path__ = []
    utils = _load("basicsr.utils", repo / "basicsr/utils/img_util.py")
    utils.registry = _load("basicsr.utils.registry", repo / "basicsr/utils/registry.py")
    _stub("basicsr.archs").__path__ = []
    light = _load("basicsr.archs.lsm_light_arch", repo / "basicsr/archs/lsm_light_arch.py")
    if arch == "LSM_light":
        return light.LSM_light
    classic = _load("basicsr.archs.lsm_arch", repo / "basicsr/archs/lsm_arch.py")
    classic.ResidualGroup = functools.partial(light.ResidualGroup, d_state=d_state)
    return classic.LSM


def time_training(model: torch.nn.Module, case: dict):
    """Seconds per training step (forward, L1 loss, backward, AdamW step, EMA update; after one untimed),
    and the step function."""
    model.train()
    with np.load(case["input_npz"]) as data:
        lq, gt = torch.from_numpy(data["lq"]), torch.from_numpy(data["gt"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=case["lr"], betas=tuple(case["betas"]), weight_decay=0.0)
    ema = [p.detach().clone() for p in model.parameters()]
    decay = case["ema_decay"]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.l1_loss(model(lq), gt)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in model.parameters()], 1.0 - decay)

    step()
    times = []
    for _ in range(case["reps"]):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times, step


def profile_ops(step, steps: int) -> dict[str, float]:
    """Self CPU ms per step of every op torch's profiler records over `steps` steps."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return {e.key: e.self_cpu_time_total / 1e3 / steps for e in prof.key_averages() if e.self_cpu_time_total > 0}


def main(case_path: str) -> int:
    case = json.loads(Path(case_path).read_text())
    torch.manual_seed(case["seed"])
    net_cls = load_architecture(Path(case["repo"]), case["arch"], int(case["kwargs"]["d_state"]))
    if case.get("mode") == "train":
        times, step = time_training(net_cls(**case["kwargs"]), case)
        out = dict(torch_version=torch.__version__, torch_threads=torch.get_num_threads(),
                   step_s=statistics.median(times), step_min_s=min(times), times=times)
        if case.get("profile_steps"):
            out["ops"] = profile_ops(step, int(case["profile_steps"]))
        print(json.dumps(out))
        return 0
    model = net_cls(**case["kwargs"]).eval()
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    np.savez(case["weights_npz"], **state)
    x = torch.from_numpy(np.load(case["input_npz"])["x"])
    times = []
    with torch.inference_mode():
        y = model(x)                                   # first call: allocations, masks
        for _ in range(case["reps"]):
            t0 = time.perf_counter()
            y = model(x)
            times.append(time.perf_counter() - t0)
    np.savez(case["output_npz"], y=y.numpy())
    print(json.dumps(dict(torch_version=torch.__version__, torch_threads=torch.get_num_threads(),
                          fwd_s=statistics.median(times), fwd_min_s=min(times), times=times)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
