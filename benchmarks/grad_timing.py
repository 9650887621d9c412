"""Time one gradient of the X-ray model's log density on crops of a scan, on whatever JAX finds.

NUTS spends nearly all its time in gradients, so the cost of one (after compilation) says
what a fit will cost on a device: on 2 CPU cores it grows with the crop; on a GPU the dense
(window, slot) layout keeps it near the launch latency up to the whole crystal
(docs/benchmarks.md). Usage::

    python benchmarks/grad_timing.py --reduced reduced.h5 [--likelihood exact|summary]
        [--crops 12:15,12:15 10:16,10:16 all] [--calls 50]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bayes_sc.inference.fit import parse_crop, prepare_xray
from bayes_sc.modeling.xray import build_xray_model
from bayes_sc.presets import load_preset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reduced", type=Path, required=True)
    ap.add_argument("--likelihood", default="exact", choices=("exact", "summary"))
    ap.add_argument("--crops", nargs="+", default=["12:15,12:15", "10:16,10:16"],
                    help="row0:row1,col0:col1 slices of the scan, or 'all'")  # fmt: skip
    ap.add_argument("--calls", type=int, default=50)
    args = ap.parse_args()
    import jax
    from pymc.sampling.jax import get_jaxified_logp

    print(f"JAX backend {jax.default_backend()}: {jax.devices()[0].device_kind}")
    preset = load_preset("cspbbr2cl")
    for crop in args.crops:
        t0 = time.perf_counter()
        box = None if crop == "all" else parse_crop(crop)
        d, first, saxs, waxs, summ = prepare_xray(
            args.reduced, preset, crop=box, crystal_mask=None, likelihood=args.likelihood
        )
        model = build_xray_model(d, preset, saxs, waxs, first, summ)
        t1 = time.perf_counter()
        point = model.initial_point()
        x = [jax.numpy.asarray(point[v.name]) for v in model.value_vars]
        f = jax.jit(jax.value_and_grad(get_jaxified_logp(model)))
        value, grad = f(x)
        jax.block_until_ready(grad)
        t2 = time.perf_counter()
        for _ in range(args.calls):
            value, grad = f(x)
        jax.block_until_ready(grad)
        per_call = (time.perf_counter() - t2) / args.calls
        n = sum(int(np.size(v)) for v in x)
        print(f"{crop}: {d.graph.n} px, {n} parameters, prepare + build {t1 - t0:.1f} s, "
              f"compile {t2 - t1:.1f} s, gradient {1e3 * per_call:.2f} ms, "
              f"log density {float(value):.1f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
