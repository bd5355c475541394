"""Cost of one optimizer update (AdamWeightDecay / LAMB) over a BERT's weights.

Builds float32 variables with the shapes of the BERT pretraining model
(`run_pretraining.PretrainingModel`, 206 variables and 110,106,428 parameters
at `--size base`) and random gradients, then times
`optimizer.apply_gradients` (the original update, with weight decay and the
original exclusions) inside a `tf.function`, with and without XLA. It prints
milliseconds per update and the memory traffic that implies (p, m, v and g are
read and p, m, v written: 28 bytes per parameter).

usage: python3 bench/bench_optimizer.py [--size base|mini] [--optimizer adamw,lamb]
          [--xla both|on|off] (off: plain ops; on: jit_update and whole-step XLA) [--warmup 2] [--steps 5] [--threads 2]
"""
import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import tensorflow as tf  # pylint: disable=g-import-not-at-top

import modeling  # pylint: disable=g-import-not-at-top
import optimization  # pylint: disable=g-import-not-at-top
import run_pretraining  # pylint: disable=g-import-not-at-top
from shapes import SIZES, VOCAB_SIZE  # pylint: disable=g-import-not-at-top



def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", default="base", choices=sorted(SIZES))
  parser.add_argument("--optimizer", default="adamw,lamb")
  parser.add_argument("--xla", default="both", choices=["both", "on", "off"])
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--threads", type=int, default=2)
  args = parser.parse_args()
  if args.threads:
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

  config = modeling.BertConfig(vocab_size=VOCAB_SIZE, **SIZES[args.size])
  named = run_pretraining.PretrainingModel(config).named_variables()
  params = sum(v.shape.num_elements() for v in named.values())
  grads = [tf.random.normal(v.shape, stddev=1e-3) for v in named.values()]
  modes = {"both": ["off", "update", "step"], "on": ["update", "step"],
           "off": ["off"]}[args.xla]
  print("size=%s variables=%d parameters=%d threads=%d" %
        (args.size, len(named), params, args.threads))
  for name in args.optimizer.split(","):
    for mode in modes:
      # off: plain ops (bit-exact); update: jit_update=True (XLA per variable);
      # step: the whole function compiled (as inside an XLA-compiled step).
      jit = mode == "step"
      optimizer, _ = optimization.create_optimizer(
          None, 1e-4, 1000, 100, False, optimizer=name,
          jit_update=(mode == "update"))
      optimizer.build(named)
      step = tf.Variable(10, dtype=tf.int64)

      @tf.function(jit_compile=jit)
      def update(gs):
        optimizer.apply_gradients(gs, named, global_step=step)
        # A value that depends on the update, so timing waits for it.
        return tf.add_n([tf.reduce_sum(v[:1]) for v in named.values()])

      update(grads).numpy()
      for _ in range(args.warmup):
        update(grads).numpy()
      times = []
      for _ in range(args.steps):
        start = time.perf_counter()
        update(grads).numpy()
        times.append(time.perf_counter() - start)
      median = statistics.median(times)
      print("%-6s xla=%-6s %8.1f ms/update  %6.2f GB/s" %
            (name, mode, median * 1e3, 28.0 * params / median / 1e9))


if __name__ == "__main__":
  main()
