# coding=utf-8
"""SQuAD benchmark: feature conversion speed and prediction throughput.

Everything runs through the code paths `run_squad.py` uses:

  1. `read_squad_examples` on a SQuAD file (default: dev-v1.1.json).
  2. `convert_examples_to_features` in predict mode (max_seq_length 384,
     doc_stride 128, max_query_length 64) writing `FeatureWriter` TFRecords, as
     `--do_predict` does: examples/s and features/s.
  3. `write_predictions` on random logits for all those features (the
     post-processing of `--do_predict`): features/s.
  4. Prediction: `runner.predict` with `SquadTask` over `input_fn_builder` on
     the first N records, for BERT-Base shape (L12 H768 A12) and MiniLM
     (L6 H384 A12, the reference checkpoint's config), random weights:
     features/s after the first (tracing) batch.

Prints one JSON line per measurement (schema "bert-squad-bench/1") and a table.

  python3 bench/bench_squad.py                      # everything
  python3 bench/bench_squad.py --skip_predict       # data side only
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
from absl import logging  # pylint: disable=g-import-not-at-top

import modeling  # pylint: disable=g-import-not-at-top
import run_squad  # pylint: disable=g-import-not-at-top
import runner  # pylint: disable=g-import-not-at-top
import tokenization  # pylint: disable=g-import-not-at-top

SHARED = os.environ.get("BERT_SHARED_DIR",
                        os.path.join(os.path.dirname(ROOT), "shared"))

SHAPES = {
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072),
    "minilm": dict(hidden_size=384, num_hidden_layers=6,
                   num_attention_heads=12, intermediate_size=1536),
}


class _Timer(object):
  """Wall and CPU (all threads of this process) seconds of a block."""

  def __enter__(self):
    self.wall0 = time.perf_counter()
    self.cpu0 = time.process_time()
    return self

  def __exit__(self, *unused):
    self.wall = time.perf_counter() - self.wall0
    self.cpu = time.process_time() - self.cpu0


def _line(**kw):
  rec = {"schema": "bert-squad-bench/1", "host": {
      "cpus": os.cpu_count(), "loadavg": list(os.getloadavg()),
      "python": platform.python_version(), "tensorflow": tf.__version__}}
  rec.update(kw)
  print(json.dumps(rec), flush=True)
  return rec


def bench_data(args, tmp):

  def fresh_tokenizer():
    # A new tokenizer per measurement: its internal caches start cold.
    return tokenization.FullTokenizer(args.vocab_file, do_lower_case=True)

  with _Timer() as t:
    examples = run_squad.read_squad_examples(
        args.squad_file, is_training=False, version_2_with_negative=False)
  out = []
  out.append(_line(what="read_squad_examples", examples=len(examples),
                   seconds=t.wall, cpu_seconds=t.cpu,
                   examples_per_s=len(examples) / t.wall,
                   examples_per_cpu_s=len(examples) / t.cpu))

  features = []
  writer = run_squad.FeatureWriter(os.path.join(tmp, "eval.tf_record"), False)

  def append_feature(feature):
    features.append(feature)
    writer.process_feature(feature)

  tokenizer = fresh_tokenizer()
  with _Timer() as t:
    run_squad.convert_examples_to_features(examples, tokenizer, 384, 128, 64,
                                           False, append_feature)
    writer.close()
  out.append(_line(what="convert_examples_to_features+FeatureWriter",
                   max_seq_length=384, doc_stride=128, examples=len(examples),
                   features=len(features), seconds=t.wall, cpu_seconds=t.cpu,
                   examples_per_s=len(examples) / t.wall,
                   features_per_s=len(features) / t.wall,
                   examples_per_cpu_s=len(examples) / t.cpu,
                   features_per_cpu_s=len(features) / t.cpu))

  tokenizer = fresh_tokenizer()
  with _Timer() as t:
    count = run_squad.convert_examples_to_features(
        examples, tokenizer, 384, 128, 64, False, lambda f: None)
  out.append(_line(what="convert_examples_to_features (no writer)",
                   max_seq_length=384, examples=len(examples), features=count,
                   seconds=t.wall, cpu_seconds=t.cpu,
                   examples_per_s=len(examples) / t.wall,
                   features_per_s=count / t.wall,
                   examples_per_cpu_s=len(examples) / t.cpu,
                   features_per_cpu_s=count / t.cpu))

  rng = np.random.RandomState(0)
  results = [run_squad.RawResult(
      f.unique_id, [float(x) for x in rng.standard_normal(384).astype(
          np.float32)], [float(x) for x in rng.standard_normal(384).astype(
              np.float32)]) for f in features]
  for v2 in (False, True):
    with _Timer() as t:
      run_squad.write_predictions(
          examples, features, results, 20, 30, True,
          os.path.join(tmp, "p.json"), os.path.join(tmp, "n.json"),
          os.path.join(tmp, "o.json"), version_2_with_negative=v2,
          null_score_diff_threshold=0.0, verbose_logging=False)
    out.append(_line(what="write_predictions", version_2_with_negative=v2,
                     features=len(features), seconds=t.wall,
                     cpu_seconds=t.cpu, features_per_s=len(features) / t.wall,
                     features_per_cpu_s=len(features) / t.cpu))
  return out, os.path.join(tmp, "eval.tf_record")


def _small_record_file(args, tmp):
  """eval.tf_record of the first questions, enough for the predict runs."""
  tokenizer = tokenization.FullTokenizer(args.vocab_file, do_lower_case=True)
  examples = run_squad.read_squad_examples(args.squad_file, False, False)
  need = max(args.predict_features.values())
  path = os.path.join(tmp, "eval.tf_record")
  writer = run_squad.FeatureWriter(path, False)
  run_squad.convert_examples_to_features(examples[:need], tokenizer, 384, 128,
                                         64, False, writer.process_feature)
  writer.close()
  return path


def bench_predict(args, tmp, record_file, shape):
  n = args.predict_features[shape]
  small = os.path.join(tmp, "eval_%d.tf_record" % n)
  with tf.io.TFRecordWriter(small) as w:
    for i, raw in enumerate(tf.data.TFRecordDataset(record_file)):
      if i >= n:
        break
      w.write(raw.numpy())
  config = modeling.BertConfig(vocab_size=30522, **SHAPES[shape])
  cfg = runner.RunConfig(output_dir=os.path.join(tmp, "out_" + shape),
                         mixed_precision=args.mixed_precision)
  task = run_squad.SquadTask(config, options=cfg.encoder_options)
  strategy = runner.get_strategy(cfg)
  with strategy.scope():
    model = task.create_model()
  input_fn = run_squad.input_fn_builder(small, 384, False, False)
  stamps = []
  cpu_stamps = []
  count = 0
  t0 = time.perf_counter()
  batch = args.predict_batch_size
  for result in runner.predict(cfg, task, input_fn, batch, model=model):
    if count % batch == 0:
      stamps.append(time.perf_counter())
      cpu_stamps.append(time.process_time())
    run_squad.RawResult(int(result["unique_ids"]),
                        [float(x) for x in result["start_logits"].flat],
                        [float(x) for x in result["end_logits"].flat])
    count += 1
  t_end = time.perf_counter()
  cpu_end = time.process_time()
  # Time from the end of the first (tracing) batch to the end: the batches
  # yield lazily, so stamps[1] is when the second batch's first result came.
  timed = count - batch
  seconds = t_end - stamps[1]
  return _line(what="predict", shape=shape, max_seq_length=384,
               predict_batch_size=batch, dtype=args.mixed_precision,
               features=count, timed_features=timed, seconds=seconds,
               first_batch_seconds=stamps[1] - t0,
               cpu_seconds=cpu_end - cpu_stamps[1],
               features_per_s=timed / seconds,
               features_per_cpu_s=timed / (cpu_end - cpu_stamps[1]))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--squad_file", default=os.path.join(
      SHARED, "data", "squad", "dev-v1.1.json"))
  parser.add_argument("--vocab_file", default=os.path.join(
      SHARED, "reference", "data", "vocab.txt"))
  parser.add_argument("--skip_predict", action="store_true")
  parser.add_argument("--skip_data", action="store_true",
                      help="only the prediction measurements")
  parser.add_argument("--shapes", default="base,minilm")
  parser.add_argument("--base_features", type=int, default=40)
  parser.add_argument("--minilm_features", type=int, default=160)
  parser.add_argument("--predict_batch_size", type=int, default=8)
  parser.add_argument("--mixed_precision", default="fp32",
                      choices=["fp32", "bf16"])
  args = parser.parse_args()
  args.predict_features = {"base": args.base_features,
                           "minilm": args.minilm_features}
  logging.set_verbosity(logging.WARNING)
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    if args.skip_data:
      record_file = _small_record_file(args, tmp)
    else:
      data_rows, record_file = bench_data(args, tmp)
      rows += data_rows
    if not args.skip_predict:
      for shape in args.shapes.split(","):
        rows.append(bench_predict(args, tmp, record_file, shape))
  # Wall-clock rates depend on what else runs on the machine; the per-CPU-second
  # rates (CPU time of all this process's threads) much less so.
  print("\n%-46s %10s %10s %12s %12s" % (
      "measurement", "ex/s", "feat/s", "ex/cpu-s", "feat/cpu-s"))
  for r in rows:
    name = r["what"] + (" [%s]" % r["shape"] if "shape" in r else "") + (
        " v2" if r.get("version_2_with_negative") else "")
    cells = []
    for key in ("examples_per_s", "features_per_s", "examples_per_cpu_s",
                "features_per_cpu_s"):
      cells.append("%.1f" % r[key] if key in r else "")
    print("%-46s %10s %10s %12s %12s" % tuple([name] + cells))
  print("load average at the end: %s" % (os.getloadavg(),))


if __name__ == "__main__":
  main()
