"""run_pretraining.py as a library: heads, losses and streaming eval metrics
against numpy, the original input pipeline, and the input checks.

Numerical parity with the original's training run: test_pretraining_parity.py;
the script (CLI, resume, bad input): test_run_pretraining_script.py."""
import collections

import numpy as np
import pytest
import tensorflow as tf

import modeling
import run_pretraining


def _tiny_config(vocab_size=50):
  return modeling.BertConfig(vocab_size=vocab_size, hidden_size=16,
                             num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=32, max_position_embeddings=16,
                             hidden_dropout_prob=0.0,
                             attention_probs_dropout_prob=0.0)


def _random_features(rng, batch, seq, preds, vocab):
  weights = (rng.uniform(size=(batch, preds)) < 0.7).astype(np.float32)
  weights[:, 0] = 1.0
  return {
      "input_ids": rng.randint(0, vocab, size=(batch, seq)).astype(np.int32),
      "input_mask": np.ones((batch, seq), np.int32),
      "segment_ids": (np.arange(seq)[None, :] >= seq // 2).astype(np.int32) *
                     np.ones((batch, 1), np.int32),
      "masked_lm_positions": np.sort(rng.randint(1, seq, size=(batch, preds)),
                                     axis=1).astype(np.int32),
      "masked_lm_ids": rng.randint(0, vocab, size=(batch, preds)).astype(np.int32),
      "masked_lm_weights": weights,
      "next_sentence_labels": rng.randint(0, 2, size=(batch, 1)).astype(np.int32),
  }


# --------------------------------------------------------------------- heads


def test_gather_indexes_against_numpy():
  rng = np.random.RandomState(0)
  seq = rng.normal(size=(3, 5, 4)).astype(np.float32)
  pos = np.array([[0, 2], [4, 4], [1, 0]], np.int32)
  got = run_pretraining.gather_indexes(tf.constant(seq), tf.constant(pos)).numpy()
  want = np.stack([seq[b, p] for b in range(3) for p in pos[b]])
  np.testing.assert_array_equal(got, want)


def test_heads_losses_and_metrics_against_numpy():
  """Loss formulas and streaming eval metrics (spec §5.2) from the log-probs."""
  config = _tiny_config()
  task = run_pretraining.PretrainingTask(config)
  model = task.create_model()
  rng = np.random.RandomState(1)
  batches = [_random_features(rng, 4, 8, 3, config.vocab_size) for _ in range(2)]
  sums = collections.defaultdict(lambda: np.zeros(2))
  want = collections.defaultdict(list)
  for batch in batches:
    feats = {k: tf.constant(v) for k, v in batch.items()}
    out = model(feats, training=False)
    lp = out.masked_lm_log_probs.numpy().astype(np.float64)
    ids = batch["masked_lm_ids"].reshape(-1)
    w = batch["masked_lm_weights"].reshape(-1).astype(np.float64)
    ex = -lp[np.arange(len(ids)), ids]
    np.testing.assert_allclose(out.masked_lm_example_loss.numpy(), ex, rtol=1e-6)
    mlm = (w * ex).sum() / (w.sum() + 1e-5)
    np.testing.assert_allclose(float(out.masked_lm_loss), mlm, rtol=1e-6)
    nlp = out.next_sentence_log_probs.numpy().astype(np.float64)
    labels = batch["next_sentence_labels"].reshape(-1)
    nex = -nlp[np.arange(len(labels)), labels]
    np.testing.assert_allclose(float(out.next_sentence_loss), nex.mean(),
                               rtol=1e-6)
    total, logs = task.compute_loss(model, feats, training=False)
    np.testing.assert_allclose(float(total), mlm + nex.mean(), rtol=1e-6)
    assert set(logs) == {"masked_lm_loss", "next_sentence_loss"}
    for k, (num, den) in task.eval_metrics(model, feats).items():
      sums[k] += [float(num), float(den)]
    want["mlm_correct"].append(w * (lp.argmax(-1) == ids))
    want["w"].append(w)
    want["mlm_ex"].append(w * ex)
    want["nsp_correct"].append(nlp.argmax(-1) == labels)
    want["nsp_ex"].append(nex)
    want["loss"].append(mlm + nex.mean())
  result = {k: num / den for k, (num, den) in sums.items()}
  w = np.concatenate(want["w"])
  expected = {
      "masked_lm_accuracy": np.concatenate(want["mlm_correct"]).sum() / w.sum(),
      "masked_lm_loss": np.concatenate(want["mlm_ex"]).sum() / w.sum(),
      "next_sentence_accuracy": np.concatenate(want["nsp_correct"]).mean(),
      "next_sentence_loss": np.concatenate(want["nsp_ex"]).mean(),
      "loss": np.mean(want["loss"]),
  }
  assert set(result) == set(expected)
  for k in expected:
    np.testing.assert_allclose(result[k], expected[k], rtol=1e-5, err_msg=k)
  pred = task.predict(model, {k: tf.constant(v) for k, v in batches[0].items()})
  assert pred["masked_lm_predictions"].shape == (4, 3)
  assert pred["next_sentence_probabilities"].shape == (4, 2)
  np.testing.assert_allclose(pred["next_sentence_probabilities"].numpy().sum(-1),
                             1.0, rtol=1e-6)


# --------------------------------------------------------------------- input


def _write_records(path, n, seq=8, preds=3, vocab=50, start=0, id_offset=0):
  """Records in create_pretraining_data.py's layout; input_ids[0] = record id."""
  with tf.io.TFRecordWriter(str(path)) as writer:
    for i in range(start, start + n):
      ints = lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=v))
      feats = {
          "input_ids": ints([i + id_offset] + [5] * (seq - 1)),
          "input_mask": ints([1] * seq),
          "segment_ids": ints([0] * seq),
          "masked_lm_positions": ints([1] * preds),
          "masked_lm_ids": ints([7] * preds),
          "masked_lm_weights": tf.train.Feature(
              float_list=tf.train.FloatList(value=[1.0] * preds)),
          "next_sentence_labels": ints([i % 2]),
      }
      writer.write(tf.train.Example(features=tf.train.Features(
          feature=feats)).SerializeToString())
  return str(path)


def _ids(dataset, batches):
  return [b["input_ids"][:, 0].numpy().tolist() for b in dataset.take(batches)]


def test_eval_input_fn_in_order_repeat_drop_remainder(tmp_path):
  files = [_write_records(tmp_path / "a.tfrecord", 3),
           _write_records(tmp_path / "b.tfrecord", 2, start=3)]
  input_fn = run_pretraining.input_fn_builder(files, 8, 3, is_training=False)
  d = input_fn({"batch_size": 2})
  batch = next(iter(d))
  assert set(batch) == set(run_pretraining.FEATURE_NAMES)
  for name, t in batch.items():
    want = tf.float32 if name == "masked_lm_weights" else tf.int32
    assert t.dtype == want, name
  assert batch["input_ids"].shape == (2, 8)
  assert batch["next_sentence_labels"].shape == (2, 1)
  # Files in order, repeated, full batches only (the remainder wraps around).
  assert _ids(d, 4) == [[0, 1], [2, 3], [4, 0], [1, 2]]
  assert d.element_spec["input_ids"].shape == (2, 8)


def test_train_input_fn_shuffles_repeats_and_is_reproducible_with_seed(tmp_path):
  files = [_write_records(tmp_path / ("f%d.tfrecord" % i), 5, start=5 * i)
           for i in range(3)]
  make = lambda seed: run_pretraining.input_fn_builder(
      files, 8, 3, is_training=True, seed=seed)({"batch_size": 4})
  d = make(7)
  assert d.element_spec["input_ids"].shape == (4, 8)   # drop_remainder
  first = _ids(d, 15)
  assert first == _ids(make(7), 15)                     # seeded: reproducible
  seen = [i for b in first for i in b]
  assert set(seen) == set(range(15))                    # repeats over all files
  assert seen[:15] != list(range(15))                   # shuffled
  # Without a seed the original non-deterministic pipeline still yields data.
  assert len(_ids(make(None), 2)) == 2


def test_train_input_fn_shards_by_input_context(tmp_path):
  files = [_write_records(tmp_path / ("f%d.tfrecord" % i), 4, start=4 * i)
           for i in range(4)]
  input_fn = run_pretraining.input_fn_builder(files, 8, 3, is_training=True,
                                              seed=1)
  seen = []
  for pipeline in range(2):
    ctx = tf.distribute.InputContext(num_input_pipelines=2,
                                     input_pipeline_id=pipeline,
                                     num_replicas_in_sync=2)
    # 128 draws from the shard's 8 records (repeated, shuffled with a buffer of
    # 100): every record shows up, whatever global seed earlier tests left.
    ids = {i for b in _ids(input_fn({"batch_size": 2, "input_context": ctx}), 64)
           for i in b}
    seen.append(ids)
  assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(16))


def test_input_checks_name_the_problem(tmp_path):
  good = _write_records(tmp_path / "good.tfrecord", 2)
  run_pretraining.check_input_files([good], 8, 3, 50)
  assert run_pretraining.expand_input_files(
      str(tmp_path / "nothing*") + "," + str(tmp_path / "go*")) == [good]
  with pytest.raises(run_pretraining.runner.UserError,
                     match=r"max_seq_length=8 but --max_seq_length=128"):
    run_pretraining.check_input_files([good], 128, 3, 50)
  with pytest.raises(run_pretraining.runner.UserError,
                     match=r"max_predictions_per_seq=3 but "
                     r"--max_predictions_per_seq=20"):
    run_pretraining.check_input_files([good], 8, 20, 50)
  big = _write_records(tmp_path / "big.tfrecord", 2, id_offset=60)
  with pytest.raises(run_pretraining.runner.UserError,
                     match=r"token id 60 .*vocab_size is 50"):
    run_pretraining.check_input_files([big], 8, 3, 50)
  with pytest.raises(run_pretraining.runner.UserError, match="matches no file"):
    run_pretraining.expand_input_files(str(tmp_path / "missing-*.tfrecord"))
