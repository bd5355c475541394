"""Encoder forward throughput (workload W1_infer of ../shared/bench/WORKLOADS.md).

BERT-Base shape by default (L12 H768 A12 I3072, vocab 30522), seq 128, batch 32,
random weights, eval mode (no dropout), pooled + sequence outputs materialised.
For each variant (fp32/bf16 x graph/XLA) prints sequences/s (batch / median
step time over the timed steps, after warm-up) and, with --jsonl, one
`bert-bench/1` JSON line per variant (the peers' schema, see
../shared/bench/benchlib.py) for ../shared/bench/compare.py.

usage: python3 bench/bench_forward.py [--size base|mini] [--dtypes fp32,bf16]
          [--xla both|on|off] [--warmup 2] [--steps 5] [--threads 2]
          [--jsonl out.jsonl]
"""
import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
_SHARED_BENCH = os.path.join(os.environ.get(
    "BERT_SHARED_DIR", os.path.join(os.path.dirname(ROOT), "shared")), "bench")
if os.path.isdir(_SHARED_BENCH):
  sys.path.insert(0, _SHARED_BENCH)

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

import modeling  # pylint: disable=g-import-not-at-top
from shapes import SIZES, VOCAB_SIZE  # pylint: disable=g-import-not-at-top

try:
  import benchlib  # pylint: disable=g-import-not-at-top
except ImportError:
  benchlib = None



def make_inputs(batch, seq):
  if benchlib is not None and batch == 32 and seq == 128:
    raw = benchlib.make_inputs("W1_infer", "base")
    return raw["input_ids"], raw["input_mask"], raw["segment_ids"]
  rng = np.random.default_rng(12345)
  ids = rng.integers(0, VOCAB_SIZE, size=(batch, seq), dtype=np.int32)
  seg = np.zeros((batch, seq), np.int32)
  seg[:, seq // 2:] = 1
  return ids, np.ones((batch, seq), np.int32), seg


def run_variant(size, dtype, xla, batch, seq, warmup, steps):
  config = modeling.BertConfig(
      vocab_size=VOCAB_SIZE, max_position_embeddings=512, type_vocab_size=2,
      **SIZES[size])
  tf.random.set_seed(12345)
  compute_dtype = {"fp32": tf.float32, "bf16": tf.bfloat16}[dtype]
  model = modeling.BertModel(config, compute_dtype=compute_dtype)
  ids, mask, segs = [tf.constant(x) for x in make_inputs(batch, seq)]

  @tf.function(jit_compile=xla)
  def forward(a, b, c):
    out = model(a, b, c, training=False)
    return out.sequence_output, out.pooled_output

  def step():
    seq_out, pooled = forward(ids, mask, segs)
    seq_out.numpy()
    pooled.numpy()

  step()  # traces (and compiles with XLA); not counted
  for _ in range(warmup):
    step()
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
  params = int(sum(np.prod(v.shape) for v in model.named_variables().values()))
  return times, params


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--size", default="base", choices=sorted(SIZES))
  p.add_argument("--dtypes", default="fp32,bf16")
  p.add_argument("--xla", default="both", choices=["both", "on", "off"])
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--seq", type=int, default=128)
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--steps", type=int, default=5)
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--inter", type=int, default=1)
  p.add_argument("--jsonl", default=None, help="append bert-bench/1 lines here")
  args = p.parse_args()

  tf.config.threading.set_intra_op_parallelism_threads(args.threads)
  tf.config.threading.set_inter_op_parallelism_threads(args.inter)
  xla_modes = {"both": [False, True], "on": [True], "off": [False]}[args.xla]
  print("BERT-%s forward, batch %d, seq %d, %d warm-up + %d timed steps, "
        "%d threads, TF %s" % (args.size, args.batch, args.seq, args.warmup,
                               args.steps, args.threads, tf.__version__))
  for dtype in args.dtypes.split(","):
    for xla in xla_modes:
      load0 = os.getloadavg()
      times, params = run_variant(args.size, dtype, xla, args.batch, args.seq,
                                  args.warmup, args.steps)
      med = statistics.median(times)
      print("%-4s %-7s %8.2f seq/s  (median step %.3f s, min %.3f, max %.3f; "
            "load %.1f)" % (dtype, "XLA" if xla else "graph",
                            args.batch / med, med, min(times), max(times),
                            load0[0]), flush=True)
      if args.jsonl and benchlib is not None and args.seq == 128:
        rec = benchlib.record(
            "new-tf2", "W1_infer", args.size, dtype, times,
            warmup=args.warmup, params=params,
            threads=dict(tf_intra=args.threads, tf_inter=args.inter),
            versions=dict(tensorflow=tf.__version__),
            notes=["tf.function(jit_compile=%s); compute_dtype=%s with fp32 "
                   "variables, LayerNorm and softmax" % (xla, dtype)],
            variant="xla" if xla else "graph", load_start=list(load0),
            batch=args.batch)
        with open(args.jsonl, "a") as f:
          f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
  main()
