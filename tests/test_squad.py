"""run_squad.py: data side against the original's outputs, predictions, EM/F1."""
import collections
import gzip
import hashlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import REFERENCE, require

import run_squad
import tokenization

SQUAD = REFERENCE / "data" / "squad"
VOCAB = REFERENCE / "data" / "vocab.txt"

# name -> (input, is_training, v2, max_seq_length, doc_stride, max_query_length)
FEATURE_RUNS = {
    "v1_dev_first3_eval": ("squad_v1.1_dev_first3.json", False, False, 384,
                           128, 64),
    "v2_fixture_eval": ("squad_v2_fixture_dev.json", False, True, 384, 128, 64),
    "v2_fixture_train": ("squad_v2_fixture_dev.json", True, True, 384, 128, 64),
    "v2_fixture_eval_msl96": ("squad_v2_fixture_dev.json", False, True, 96, 32,
                              24),
    "v2_fixture_train_msl96": ("squad_v2_fixture_dev.json", True, True, 96, 32,
                               24),
}


def _open(path):
  path = str(path)
  if not os.path.exists(path) and os.path.exists(path + ".gz"):
    path += ".gz"
  require(path)
  if path.endswith(".gz"):
    return gzip.open(path, "rt", encoding="utf-8")
  return open(path, encoding="utf-8")


def _read_bytes(path):
  path = str(path)
  if not os.path.exists(path) and os.path.exists(path + ".gz"):
    with gzip.open(path + ".gz", "rb") as f:
      return f.read()
  with open(require(path), "rb") as f:
    return f.read()


def _jsonl(path):
  with _open(path) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def tokenizer():
  return tokenization.FullTokenizer(str(require(VOCAB)), do_lower_case=True)


_CACHE = {}


def _convert(name, tokenizer, tmp_dir=None):
  """Our examples and features for a reference run (memoised)."""
  if name not in _CACHE:
    inp, is_training, v2, msl, stride, mql = FEATURE_RUNS[name]
    examples = run_squad.read_squad_examples(
        str(require(SQUAD / "inputs" / inp)), is_training,
        version_2_with_negative=v2)
    features = []
    n = run_squad.convert_examples_to_features(
        examples, tokenizer, msl, stride, mql, is_training, features.append)
    assert n == len(features)
    _CACHE[name] = (examples, features)
  return _CACHE[name]


def _feature_dict(f):
  return collections.OrderedDict([
      ("unique_id", f.unique_id),
      ("example_index", f.example_index),
      ("doc_span_index", f.doc_span_index),
      ("tokens", f.tokens),
      ("token_to_orig_map", [[str(k), v] for k, v in
                             f.token_to_orig_map.items()]),
      ("token_is_max_context", [[str(k), v] for k, v in
                                f.token_is_max_context.items()]),
      ("input_ids", f.input_ids),
      ("input_mask", f.input_mask),
      ("segment_ids", f.segment_ids),
      ("start_position", f.start_position),
      ("end_position", f.end_position),
      ("is_impossible", f.is_impossible),
  ])


@pytest.mark.parametrize("name", sorted(FEATURE_RUNS))
def test_examples_match_reference(name, tokenizer):
  examples, _ = _convert(name, tokenizer)
  ref = _jsonl(SQUAD / ("%s.examples.jsonl" % name))
  assert len(examples) == len(ref)
  for ex, r in zip(examples, ref):
    assert ex.qas_id == r["qas_id"]
    assert ex.question_text == r["question_text"]
    assert ex.doc_tokens == r["doc_tokens"]
    assert ex.orig_answer_text == r["orig_answer_text"]
    assert ex.start_position == r["start_position"]
    assert ex.end_position == r["end_position"]
    assert ex.is_impossible == r["is_impossible"]


@pytest.mark.parametrize("name", sorted(FEATURE_RUNS))
def test_features_match_reference(name, tokenizer):
  _, features = _convert(name, tokenizer)
  ref = _jsonl(SQUAD / ("%s.features.jsonl" % name))
  assert len(features) == len(ref)
  for f, r in zip(features, ref):
    r = dict(r)
    r["token_to_orig_map"] = [list(x) for x in r["token_to_orig_map"].items()]
    r["token_is_max_context"] = [list(x) for x in
                                 r["token_is_max_context"].items()]
    assert _feature_dict(f) == r, "feature %d differs" % f.unique_id


def _parse_records(path):
  out = []
  for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
    ex = tf.train.Example.FromString(raw)
    out.append({k: list(v.int64_list.value)
                for k, v in ex.features.feature.items()})
  return out


@pytest.mark.parametrize("name", sorted(FEATURE_RUNS))
def test_tfrecords_parse_identically(name, tokenizer, tmp_path):
  _, features = _convert(name, tokenizer)
  is_training = FEATURE_RUNS[name][1]
  path = tmp_path / "out.tf_record"
  writer = run_squad.FeatureWriter(str(path), is_training=is_training)
  for f in features:
    writer.process_feature(f)
  writer.close()
  assert writer.num_features == len(features)
  ours = _parse_records(path)
  ref = _parse_records(require(SQUAD / ("%s.tfrecord" % name)))
  assert ours == ref


def test_input_fn_reads_the_records(tokenizer, tmp_path):
  _, features = _convert("v2_fixture_train_msl96", tokenizer)
  path = tmp_path / "train.tf_record"
  writer = run_squad.FeatureWriter(str(path), is_training=True)
  for f in features:
    writer.process_feature(f)
  writer.close()
  fn = run_squad.input_fn_builder(str(path), 96, False, drop_remainder=False)
  batches = list(fn({"batch_size": 8}).as_numpy_iterator())
  assert sum(len(b["unique_ids"]) for b in batches) == len(features)
  assert batches[0]["input_ids"].dtype == np.int32
  assert list(batches[0]["input_ids"][1]) == features[1].input_ids
  train_fn = run_squad.input_fn_builder(str(path), 96, True, True)
  batch = next(iter(train_fn({"batch_size": 4})))
  assert set(batch) == {"unique_ids", "input_ids", "input_mask", "segment_ids",
                        "start_positions", "end_positions"}
  assert batch["start_positions"].shape == (4,)


# ---------------------------------------------------------------------------
# write_predictions with the reference's synthetic logits
# ---------------------------------------------------------------------------


def _summary():
  with open(require(SQUAD / "squad_summary.json")) as f:
    return json.load(f)


def _v1_logits(features):
  rng = np.random.RandomState(0)
  arr = np.zeros([len(features), 2, 384], np.float32)
  for i in range(len(features)):
    arr[i, 0] = rng.standard_normal(384).astype(np.float32)
    arr[i, 1] = rng.standard_normal(384).astype(np.float32)
  return arr


def _logits(name, features):
  if name == "v1_dev_first3_eval":
    arr = _v1_logits(features)
  else:
    arr = np.load(str(require(SQUAD / ("%s.synthetic_logits.npy" % name))))
  digest = hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()
  assert digest == _summary()[name]["synthetic_logits_float32_sha256"]
  return arr


def _results(features, arr):
  return [run_squad.RawResult(unique_id=f.unique_id,
                              start_logits=[float(x) for x in arr[i, 0]],
                              end_logits=[float(x) for x in arr[i, 1]])
          for i, f in enumerate(features)]


def _crafted_no_valid_span(features, arr):
  arr = arr.copy()
  for i, f in enumerate(features):
    if f.example_index == 0:
      row = np.full([arr.shape[2]], -10.0, np.float32)
      row[0] = 0.0
      row[364:384] = 5.0
      arr[i, 0] = row
      arr[i, 1] = row
  return arr


def _write(tmp_path, examples, features, results, v2):
  out = tmp_path / ("v2on" if v2 else "v2off")
  out.mkdir()
  result = run_squad.write_predictions(
      examples, features, results, 20, 30, True,
      str(out / "predictions.json"), str(out / "nbest_predictions.json"),
      str(out / "null_odds.json"), version_2_with_negative=v2,
      null_score_diff_threshold=0.0, verbose_logging=False)
  return out, result


PRED_RUNS = {
    "pred_v1_dev_first3_v2off": ("v1_dev_first3_eval", False, None),
    "pred_v1_dev_first3_v2on_without_crashing": ("v1_dev_first3_eval", True,
                                                 "drop_crashing"),
    "pred_v2_fixture_v2off": ("v2_fixture_eval", False, None),
    "pred_v2_fixture_v2on": ("v2_fixture_eval", True, None),
    "pred_v2_fixture_msl96_v2off": ("v2_fixture_eval_msl96", False, None),
    "pred_v2_fixture_msl96_v2on": ("v2_fixture_eval_msl96", True, None),
    "pred_v2_fixture_no_valid_span_v2off": ("v2_fixture_eval", False,
                                            "no_valid_span"),
}


@pytest.mark.parametrize("folder", sorted(PRED_RUNS))
def test_write_predictions_byte_identical(folder, tokenizer, tmp_path):
  name, v2, variant = PRED_RUNS[folder]
  examples, features = _convert(name, tokenizer)
  arr = _logits(name, features)
  if variant == "no_valid_span":
    arr = _crafted_no_valid_span(features, arr)
  results = _results(features, arr)
  if variant == "drop_crashing":
    crashing = set(_summary()["predictions/pred_v1_dev_first3_v2on"]
                   ["crashing_qas_ids"])
    keep = [i for i, e in enumerate(examples) if e.qas_id not in crashing]
    renumber = {old: new for new, old in enumerate(keep)}
    examples = [examples[i] for i in keep]
    features = [run_squad.InputFeatures(
        f.unique_id, renumber[f.example_index], f.doc_span_index, f.tokens,
        f.token_to_orig_map, f.token_is_max_context, f.input_ids,
        f.input_mask, f.segment_ids) for f in features
                if f.example_index in renumber]
  out, _ = _write(tmp_path, examples, features, results, v2)
  names = ["predictions.json", "nbest_predictions.json"]
  if v2:
    names.append("null_odds.json")
  else:
    assert not (out / "null_odds.json").exists()
  for fname in names:
    assert (out / fname).read_bytes() == _read_bytes(SQUAD / folder / fname), (
        fname)


def test_v2_no_crash_on_questions_that_crashed_the_original(tokenizer,
                                                            tmp_path):
  examples, features = _convert("v1_dev_first3_eval", tokenizer)
  results = _results(features, _logits("v1_dev_first3_eval", features))
  summary = _summary()["predictions/pred_v1_dev_first3_v2on"]
  crashing = summary["crashing_qas_ids"]
  _, result = _write(tmp_path, examples, features, results, True)
  ref_dir = SQUAD / "pred_v1_dev_first3_v2on_without_crashing"
  ref_preds = json.loads(_read_bytes(ref_dir / "predictions.json"))
  ref_odds = json.loads(_read_bytes(ref_dir / "null_odds.json"))
  assert len(result.predictions) == 1169
  for qas_id in crashing:
    assert result.predictions[qas_id] == ""
    assert [e["text"] for e in result.nbest[qas_id]] == [""]
    assert result.best_non_null_text[qas_id] is None
    # score_null + 10000: above every real question's odds.
    assert result.null_odds[qas_id] > 9000
    assert result.null_odds[qas_id] > max(ref_odds.values())
  for qas_id, text in ref_preds.items():
    assert result.predictions[qas_id] == text
    assert result.null_odds[qas_id] == ref_odds[qas_id]
  # With v2 off the same 57 questions fall back to "empty" (the original's
  # consistency check).
  off = json.loads(_read_bytes(SQUAD / "pred_v1_dev_first3_v2off" /
                               "predictions.json"))
  assert sorted(k for k, v in off.items() if v == "empty") == sorted(crashing)


def test_v2_no_crash_no_valid_span(tokenizer, tmp_path):
  examples, features = _convert("v2_fixture_eval", tokenizer)
  arr = _crafted_no_valid_span(features, _logits("v2_fixture_eval", features))
  _, result = _write(tmp_path, examples, features, _results(features, arr),
                     True)
  first = examples[0].qas_id
  assert result.predictions[first] == ""
  assert result.nbest[first] == [collections.OrderedDict(
      [("text", ""), ("probability", 1.0), ("start_logit", 0.0),
       ("end_logit", 0.0)])]
  assert result.null_odds[first] == 0.0 + 10000.0
  ref = json.loads(_read_bytes(SQUAD / "pred_v2_fixture_v2on" /
                               "predictions.json"))
  for ex in examples[1:]:
    assert result.predictions[ex.qas_id] == ref[ex.qas_id]


def test_empty_context_does_not_crash(tokenizer, tmp_path):
  examples = [run_squad.SquadExample("q1", "what?", []),
              run_squad.SquadExample("q2", "who?", ["Bob", "ran"])]
  features = []
  run_squad.convert_examples_to_features(examples, tokenizer, 32, 8, 8, False,
                                         features.append)
  assert [f.example_index for f in features] == [1]
  results = [run_squad.RawResult(features[0].unique_id, [0.0] * 32,
                                 [0.0] * 32)]
  for v2 in (False, True):
    _, result = _write(tmp_path, examples, features, results, v2)
    assert result.predictions["q1"] == ("" if v2 else "empty")


def test_get_final_text_reference():
  cases = _jsonl(SQUAD / "get_final_text.jsonl")
  assert len(cases) == 77
  for c in cases:
    got = run_squad.get_final_text(c["pred_text"], c["orig_text"],
                                   c["do_lower_case"], verbose_logging=False)
    assert got == c["result"], c


def test_softmax_and_best_indexes():
  assert run_squad._compute_softmax([]) == []
  probs = run_squad._compute_softmax([1.0, 2.0, 3.0])
  ref = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
  np.testing.assert_allclose(probs, ref, rtol=1e-15)
  assert run_squad._get_best_indexes([0.5, 2.0, 2.0, -1.0, 2.0], 3) == [1, 2, 4]


# ---------------------------------------------------------------------------
# Fixes, flags and bad input
# ---------------------------------------------------------------------------


def test_drop_out_of_span_chunks(tokenizer):
  inp, _, _, msl, stride, mql = FEATURE_RUNS["v2_fixture_train_msl96"]
  examples = run_squad.read_squad_examples(
      str(require(SQUAD / "inputs" / inp)), True, version_2_with_negative=True)
  dropped = []
  run_squad.convert_examples_to_features(examples, tokenizer, msl, stride, mql,
                                         True, dropped.append,
                                         drop_out_of_span_chunks=True)
  ref = _jsonl(SQUAD / "v2_fixture_train_msl96.features.jsonl")
  kept = [r for r in ref
          if r["is_impossible"] or (r["start_position"], r["end_position"]) !=
          (0, 0)]
  assert len(dropped) == len(kept) < len(ref)
  for i, (f, r) in enumerate(zip(dropped, kept)):
    assert f.unique_id == 1000000000 + i
    assert (f.example_index, f.doc_span_index, f.tokens, f.start_position,
            f.end_position) == (r["example_index"], r["doc_span_index"],
                                r["tokens"], r["start_position"],
                                r["end_position"])
  # every possible question keeps at least one window, labelled inside it
  for f in dropped:
    if not f.is_impossible:
      assert 0 < f.start_position <= f.end_position


def _write_json(tmp_path, obj, name="in.json"):
  path = tmp_path / name
  path.write_text(obj if isinstance(obj, str) else json.dumps(obj),
                  encoding="utf-8")
  return str(path)


def test_bad_input_messages(tmp_path):
  with pytest.raises(ValueError, match=r"not valid JSON \(line 1, column"):
    run_squad.read_squad_examples(_write_json(tmp_path, '{"data": ['), False)
  with pytest.raises(ValueError, match=r"missing field 'data'"):
    run_squad.read_squad_examples(_write_json(tmp_path, {"x": 1}), False)
  doc = {"data": [{"title": "T", "paragraphs": [
      {"context": "Bob ran home.", "qas": [{"id": "q1"}]}]}]}
  with pytest.raises(ValueError, match=r"missing field 'question' in article "
                     r"0 \('T'\), paragraph 0, question 0 \(id q1\)"):
    run_squad.read_squad_examples(_write_json(tmp_path, doc), False)
  doc["data"][0]["paragraphs"][0]["qas"][0]["question"] = "Who?"
  with pytest.raises(ValueError, match=r"missing field 'is_impossible'.*q1"):
    run_squad.read_squad_examples(_write_json(tmp_path, doc), True,
                                  version_2_with_negative=True)
  with pytest.raises(ValueError, match="exactly 1 answer"):
    run_squad.read_squad_examples(
        str(require(SQUAD / "inputs" / "squad_v1.1_dev_first3.json")), True,
        version_2_with_negative=False)
  with pytest.raises(FileNotFoundError, match="nope.json"):
    run_squad.read_squad_examples(str(tmp_path / "nope.json"), False)


def test_mismatched_answers_are_counted_and_skipped(tmp_path):
  qas = [
      {"id": "ok", "question": "Who?",
       "answers": [{"text": "Bob", "answer_start": 0}]},
      {"id": "wrong_text", "question": "Who?",
       "answers": [{"text": "Alice", "answer_start": 0}]},
      {"id": "out_of_range", "question": "Who?",
       "answers": [{"text": "home", "answer_start": 400}]},
  ]
  path = _write_json(tmp_path, {"data": [{"paragraphs": [
      {"context": "Bob ran home.", "qas": qas}]}]})
  examples, stats = run_squad._read_squad_examples(path, True, False)
  assert [e.qas_id for e in examples] == ["ok"]
  assert stats.num_questions == 3
  assert stats.num_skipped == 2
  assert stats.skipped_qas_ids == ["wrong_text", "out_of_range"]


def test_query_too_long_for_sequence(tokenizer):
  ex = run_squad.SquadExample("q", "one two three four five", ["a", "b"])
  with pytest.raises(ValueError, match="max_seq_length"):
    run_squad.convert_examples_to_features([ex], tokenizer, 8, 4, 64, False,
                                           lambda f: None)


def test_repr_shows_position_zero():
  ex = run_squad.SquadExample("q", "Who?", ["Bob"], "Bob", 0, 0, False)
  assert "start_position: 0" in repr(ex)


# ---------------------------------------------------------------------------
# EM / F1
# ---------------------------------------------------------------------------


def test_normalize_answer():
  assert run_squad.normalize_answer("The  Cat's, hat!") == "cats hat"
  assert run_squad.normalize_answer("an apple a day") == "apple day"
  assert run_squad.normalize_answer("Theatre") == "theatre"
  assert run_squad.normalize_answer(" A ") == ""


def _articles(qas):
  return [{"paragraphs": [{"context": "x", "qas": [
      {"id": k, "question": "?", "answers": [{"text": t, "answer_start": 0}
                                             for t in answers]}
      for k, answers in qas]}]}]


def test_evaluate_v1_by_hand():
  arts = _articles([("a", ["Denver Broncos", "The Broncos"]),
                    ("b", ["Santa Clara, California"]),
                    ("c", ["1990"])])
  preds = {"a": "broncos", "b": "Santa Clara", "c": ""}
  res = run_squad.evaluate_v1(arts, preds)
  # a: EM 1 ("the broncos" -> "broncos"), b: F1 2*(1*2/3)/(1+2/3) = 0.8, c: 0
  assert res["exact_match"] == pytest.approx(100.0 / 3)
  assert res["f1"] == pytest.approx(100.0 * (1 + 0.8 + 0) / 3)
  # a missing prediction scores 0 and still counts in the total
  res = run_squad.evaluate_v1(arts, {"a": "Denver Broncos"})
  assert res["exact_match"] == pytest.approx(100.0 / 3)


def test_evaluate_v2_by_hand():
  arts = _articles([("a", ["Denver"]), ("b", []), ("c", []),
                    ("d", ["the cat sat"])])
  preds = {"a": "Denver", "b": "", "c": "something", "d": "cat"}
  res = run_squad.evaluate_v2(arts, preds)
  # d: P=1, R=1/2 -> F1 2/3; no-answer b right, c wrong
  assert res["exact"] == pytest.approx(100.0 * 2 / 4)
  assert res["f1"] == pytest.approx(100.0 * (1 + 1 + 0 + 2 / 3) / 4)
  assert (res["HasAns_total"], res["NoAns_total"]) == (2, 2)
  assert res["NoAns_exact"] == pytest.approx(50.0)
  assert res["HasAns_f1"] == pytest.approx(100.0 * (1 + 2 / 3) / 2)
  # na_probs above 1.0 turn a prediction into "no answer"
  odds = {"a": -3.0, "b": 0.5, "c": 2.0, "d": 5.0}
  res = run_squad.evaluate_v2(arts, preds, na_probs=odds)
  assert res["exact"] == pytest.approx(100.0 * 3 / 4)   # c right, d wrong
  # sweep: null for odds > t; best: answer a only (t=-3): a, b, c right, d wrong
  assert res["best_exact"] == pytest.approx(75.0)
  assert res["best_exact_thresh"] == -3.0


def test_null_threshold_search_matches_brute_force():
  rng = np.random.RandomState(1)
  qas, best, odds = [], {}, {}
  for i in range(40):
    k = "q%d" % i
    has = rng.rand() < 0.5
    qas.append((k, ["red apple pie"] if has else []))
    best[k] = rng.choice(["red apple pie", "apple", "blue", "pie tin"])
    odds[k] = float(rng.randint(-6, 6))
  best["q0"] = None
  arts = _articles(qas)
  got = run_squad.search_null_threshold(arts, best, odds)

  def f1_at(t):
    preds = {k: ("" if odds[k] > t or best[k] is None else best[k])
             for k, _ in qas}
    return run_squad.evaluate_v2(arts, preds)["f1"]

  brute = max(f1_at(t) for t in sorted(set(odds.values())) + [-100.0])
  assert got["f1"] == pytest.approx(brute)
  assert f1_at(got["best_null_score_diff_threshold"]) == pytest.approx(brute)


@pytest.mark.parametrize("name", ["v2_fixture_train", "v2_fixture_eval_msl96"])
def test_tfrecord_bytes_match_reference(name, tokenizer, tmp_path):
  # The reference was written with insertion-ordered map entries; our encoder
  # writes the same order, so even the bytes agree.
  _, features = _convert(name, tokenizer)
  path = tmp_path / "out.tf_record"
  writer = run_squad.FeatureWriter(str(path), is_training=FEATURE_RUNS[name][1])
  for f in features:
    writer.process_feature(f)
  writer.close()
  assert path.read_bytes() == (SQUAD / ("%s.tfrecord" % name)).read_bytes()
  assert not list(tmp_path.glob("*.tmp-*"))


def test_serialize_matches_protobuf():
  values = [("a", [0, 1, 127, 128, 16383, 16384, 2**40, -1, -2**63]),
            ("b", [1000000000]), ("empty", [])]
  ours = run_squad._serialize_int64_example(values)
  parsed = tf.train.Example.FromString(ours)
  assert {k: list(v.int64_list.value) for k, v in
          parsed.features.feature.items()} == dict(values)


# ---------------------------------------------------------------------------
# Model, loss and the script end to end
# ---------------------------------------------------------------------------

import subprocess  # pylint: disable=g-import-not-at-top,g-bad-import-order
import sys  # pylint: disable=g-import-not-at-top,g-bad-import-order

import modeling  # pylint: disable=g-import-not-at-top,g-bad-import-order

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=37,
            max_position_embeddings=64, type_vocab_size=2)


def test_squad_model_head_and_loss_against_numpy():
  config = modeling.BertConfig(**TINY)
  task = run_squad.SquadTask(config)
  model = task.create_model()
  names = list(model.named_variables())
  assert names[-2:] == ["cls/squad/output_weights", "cls/squad/output_bias"]
  assert tuple(model.output_weights.shape) == (2, 32)
  assert names[0] == "bert/embeddings/word_embeddings"
  model.output_bias.assign([0.3, -0.2])
  rng = np.random.RandomState(3)
  features = {
      "unique_ids": tf.constant([7, 8, 9]),
      "input_ids": tf.constant(rng.randint(0, 99, size=[3, 12]), tf.int32),
      "input_mask": tf.constant([[1] * 12, [1] * 8 + [0] * 4, [1] * 5 + [0] * 7],
                                tf.int32),
      "segment_ids": tf.constant([[0] * 6 + [1] * 6] * 3, tf.int32),
      "start_positions": tf.constant([1, 0, 4], tf.int32),
      "end_positions": tf.constant([3, 0, 11], tf.int32),
  }
  out = task.predict(model, features)
  seq = model.bert(features["input_ids"], features["input_mask"],
                   features["segment_ids"]).sequence_output.numpy()
  w, b = model.output_weights.numpy(), model.output_bias.numpy()
  logits = seq @ w.T + b  # [B, S, 2]
  np.testing.assert_allclose(out["start_logits"].numpy(), logits[..., 0],
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out["end_logits"].numpy(), logits[..., 1],
                             rtol=1e-5, atol=1e-5)
  assert list(out["unique_ids"].numpy()) == [7, 8, 9]

  def ce(lg, pos):
    lg = lg - lg.max(-1, keepdims=True)
    logp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
    return -np.mean(logp[np.arange(len(pos)), pos])

  loss, logs = task.compute_loss(model, features, training=False)
  expected = (ce(logits[..., 0], [1, 0, 4]) + ce(logits[..., 1], [3, 0, 11])) / 2
  np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
  np.testing.assert_allclose(logs["start_loss"].numpy(),
                             ce(logits[..., 0], [1, 0, 4]), rtol=1e-5)


def _run_script(args, cwd):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  return subprocess.run(
      [sys.executable, os.path.join(os.path.dirname(os.path.dirname(
          os.path.abspath(__file__))), "run_squad.py")] + args,
      cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_end_to_end_tiny_model_v2(tmp_path):
  fixture = str(require(SQUAD / "inputs" / "squad_v2_fixture_dev.json"))
  config = tmp_path / "bert_config.json"
  config.write_text(json.dumps(dict(TINY, vocab_size=30522,
                                    max_position_embeddings=128)))
  out = tmp_path / "out"
  common = ["--bert_config_file=%s" % config, "--vocab_file=%s" % VOCAB,
            "--output_dir=%s" % out, "--version_2_with_negative",
            "--max_seq_length=96", "--doc_stride=32", "--max_query_length=24"]
  proc = _run_script(common + [
      "--train_file=%s" % fixture, "--predict_file=%s" % fixture,
      "--do_train", "--do_predict", "--do_eval", "--null_threshold_search",
      "--train_batch_size=8", "--num_train_epochs=2", "--learning_rate=1e-3",
      "--predict_batch_size=16"], tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  # 14 questions / 8 * 2 epochs -> int(3.5) = 3 steps, counted on questions
  assert "Num steps = 3" in proc.stderr
  assert "Num split examples = 52" in proc.stderr
  variables = dict(tf.train.list_variables(str(out / "model.ckpt-3")))
  assert variables["cls/squad/output_weights"] == [2, 32]
  assert variables["cls/squad/output_bias"] == [2]
  qids = [e.qas_id for e in run_squad.read_squad_examples(fixture, False)]
  preds = json.loads((out / "predictions.json").read_text())
  nbest = json.loads((out / "nbest_predictions.json").read_text())
  odds = json.loads((out / "null_odds.json").read_text())
  assert list(preds) == list(nbest) == list(odds) == qids
  for qas_id, entries in nbest.items():
    assert 1 <= len(entries) <= 21
    assert list(entries[0]) == ["text", "probability", "start_logit",
                                "end_logit"]
    assert abs(sum(e["probability"] for e in entries) - 1.0) < 1e-6
    assert preds[qas_id] in [e["text"] for e in entries]
  results = json.loads((out / "eval_results.json").read_text())
  expected = run_squad.evaluate_v2(
      run_squad._load_squad_json(fixture), preds, na_probs=odds)
  for key, value in expected.items():
    assert results[key] == pytest.approx(value)
  assert results["total"] == 14 and results["HasAns_total"] == 8
  assert "best_null_score_diff_threshold" in results
  assert results["at_best_threshold_f1"] >= results["f1"] - 1e-9
  assert not list(out.glob("*.tmp*"))


def test_script_rejects_bad_flags(tmp_path):
  config = tmp_path / "bert_config.json"
  config.write_text(json.dumps(TINY))
  proc = _run_script([
      "--bert_config_file=%s" % config, "--vocab_file=%s" % VOCAB,
      "--output_dir=%s" % (tmp_path / "o"), "--do_predict",
      "--predict_file=x.json", "--max_seq_length=64",
      "--max_query_length=64"], tmp_path)
  assert proc.returncode == 1
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("ERROR: The max_seq_length (64) must be greater than "
                         "max_query_length (64) + 3")


def test_run_eval_reads_prediction_files(tmp_path):
  """--do_eval alone: scores the files of a predict run (here the reference's)."""
  v1 = str(require(SQUAD / "inputs" / "squad_v1.1_dev_first3.json"))
  (tmp_path / "predictions.json").write_bytes(
      _read_bytes(SQUAD / "pred_v1_dev_first3_v2off" / "predictions.json"))
  res = run_squad.run_eval(v1, str(tmp_path), version_2_with_negative=False)
  assert list(res) == ["exact_match", "f1"]
  assert json.loads((tmp_path / "eval_results.json").read_text()) == res
  # random logits: some overlap, little exact match
  assert 0.0 <= res["exact_match"] < res["f1"] < 30.0
  preds = json.loads((tmp_path / "predictions.json").read_text())
  gold = {qa["id"]: [a["text"] for a in qa["answers"]]
          for art in json.load(open(v1))["data"] for p in art["paragraphs"]
          for qa in p["qas"]}
  em = np.mean([max(run_squad.normalize_answer(preds[k]) ==
                    run_squad.normalize_answer(g) for g in gs)
                for k, gs in gold.items()])
  assert res["exact_match"] == pytest.approx(100 * em)

  v2 = str(require(SQUAD / "inputs" / "squad_v2_fixture_dev.json"))
  out = tmp_path / "v2"
  out.mkdir()
  for name in ("predictions.json", "nbest_predictions.json", "null_odds.json"):
    (out / name).write_bytes(_read_bytes(SQUAD / "pred_v2_fixture_v2on" / name))
  res = run_squad.run_eval(v2, str(out), version_2_with_negative=True,
                           null_threshold_search=True)
  assert res["total"] == 14 and res["NoAns_total"] == 6
  # the exact search can only improve on the threshold used (0.0)
  assert res["at_best_threshold_f1"] >= res["f1"] - 1e-9
  with pytest.raises(FileNotFoundError, match="predictions.json"):
    run_squad.run_eval(v2, str(tmp_path / "nothing"), True)


def test_evaluate_v1_counts_a_repeated_id_as_the_official_script():
  """The official v1.1 script scores every question entry: an id that occurs
  twice counts twice in the sums and in the total (2 of 3 right: 66.67)."""
  arts = _articles([("a", ["Denver"]), ("a", ["Denver"]), ("b", ["1990"])])
  res = run_squad.evaluate_v1(arts, {"a": "Denver", "b": "1991"})
  assert res["exact_match"] == pytest.approx(200.0 / 3)
  assert res["f1"] == pytest.approx(200.0 / 3)


def test_do_eval_alone_needs_no_model_files(tmp_path):
  """--do_eval scores existing prediction files: no --vocab_file or
  --bert_config_file (they stay required, with one line, for predictions)."""
  v1 = str(require(SQUAD / "inputs" / "squad_v1.1_dev_first3.json"))
  (tmp_path / "predictions.json").write_bytes(
      _read_bytes(SQUAD / "pred_v1_dev_first3_v2off" / "predictions.json"))
  proc = _run_script(["--do_eval", "--predict_file=%s" % v1,
                      "--output_dir=%s" % tmp_path], tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert set(json.loads((tmp_path / "eval_results.json").read_text())) == {
      "exact_match", "f1"}
  proc = _run_script(["--do_predict", "--predict_file=%s" % v1,
                      "--output_dir=%s" % tmp_path], tmp_path)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == (
      "ERROR: --vocab_file is required with --do_train or --do_predict.")
