# coding=utf-8
"""In-process A/B of two settings on one workload of ../shared/bench.

Both settings are built in the same process through the code `bench_ours.py`
measures (the scripts' paths) and timed interleaved, round by round, so drift
of the machine's speed hits both alike. Prints the median step time of each
and their ratio; this is how `runner.fastest_settings` was decided.

  python3 bench/bench_ab.py --workload W1_infer --size base --dtype fp32 \
      --a fused_blocks=on --b fused_blocks=off [--rounds 5 --steps 3]

A setting is `name=on|off` for fused_blocks, xla_optimizer_update, use_xla or
constant_kernels, or `fused_blocks=epilogues` (the AVX-512 default,
modeling.py); several joined by commas.
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_ours  # pylint: disable=g-import-not-at-top
import benchlib as bl  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top


def _setting(text):
  values = {"fused_blocks": None, "xla_optimizer_update": None,
            "use_xla": False, "constant_kernels": None}
  for part in filter(None, text.split(",")):
    name, value = part.split("=")
    if name == "fused_blocks" and value == "epilogues":
      values[name] = value
      continue
    if name not in values or value not in ("on", "off"):
      raise SystemExit("bench_ab.py: bad setting %r (name=on|off, names %s)"
                       % (part, ", ".join(values)))
    values[name] = value == "on"
  return values


def build(workload, size, dtype, values):
  cfg = bench_ours.run_config(dtype, values["use_xla"], False,
                              values["xla_optimizer_update"],
                              values["fused_blocks"],
                              values["constant_kernels"])
  task = bench_ours.make_task(workload, size, cfg)
  feats = bench_ours.features_of(workload, bl.make_inputs(workload, size))
  make = (bench_ours.predict_step_fn if workload == "W1_infer" else
          bench_ours.train_step_fn)
  step, _ = make(cfg, task, feats, bl.BATCH[workload])
  return step, cfg


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--workload", default="W1_infer")
  parser.add_argument("--size", default="mini")
  parser.add_argument("--dtype", default="fp32")
  parser.add_argument("--a", required=True)
  parser.add_argument("--b", required=True)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--warmup", type=int, default=2)
  args = parser.parse_args()
  tf.config.threading.set_intra_op_parallelism_threads(2)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  steps = {}
  for label, text in (("A", args.a), ("B", args.b)):
    step, cfg = build(args.workload, args.size, args.dtype, _setting(text))
    for _ in range(args.warmup + 1):
      step()
    steps[label] = step
    print("%s: %s -> fused_blocks=%s xla_optimizer_update=%s "
          "constant_kernels=%s" % (
              label, text, cfg.setting("fused_blocks"),
              cfg.setting("xla_optimizer_update"),
              cfg.setting("constant_kernels")), flush=True)
  times = {"A": [], "B": []}
  for _ in range(args.rounds):
    for label in ("A", "B"):
      for _ in range(args.steps):
        start = time.perf_counter()
        steps[label]()
        times[label].append(time.perf_counter() - start)
  batch = bl.BATCH[args.workload]
  med = {k: statistics.median(v) for k, v in times.items()}
  best = {k: min(v) for k, v in times.items()}
  print("%s %s %s  A %.1f/s (best %.1f)  B %.1f/s (best %.1f)  A/B speed "
        "%.3fx median, %.3fx best; load %s" % (
            args.size, args.workload, args.dtype, batch / med["A"],
            batch / best["A"], batch / med["B"], batch / best["B"],
            med["B"] / med["A"], best["B"] / best["A"],
            open("/proc/loadavg").read().split()[0]), flush=True)


if __name__ == "__main__":
  main()
