"""run_pretraining.py as a script: resume after kill -9, init from a released-format
checkpoint, eval_results.txt, and one-line errors for bad input.

The step-by-step numerical parity with the original lives in
test_pretraining_parity.py.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import REFERENCE, ROOT, require

SCRIPT = str(ROOT / "run_pretraining.py")
TINY = REFERENCE / "model" / "pretrain_tiny"


def _write_tfrecord(path, batches):
  """The reference batches as create_pretraining_data.py-layout TFRecords."""
  n = batches["input_ids"].shape[0] * batches["input_ids"].shape[1]
  flat = {k: v.reshape((n,) + v.shape[2:]) for k, v in batches.items()}
  with tf.io.TFRecordWriter(str(path)) as writer:
    for i in range(n):
      feats = {}
      for name in ("input_ids", "input_mask", "segment_ids", "masked_lm_positions",
                   "masked_lm_ids", "masked_lm_weights", "next_sentence_labels"):
        values = flat[name][i].reshape(-1)
        if name == "masked_lm_weights":
          feats[name] = tf.train.Feature(
              float_list=tf.train.FloatList(value=values.tolist()))
        else:
          feats[name] = tf.train.Feature(int64_list=tf.train.Int64List(
              value=values.astype(np.int64).tolist()))
      writer.write(tf.train.Example(features=tf.train.Features(
          feature=feats)).SerializeToString())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  require(TINY)
  d = tmp_path_factory.mktemp("pretrain_data")
  batches = dict(np.load(TINY / "batches.npz"))
  _write_tfrecord(d / "train.tfrecord", batches)
  bad = dict(batches)
  bad["input_ids"] = batches["input_ids"].copy()
  bad["input_ids"][0, 0, 1] = 600  # >= vocab_size 512
  _write_tfrecord(d / "bad_ids.tfrecord", bad)
  config = json.loads((TINY / "bert_config.json").read_text())
  (d / "bert_config.json").write_text(json.dumps(config))
  other = dict(config, hidden_size=32, intermediate_size=64)
  (d / "other_config.json").write_text(json.dumps(other))
  return d


def _cmd(data, output_dir, *extra, **overrides):
  flags = {
      "input_file": str(data / "train.tfrecord"),
      "output_dir": str(output_dir),
      "bert_config_file": str(data / "bert_config.json"),
      "do_train": "true",
      "train_batch_size": "8",
      "max_seq_length": "32",
      "max_predictions_per_seq": "5",
      "num_train_steps": "12",
      "num_warmup_steps": "2",
      "learning_rate": "1e-3",
      "save_checkpoints_steps": "4",
      "iterations_per_loop": "2",
      "seed": "7",
      "deterministic": "true",
  }
  flags.update({k: str(v) for k, v in overrides.items()})
  return ([sys.executable, SCRIPT] + [f"--{k}={v}" for k, v in flags.items()] +
          list(extra))


def _run(cmd, expect_ok=True):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
  if expect_ok:
    assert proc.returncode == 0, proc.stderr[-4000:]
  return proc


def _error_line(proc):
  assert proc.returncode != 0
  lines = [l for l in proc.stderr.splitlines() if l.startswith("ERROR: ")]
  assert len(lines) == 1, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr
  return lines[0]


def _read(prefix):
  reader = tf.train.load_checkpoint(str(prefix))
  return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}


def test_kill_minus_9_then_resume_equals_uninterrupted(data, tmp_path):
  """With --deterministic (and --seed) the resumed run's final checkpoint is
  bitwise equal to an uninterrupted run's: weights, Adam slots, global_step and
  the input position are restored. (The reference config has dropout 0.0;
  dropout masks come from TF's stateful RNG, which restarts with the process, so
  with dropout on a resumed run is equally valid but not bitwise equal.)"""
  steps = dict(num_train_steps=40)
  _run(_cmd(data, tmp_path / "full", **steps))

  out = tmp_path / "killed"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.Popen(_cmd(data, out, **steps),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env=env)
  deadline = time.time() + 240
  while not (out / "model.ckpt-4.index").exists():
    assert proc.poll() is None, "training ended before its first checkpoint"
    assert time.time() < deadline
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  latest = tf.train.latest_checkpoint(str(out))
  assert latest is not None and not latest.endswith("model.ckpt-40")

  resumed = _run(_cmd(data, out, **steps))
  assert "Resuming from" in resumed.stderr
  full = _read(tmp_path / "full" / "model.ckpt-40")
  again = _read(out / "model.ckpt-40")
  assert sorted(full) == sorted(again)
  for name in full:
    np.testing.assert_array_equal(full[name], again[name], err_msg=name)


def test_init_from_released_format_checkpoint_and_eval(data, tmp_path):
  """A released-format checkpoint (weights only: no Adam slots, no global_step)
  is a valid init_checkpoint; eval_results.txt has the original's keys."""
  released = require(REFERENCE / "model" / "forward" / "tiny_random_ckpt")
  proc = _run(_cmd(data, tmp_path, "--do_eval=true", num_train_steps=4,
                   init_checkpoint=released / "bert_model.ckpt",
                   bert_config_file=released / "bert_config.json",
                   max_eval_steps=3))
  assert "Initialising weights from init_checkpoint" in proc.stderr
  keys = dict(tf.train.list_variables(str(tmp_path / "model.ckpt-4")))
  assert keys["global_step"] == [] and "cls/predictions/output_bias/adam_m" in keys
  lines = (tmp_path / "eval_results.txt").read_text().splitlines()
  assert [l.split(" = ")[0] for l in lines] == [
      "global_step", "loss", "masked_lm_accuracy", "masked_lm_loss",
      "next_sentence_accuracy", "next_sentence_loss"]
  assert lines[0] == "global_step = 4"


def test_num_train_steps_already_reached_exits_zero(data, tmp_path):
  _run(_cmd(data, tmp_path, num_train_steps=4))
  proc = _run(_cmd(data, tmp_path, num_train_steps=4))
  assert "nothing to train" in proc.stderr


def test_bad_input_gives_one_line_errors(data, tmp_path):
  line = _error_line(_run(_cmd(data, tmp_path / "a", max_seq_length=64),
                          expect_ok=False))
  assert "max_seq_length=32" in line and "--max_seq_length=64" in line
  line = _error_line(_run(_cmd(data, tmp_path / "b", max_predictions_per_seq=20),
                          expect_ok=False))
  assert "max_predictions_per_seq=5" in line and "=20" in line
  line = _error_line(_run(_cmd(data, tmp_path / "c",
                               input_file=data / "nothing*.tfrecord"),
                          expect_ok=False))
  assert "matches no file" in line
  line = _error_line(_run(_cmd(data, tmp_path / "d",
                               input_file=data / "bad_ids.tfrecord"),
                          expect_ok=False))
  assert "600" in line and "vocab_size" in line
  assert not list((tmp_path / "d").glob("model.ckpt-*"))


def test_output_dir_of_another_config_is_refused(data, tmp_path):
  _run(_cmd(data, tmp_path, num_train_steps=2))
  line = _error_line(_run(_cmd(data, tmp_path, num_train_steps=4,
                               bert_config_file=data / "other_config.json"),
                          expect_ok=False))
  assert "another model" in line and "--output_dir" in line


def test_nan_loss_stops_with_step_and_last_checkpoint(data, tmp_path):
  line = _error_line(_run(_cmd(data, tmp_path, learning_rate=1e35,
                               num_warmup_steps=0, iterations_per_loop=1),
                          expect_ok=False))
  assert "NaN/Inf at step" in line and "model.ckpt-" in line
  latest = tf.train.latest_checkpoint(str(tmp_path))
  values = _read(latest)
  assert all(np.all(np.isfinite(v)) for v in values.values())
