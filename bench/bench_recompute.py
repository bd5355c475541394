# coding=utf-8
"""Activation recomputation (`--recompute`): peak memory and step time.

Trains the classifier task (BERT-Base shape by default) at a long sequence
length through the runner's own training step (`runner.build_trainer`, what
`runner.train` runs), once without and once with per-layer activation
recomputation, each in a fresh child process so that the peak resident memory
(`ru_maxrss`) of one setting does not hide the other's. Reports, per setting:

  * the peak resident memory (RSS, sampled every millisecond) during the timed
    steps, and that peak above the resident state between steps (weights,
    Adam slots, inputs, the traced graph): the memory the training step itself
    needs, mostly the activations kept for the backward pass. The children run
    with glibc's mmap threshold fixed at 1 MiB, so freed tensors go back to
    the system and the between-steps baseline is honest;
  * median step time over `--steps` timed steps (after one tracing step and
    `--warmup` more);

then the memory saved and the time added by recomputation, as ratios measured
back to back. One JSON line per setting goes to `--out`.

usage: python3 bench/bench_recompute.py [--size base|mini] [--seq 512]
    [--batch 8] [--warmup 1] [--steps 3] [--threads 2] [--out FILE]
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from shapes import SIZES, VOCAB_SIZE  # pylint: disable=g-import-not-at-top



def current_rss_mb():
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _PeakSampler(object):
  """Samples this process's RSS every millisecond in a thread; keeps the max."""

  def __init__(self):
    self.peak = current_rss_mb()
    self._done = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()

  def _run(self):
    while not self._done.wait(0.001):
      self.peak = max(self.peak, current_rss_mb())

  def stop(self):
    self._done.set()
    self._thread.join()
    return max(self.peak, current_rss_mb())


def child(args):
  """Measures one setting in this process; prints one JSON line."""
  sys.path.insert(0, ROOT)
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import modeling  # pylint: disable=g-import-not-at-top
  import run_classifier  # pylint: disable=g-import-not-at-top
  import runner  # pylint: disable=g-import-not-at-top

  tf.config.threading.set_intra_op_parallelism_threads(args.threads)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  config = modeling.BertConfig(vocab_size=VOCAB_SIZE,
                               max_position_embeddings=512, **SIZES[args.size])
  cfg = runner.RunConfig(output_dir=None, recompute=args.recompute,
                         iterations_per_loop=1, log_steps=1, seed=1)
  task = run_classifier.ClassifierTask(
      config, ["0", "1"], options=modeling.EncoderOptions(recompute=args.recompute))
  rng = np.random.RandomState(0)
  b, s = args.batch, args.seq
  feats = {"input_ids": rng.randint(1000, 30000, (b, s)).astype(np.int32),
           "input_mask": np.ones((b, s), np.int32),
           "segment_ids": np.zeros((b, s), np.int32),
           "label_ids": rng.randint(0, 2, (b,)).astype(np.int32),
           "is_real_example": np.ones((b,), np.int32)}

  def input_fn(params):
    del params
    return tf.data.Dataset.from_tensors(
        {k: tf.constant(v) for k, v in feats.items()}).repeat()

  trainer = runner.build_trainer(cfg, task, learning_rate=1e-5,
                                 num_train_steps=10**6, num_warmup_steps=0,
                                 train_batch_size=b)
  iterator = trainer.make_iterator(input_fn)
  for _ in range(1 + args.warmup):  # tracing, then warm-up
    float(trainer.run_steps(iterator, 1)["loss"].numpy())
  # Under the BFC allocator (the scripts' default) RSS keeps the pool's
  # high-water mark from the tracing call, so the step's memory is read from
  # the allocator's own peak; under the system allocator, from sampled RSS.
  bfc = True
  try:
    tf.config.experimental.reset_memory_stats("CPU:0")
    in_use_before = tf.config.experimental.get_memory_info("CPU:0")["current"]
  except ValueError:
    bfc = False
  rss_before = current_rss_mb()
  sampler = _PeakSampler()
  times = []
  for _ in range(args.steps):
    t0 = time.perf_counter()
    float(trainer.run_steps(iterator, 1)["loss"].numpy())
    times.append(time.perf_counter() - t0)
  peak = sampler.stop()
  if bfc:
    step_peak = (tf.config.experimental.get_memory_info("CPU:0")["peak"]
                 - in_use_before) / 2**20
  else:
    step_peak = peak - rss_before
  print(json.dumps(dict(
      bench="recompute", size=args.size, seq=s, batch=b,
      recompute=bool(args.recompute), steps=len(times),
      step_s_median=float(np.median(times)), step_s_min=float(min(times)),
      rss_before_mb=round(rss_before, 1), peak_rss_mb=round(peak, 1),
      step_peak_mb=round(step_peak, 1),
      allocator="bfc" if bfc else "system", threads=args.threads,
      tensorflow=tf.__version__)))


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--size", default="base", choices=sorted(SIZES))
  p.add_argument("--seq", type=int, default=512)
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--warmup", type=int, default=1)
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--out", default=None)
  p.add_argument("--recompute", type=int, default=None, help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.recompute is not None:
    child(args)
    return

  results = {}
  for recompute in (0, 1):
    cmd = [sys.executable, os.path.abspath(__file__),
           f"--recompute={recompute}"]
    for name in ("size", "seq", "batch", "warmup", "steps", "threads"):
      cmd.append(f"--{name}={getattr(args, name)}")
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(2**20))
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True,
                         env=env)
    line = out.stdout.strip().splitlines()[-1]
    results[recompute] = json.loads(line)
    print(line, flush=True)
    if args.out:
      with open(args.out, "a") as f:
        f.write(line + "\n")
  off, on = results[0], results[1]
  print(f"{args.size} seq {args.seq} batch {args.batch}: step peak "
        f"{off['step_peak_mb']:.0f} -> {on['step_peak_mb']:.0f} MB "
        f"({1 - on['step_peak_mb'] / off['step_peak_mb']:.0%} less), process "
        f"peak {off['peak_rss_mb']:.0f} -> {on['peak_rss_mb']:.0f} MB "
        f"({1 - on['peak_rss_mb'] / off['peak_rss_mb']:.0%} less); step time "
        f"{off['step_s_median']:.2f} -> {on['step_s_median']:.2f} s "
        f"({on['step_s_median'] / off['step_s_median'] - 1:+.0%})")


if __name__ == "__main__":
  main()
