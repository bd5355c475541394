# coding=utf-8
"""Fine-tuning and prediction throughput of run_classifier.py's step functions.

Builds the classifier task of run_classifier.py (ClassifierTask) and times
the shared loop's own training step (runner._Trainer.train_loop: forward,
backward, clip, AdamWeightDecay update, global_step) and runner.predict, on
synthetic batches already in memory, for each --mixed_precision value.

Usage (BERT-Base shape, the defaults):
  python bench/bench_classifier.py --precisions=fp32,bf16
  python bench/bench_classifier.py --config=tiny --steps=5   # smoke run on CPU

Prints one JSON line per (precision, phase) and a summary table.
"""

import json
import os
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import modeling  # pylint: disable=g-import-not-at-top,wrong-import-position
import run_classifier  # pylint: disable=g-import-not-at-top,wrong-import-position
import runner  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS

CONFIGS = {
    "base": dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                 num_attention_heads=12, intermediate_size=3072,
                 max_position_embeddings=512, type_vocab_size=2),
    "tiny": dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                 num_attention_heads=2, intermediate_size=64,
                 max_position_embeddings=512, type_vocab_size=2),
}


def define_flags():
  flags.DEFINE_string("config", "base", "Model shape: base or tiny.")
  flags.DEFINE_string("bert_config_file", None,
                      "Use this bert_config.json instead of --config.")
  flags.DEFINE_string("precisions", "fp32,bf16",
                      "Comma-separated --mixed_precision values to time.")
  flags.DEFINE_integer("batch_size", 16, "Training batch size.")
  flags.DEFINE_integer("predict_batch_size", 64, "Prediction batch size.")
  flags.DEFINE_integer("seq_length", 128, "Sequence length.")
  flags.DEFINE_integer("warmup_steps", 10, "Untimed training steps first.")
  flags.DEFINE_integer("steps", 100, "Timed training steps.")
  flags.DEFINE_integer("predict_batches", 50, "Timed prediction batches.")
  flags.DEFINE_bool("xla", False, "Compile the gradient step with XLA.")


def _batch(rng, batch_size, seq_length, vocab_size):
  lengths = rng.randint(seq_length // 2, seq_length + 1, size=batch_size)
  mask = (np.arange(seq_length)[None, :] < lengths[:, None]).astype(np.int32)
  ids = rng.randint(1000, vocab_size, size=(batch_size, seq_length))
  ids = (ids * mask).astype(np.int32)
  segments = ((np.arange(seq_length)[None, :] >= lengths[:, None] // 2) *
              mask).astype(np.int32)
  return {"input_ids": ids, "input_mask": mask, "segment_ids": segments,
          "label_ids": rng.randint(0, 2, size=batch_size).astype(np.int32),
          "is_real_example": np.ones(batch_size, np.int32)}


def bench_one(config, precision, output_dir):
  """Returns (train examples/s, predict examples/s)."""
  cfg = runner.RunConfig(output_dir, mixed_precision=precision,
                         use_xla=FLAGS.xla, iterations_per_loop=FLAGS.steps,
                         log_steps=0)
  strategy = runner.get_strategy(cfg)
  task = run_classifier.ClassifierTask(config, ["0", "1"],
                                       options=cfg.encoder_options)
  rng = np.random.RandomState(0)
  data = _batch(rng, FLAGS.batch_size * 8, FLAGS.seq_length,
                config.vocab_size)

  def train_input_fn(params):
    d = tf.data.Dataset.from_tensor_slices(data).repeat()
    return d.batch(params["batch_size"], drop_remainder=True).prefetch(4)

  total_steps = FLAGS.warmup_steps + FLAGS.steps
  state = runner._TrainState(cfg, task, strategy, 2e-5, total_steps * 10,  # pylint: disable=protected-access
                             total_steps)
  trainer = runner._Trainer(cfg, task, strategy, state)  # pylint: disable=protected-access
  per_replica = FLAGS.batch_size // strategy.num_replicas_in_sync
  dataset = strategy.distribute_datasets_from_function(
      lambda ctx: train_input_fn({"batch_size": per_replica,
                                  "input_context": ctx}))
  iterator = iter(dataset)
  logs, _ = trainer.train_loop(iterator, tf.constant(FLAGS.warmup_steps))
  float(logs["loss"].numpy())
  start = time.perf_counter()
  logs, ok = trainer.train_loop(iterator, tf.constant(FLAGS.steps))
  loss = float(logs["loss"].numpy())
  train_seconds = time.perf_counter() - start
  assert bool(ok) and np.isfinite(loss)
  train_rate = FLAGS.steps * FLAGS.batch_size / train_seconds

  predict_data = _batch(rng, FLAGS.predict_batch_size * FLAGS.predict_batches,
                        FLAGS.seq_length, config.vocab_size)

  def predict_input_fn(params):
    d = tf.data.Dataset.from_tensor_slices(predict_data)
    return d.batch(params["batch_size"]).prefetch(4)

  # One untimed pass traces the predict step; then a timed one.
  for _ in runner.predict(cfg, task, predict_input_fn,
                          FLAGS.predict_batch_size, model=state.model):
    pass
  start = time.perf_counter()
  count = 0
  for _ in runner.predict(cfg, task, predict_input_fn,
                          FLAGS.predict_batch_size, model=state.model):
    count += 1
  predict_seconds = time.perf_counter() - start
  predict_rate = count / predict_seconds
  return train_rate, train_seconds / FLAGS.steps, predict_rate


def main(_):
  if FLAGS.bert_config_file:
    config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
  else:
    config = modeling.BertConfig(**CONFIGS[FLAGS.config])
  devices = tf.config.list_logical_devices("GPU")
  device = (tf.config.experimental.get_device_details(
      tf.config.list_physical_devices("GPU")[0]).get("device_name", "GPU")
            if devices else "CPU")
  rows = []
  for precision in FLAGS.precisions.split(","):
    with tempfile.TemporaryDirectory() as output_dir:
      train_rate, step_time, predict_rate = bench_one(config, precision,
                                                      output_dir)
    row = dict(device=device, config=FLAGS.bert_config_file or FLAGS.config,
               precision=precision, xla=FLAGS.xla,
               seq_length=FLAGS.seq_length, train_batch_size=FLAGS.batch_size,
               train_examples_per_sec=round(train_rate, 1),
               train_step_ms=round(step_time * 1000, 2),
               predict_batch_size=FLAGS.predict_batch_size,
               predict_examples_per_sec=round(predict_rate, 1))
    print(json.dumps(row), flush=True)
    rows.append(row)
  print("\n| precision | train ex/s | step ms | predict ex/s |")
  print("|---|---:|---:|---:|")
  for r in rows:
    print("| %s | %.1f | %.2f | %.1f |" % (
        r["precision"], r["train_examples_per_sec"], r["train_step_ms"],
        r["predict_examples_per_sec"]))


if __name__ == "__main__":
  define_flags()
  app.run(main)
