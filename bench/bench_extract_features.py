# coding=utf-8
"""extract_features benchmark: sentences/s on real text, fixed vs bucketed.

Runs `extract_features.extract` (the script's own path: lazy reading, tokenization,
`runner.predict` with `FeatureExtractionTask`, the writer) on the first N non-empty
lines of ../shared/data/corpus/janeaustenr (6 files in name order; N = 10,000 by
default), for

  * `base`: BERT-Base shape (L12 H768 A12 I3072, vocab 30522), random weights
    written to a temporary checkpoint with `checkpoints.save` and loaded back;
  * `minilm`: the reference MiniLM checkpoint (../shared/reference/model/minilm_ckpt);

each model loaded once (`runner.load_model`), then both paths on the same model:

  * `fixed`: every line padded to max_seq_length (the original);
  * `bucketed`: `--dynamic_padding` (length-sorted windows, bucket lengths).

Each run is preceded by an untimed warm-up on the first `--warmup_lines` lines
(tracing). The timed figure is lines / wall seconds of the whole run (reading,
tokenizing, the forward, writing); `sentences_per_cpu_s` (lines / process CPU
seconds, all threads) is also printed, as it moves less when other processes load
the machine. After both paths the outputs are compared
(max |delta|; they must agree to float32 noise).

Default output: `--output_format=npz --pooling=mean --layers=-2` (a sentence
vector per line, the maintainers' suggestion in google-research/bert#71); use
`--output_format=jsonl --pooling=none --layers=-1,-2,-3,-4` for the original file
(large: ~100 MB per 1,000 Base lines).

  python3 bench/bench_extract_features.py                       # all, 10,000 lines
  python3 bench/bench_extract_features.py --models=minilm --num_lines=2000
  python3 bench/bench_extract_features.py --fixed_lines=2000    # fixed path on fewer

Prints one JSON line per measurement (schema "bert-extract-bench/1") and a table.
"""

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
from absl import logging  # pylint: disable=g-import-not-at-top

import checkpoints  # pylint: disable=g-import-not-at-top
import extract_features  # pylint: disable=g-import-not-at-top
import modeling  # pylint: disable=g-import-not-at-top
import runner  # pylint: disable=g-import-not-at-top
import tokenization  # pylint: disable=g-import-not-at-top

SHARED = os.environ.get("BERT_SHARED_DIR",
                        os.path.join(os.path.dirname(ROOT), "shared"))
MINILM = os.path.join(SHARED, "reference", "model", "minilm_ckpt")
CORPUS = os.path.join(SHARED, "data", "corpus", "janeaustenr")

BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
            num_attention_heads=12, intermediate_size=3072,
            max_position_embeddings=512, type_vocab_size=2)


def _record(**kw):
  rec = {"schema": "bert-extract-bench/1", "host": {
      "cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()],
      "gpus": len(tf.config.list_physical_devices("GPU")),
      "python": platform.python_version(), "tensorflow": tf.__version__}}
  rec.update(kw)
  print(json.dumps(rec), flush=True)
  return rec


def write_corpus_lines(path, num_lines, corpus_dir=CORPUS):
  """The first `num_lines` non-empty lines of the corpus files (name order)."""
  written = 0
  with open(path, "w", encoding="utf-8") as out:
    for name in sorted(os.listdir(corpus_dir)):
      with open(os.path.join(corpus_dir, name), encoding="utf-8") as f:
        for line in f:
          if line.strip():
            out.write(line.rstrip("\n") + "\n")
            written += 1
            if written == num_lines:
              return written
  return written


def _head(src, dst, n):
  with open(src, encoding="utf-8") as f, open(dst, "w", encoding="utf-8") as out:
    for i, line in enumerate(f):
      if i == n:
        break
      out.write(line)


def _model(name, workdir, cfg, task_factory):
  """(config, vocab_file, loaded model) for `name`, loaded once."""
  vocab = os.path.join(MINILM, "vocab.txt")
  if name == "minilm":
    config = modeling.BertConfig.from_json_file(
        os.path.join(MINILM, "bert_config.json"))
    ckpt = os.path.join(MINILM, "bert_model.ckpt")
  else:
    config = modeling.BertConfig(**BASE)
    tf.random.set_seed(1)
    random_model = modeling.BertModel(config)
    ckpt = checkpoints.save(os.path.join(workdir, "base_ckpt"), 0,
                            random_model.named_variables())
    del random_model
  model, _, _ = runner.load_model(cfg, task_factory(config), init_checkpoint=ckpt)
  return config, vocab, model


def _read_output(path, output_format):
  if output_format == "jsonl":
    with open(path, encoding="utf-8") as f:
      rows = []
      for line in f:
        record = json.loads(line)
        if "features" in record:
          rows.append(np.array([[l["values"] for l in feat["layers"]]
                                for feat in record["features"]]).ravel())
        else:
          rows.append(np.array(record["values"]))
      return np.concatenate(rows)
  if output_format == "npy":
    return np.load(path).astype(np.float32).ravel()
  with np.load(path) as z:
    return z["values"].astype(np.float32).ravel()


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--models", default="minilm,base")
  parser.add_argument("--modes", default="fixed,bucketed")
  parser.add_argument("--num_lines", type=int, default=10000)
  parser.add_argument("--fixed_lines", type=int, default=None,
                      help="Lines for the fixed path (default: num_lines).")
  parser.add_argument("--warmup_lines", type=int, default=256)
  parser.add_argument("--max_seq_length", type=int, default=128)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--bucket_window", type=int, default=1024)
  parser.add_argument("--layers", default="-2")
  parser.add_argument("--pooling", default="mean")
  parser.add_argument("--output_format", default="npz")
  parser.add_argument("--output_dtype", default="float32")
  parser.add_argument("--mixed_precision", default="fp32")
  parser.add_argument("--workdir", default=None)
  args = parser.parse_args()
  logging.set_verbosity(logging.WARNING)

  workdir = args.workdir or tempfile.mkdtemp(prefix="bench_extract_")
  os.makedirs(workdir, exist_ok=True)
  lines_file = os.path.join(workdir, "lines.txt")
  n = write_corpus_lines(lines_file, args.num_lines)
  fixed_file = lines_file
  if args.fixed_lines and args.fixed_lines < n:
    fixed_file = os.path.join(workdir, "lines_fixed.txt")
    _head(lines_file, fixed_file, args.fixed_lines)
  warm_file = os.path.join(workdir, "warmup.txt")
  _head(lines_file, warm_file, args.warmup_lines)

  cfg = runner.RunConfig(output_dir=None, mixed_precision=args.mixed_precision)
  layers = [int(x) for x in args.layers.split(",")]
  ext = {"jsonl": "jsonl", "npz": "npz", "npy": "npy"}[args.output_format]
  table = []
  try:
    for name in args.models.split(","):
      def task_factory(config):
        return extract_features.FeatureExtractionTask(
            config, layers, pooling=args.pooling,
            options=cfg.encoder_options)
      t0 = time.time()
      config, vocab, model = _model(name, workdir, cfg, task_factory)
      load_s = time.time() - t0
      tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=True)
      outputs = {}
      for mode in args.modes.split(","):
        dynamic = mode == "bucketed"
        src = lines_file if dynamic else fixed_file
        out = os.path.join(workdir, f"{name}_{mode}.{ext}")

        def run(input_file, output_file):
          task = task_factory(config)
          writer = extract_features.make_writer(
              output_file, args.output_format, layers, config.hidden_size,
              args.pooling, args.output_dtype)
          return extract_features.extract(
              cfg, task, tokenizer, input_file, writer, args.max_seq_length,
              args.batch_size, dynamic_padding=dynamic,
              bucket_window=args.bucket_window, model=model,
              progress_seconds=60.0)

        t0 = time.time()
        run(warm_file, os.path.join(workdir, "warmup." + ext))
        warm_s = time.time() - t0
        t0, c0 = time.time(), time.process_time()
        stats = run(src, out)
        seconds = time.time() - t0
        cpu_s = time.process_time() - c0
        outputs[mode] = (out, stats.lines)
        rate = stats.lines / seconds
        table.append((name, mode, stats.lines, seconds, rate))
        _record(model=name, mode=mode, lines=stats.lines, tokens=stats.tokens,
                truncated=stats.truncated, seconds=round(seconds, 2),
                sentences_per_s=round(rate, 2), cpu_s=round(cpu_s, 2),
                sentences_per_cpu_s=round(stats.lines / cpu_s, 3), warmup_s=round(warm_s, 2),
                model_load_s=round(load_s, 2), batch_size=args.batch_size,
                max_seq_length=args.max_seq_length, layers=layers,
                pooling=args.pooling, output_format=args.output_format,
                output_dtype=args.output_dtype,
                mixed_precision=args.mixed_precision,
                device=("GPU" if tf.config.list_physical_devices("GPU")
                        else "CPU"))
      if "fixed" in outputs and "bucketed" in outputs:
        fixed_out, fixed_n = outputs["fixed"]
        bucketed_out, _ = outputs["bucketed"]
        a = _read_output(fixed_out, args.output_format)
        b = _read_output(bucketed_out, args.output_format)
        b = b[:a.size]  # The fixed path may have run on the first lines only.
        delta = float(np.max(np.abs(a - b))) if a.size else 0.0
        _record(model=name, check="fixed_vs_bucketed", lines=fixed_n,
                max_abs_delta=delta)
        table.append((name, "max |delta| fixed vs bucketed", fixed_n, delta, None))
      del model
  finally:
    if not args.workdir:
      shutil.rmtree(workdir, ignore_errors=True)

  print("\nmodel   path        lines   seconds   sentences/s")
  rates = {}
  for name, mode, lines, seconds, rate in table:
    if rate is None:
      print(f"{name:7s} {mode} on {lines} lines: {seconds:.2e}")
      continue
    rates[(name, mode)] = rate
    print(f"{name:7s} {mode:9s} {lines:7d} {seconds:9.1f} {rate:12.1f}")
  for name in args.models.split(","):
    if (name, "fixed") in rates and (name, "bucketed") in rates:
      print(f"{name}: bucketed / fixed = "
            f"{rates[(name, 'bucketed')] / rates[(name, 'fixed')]:.2f}x")


if __name__ == "__main__":
  main()
