# coding=utf-8
"""Length bucketing on real text: fixed-length vs dynamic padding, same outputs.

Runs N lines of corpus text (default: the first 10,000 lines of
../shared/data/corpus/janeaustenr/janeaustenr_emma.txt, one example per line)
through the two prediction paths of the project, once padded to
`--max_seq_length` (the original) and once with dynamic padding:

  * classifier: `run_classifier` features -> `ClassifierTask` ->
    `runner.predict(..., dynamic_padding=True)` (each window of lines sorted by
    length, batches padded to a bucket length, results back in input order);
  * extract_features: `extract_features.extract` (tokenisation, batching,
    `runner.predict`, input-order restore) with `--dynamic_padding`, into a
    writer that keeps the vectors in memory.

Prints wall time of both paths, the speed-up and the largest difference of the
outputs (probabilities; per-token vectors of the real tokens), and appends one
JSON line per path to `--out`. The model is the MiniLM checkpoint of
../shared/reference/model/minilm_ckpt (L6 H384) unless `--size mini|base`
(random weights, benchmark shapes) is given.

usage: python3 bench/bench_bucketing.py [--num_lines 10000] [--paths
  classifier,extract] [--size minilm|mini|base] [--batch_size 32]
  [--max_seq_length 128] [--use_xla] [--out FILE]
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
if os.environ.get("BENCH_OURS_OVERRIDE"):
  sys.path.insert(0, os.environ["BENCH_OURS_OVERRIDE"])
SHARED = os.environ.get("BERT_SHARED_DIR",
                        os.path.join(os.path.dirname(ROOT), "shared"))

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

import extract_features  # pylint: disable=g-import-not-at-top
import modeling  # pylint: disable=g-import-not-at-top
import run_classifier  # pylint: disable=g-import-not-at-top
import runner  # pylint: disable=g-import-not-at-top
import tokenization  # pylint: disable=g-import-not-at-top
from shapes import SIZES  # pylint: disable=g-import-not-at-top

MINILM = os.path.join(SHARED, "reference", "model", "minilm_ckpt")


def read_lines(path, n):
  lines = []
  with tf.io.gfile.GFile(path, "r") as f:
    for line in f:
      lines.append(line.rstrip("\n"))
      if len(lines) == n:
        break
  return lines


class _MemoryWriter(object):
  """An extract_features writer that keeps the vectors (no file)."""

  def __init__(self):
    self.rows = {}

  def write(self, unique_id, tokens, layer_outputs=None, pooled=None):
    del tokens
    self.rows[unique_id] = (pooled if layer_outputs is None
                            else np.array(layer_outputs[0]))

  def close(self):
    pass

  def abort(self):
    pass


def classifier_path(cfg, config, init_checkpoint, tokenizer, lines, args):
  task = run_classifier.ClassifierTask(config, ["0", "1"],
                                       options=cfg.encoder_options)
  tf.random.set_seed(12345)
  model, _, _ = runner.load_model(cfg, task, init_checkpoint=init_checkpoint)
  examples = [run_classifier.InputExample(guid=str(i), text_a=line, label="0")
              for i, line in enumerate(lines)]
  features = run_classifier.convert_examples_to_features(
      examples, ["0", "1"], args.max_seq_length, tokenizer)
  input_fn = run_classifier.input_fn_builder(
      features, args.max_seq_length, is_training=False, drop_remainder=False)
  results, times = {}, {}
  for name, dynamic in (("fixed", False), ("bucketed", True)):
    # Warm-up: trace (and compile) on the first batches, untimed.
    warm = runner.predict(cfg, task, input_fn, args.batch_size, model=model,
                          dynamic_padding=dynamic)
    for _ in range(args.batch_size):
      next(warm)
    start = time.perf_counter()
    out = [r["probabilities"] for r in runner.predict(
        cfg, task, input_fn, args.batch_size, model=model,
        dynamic_padding=dynamic)]
    times[name] = time.perf_counter() - start
    results[name] = np.stack(out)
  diff = float(np.max(np.abs(results["fixed"] - results["bucketed"])))
  return times, diff


def extract_path(cfg, config, init_checkpoint, tokenizer, lines, args):
  task = extract_features.FeatureExtractionTask(config, [-1],
                                                options=cfg.encoder_options)
  tf.random.set_seed(12345)
  model, _, _ = runner.load_model(cfg, task, init_checkpoint=init_checkpoint)
  path = os.path.join(args.tmp_dir, "bucketing_input.txt")
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  warm_path = os.path.join(args.tmp_dir, "bucketing_warm.txt")
  with open(warm_path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines[:args.batch_size * 4]) + "\n")
  results, times = {}, {}
  for name, dynamic in (("fixed", False), ("bucketed", True)):
    extract_features.extract(cfg, task, tokenizer, warm_path, _MemoryWriter(),
                             args.max_seq_length, args.batch_size,
                             dynamic_padding=dynamic, model=model,
                             progress_seconds=1e9)
    writer = _MemoryWriter()
    start = time.perf_counter()
    extract_features.extract(cfg, task, tokenizer, path, writer,
                             args.max_seq_length, args.batch_size,
                             dynamic_padding=dynamic, model=model,
                             progress_seconds=1e9)
    times[name] = time.perf_counter() - start
    results[name] = writer.rows
  diff = max(float(np.max(np.abs(results["fixed"][i] - results["bucketed"][i])))
             for i in results["fixed"])
  return times, diff


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--input_file", default=os.path.join(
      SHARED, "data", "corpus", "janeaustenr", "janeaustenr_emma.txt"))
  p.add_argument("--num_lines", type=int, default=10000)
  p.add_argument("--paths", default="classifier,extract")
  p.add_argument("--size", default="minilm", choices=["minilm", "mini", "base"])
  p.add_argument("--batch_size", type=int, default=32)
  p.add_argument("--max_seq_length", type=int, default=128)
  p.add_argument("--use_xla", action="store_true")
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--tmp_dir", default=os.environ.get("TMPDIR", "/tmp"))
  p.add_argument("--out", default=None)
  args = p.parse_args()
  tf.config.threading.set_intra_op_parallelism_threads(args.threads)
  tf.config.threading.set_inter_op_parallelism_threads(1)

  vocab = os.path.join(MINILM, "vocab.txt")
  if args.size == "minilm":
    config = modeling.BertConfig.from_json_file(
        os.path.join(MINILM, "bert_config.json"))
    init_checkpoint = os.path.join(MINILM, "bert_model.ckpt")
  else:
    config = modeling.BertConfig(vocab_size=30522, type_vocab_size=2,
                                 **SIZES[args.size])
    init_checkpoint = None
  tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=True)
  lines = read_lines(args.input_file, args.num_lines)
  lengths = np.array([len(tokenizer.tokenize(l)) + 2 for l in lines])
  cfg = runner.RunConfig(None, use_xla=args.use_xla)
  for name in args.paths.split(","):
    fn = {"classifier": classifier_path, "extract": extract_path}[name]
    times, diff = fn(cfg, config, init_checkpoint, tokenizer, lines, args)
    rec = dict(path=name, model=args.size, lines=len(lines),
               input_file=os.path.basename(args.input_file),
               mean_tokens=round(float(np.minimum(lengths, args.max_seq_length)
                                       .mean()), 1),
               max_seq_length=args.max_seq_length, batch_size=args.batch_size,
               use_xla=args.use_xla, fixed_s=round(times["fixed"], 2),
               bucketed_s=round(times["bucketed"], 2),
               speedup=round(times["fixed"] / times["bucketed"], 2),
               max_abs_diff=diff, load=[round(x, 2) for x in os.getloadavg()])
    print(json.dumps(rec), flush=True)
    if args.out:
      with open(args.out, "a") as f:
        f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
  main()
