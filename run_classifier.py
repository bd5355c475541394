# coding=utf-8
# Copyright 2026 The BERT-on-TF2 project authors. Written for this project.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""BERT finetuning runner (sentence and sentence-pair classification, GLUE).

The command lines of the original `run_classifier.py` run unchanged and write
the same files (`train.tf_record`, `eval.tf_record`, `predict.tf_record`,
`eval_results.txt`, `test_results.tsv`). The Estimator/TPUEstimator loop is
replaced by the shared TF2 loop in `runner.py`; knowledge distillation is in
`distillation.py`.
"""

import collections
import csv
import math
import os
import sys

import common  # Before TensorFlow: keeps its C++ start-up lines quiet.
from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

if __name__ == "__main__":
  # distillation.py imports this module by name: let it find this run.
  sys.modules.setdefault("run_classifier", sys.modules[__name__])

import checkpoints  # pylint: disable=g-import-not-at-top
import distillation  # pylint: disable=g-import-not-at-top
import modeling
import optimization  # pylint: disable=unused-import  (public API of the original)
import runner
import tokenization

FLAGS = flags.FLAGS


_define = runner.define_flag


def define_flags():
  """Defines the flags of this script (idempotent)."""
  _define(flags.DEFINE_string, "data_dir", None,
      "The input data dir. Should contain the .tsv files (or other data files) "
      "for the task.")
  _define(flags.DEFINE_string, "task_name", None,
          "The name of the task to train.")
  runner.define_finetuning_flags()

  ## New parameters (not in the original)

  _define(flags.DEFINE_integer, "eval_every_n_steps", 0,
      "If > 0 (with --do_train and --do_eval), evaluate on the dev set every N "
      "training steps and at the end, and keep the checkpoint with the best "
      "dev metric in output_dir/best/.")

  _define(flags.DEFINE_string, "best_metric", None,
      "Metric that selects the best checkpoint for --eval_every_n_steps "
      "(higher is better, except for *loss). Default: eval_accuracy, or "
      "eval_pearson for sts-b.")

  _define(flags.DEFINE_bool, "allow_untrained_head", False,
      "Allow --do_eval/--do_predict without training when the checkpoint has "
      "no classifier head (output_weights/output_bias): the head is then "
      "random and the predictions meaningless.")

  _define(flags.DEFINE_string, "export_dir", None,
      "If set, export the fine-tuned classifier as a SavedModel here, with a "
      "'serving_default' signature on int tensors (input_ids, input_mask, "
      "segment_ids) and a 'serving_text' signature on raw strings (text_a, "
      "text_b) with the tokenizer in the graph.")

  _define(flags.DEFINE_string, "predict_text", None,
      "With --do_predict, classify this text instead of the task's test set: "
      "one example (a TAB separates the two sentences of a pair), or '-' to "
      "read one example per line from stdin. Prints one line per example on "
      "stdout: the predicted label, the probability of each label and the "
      "text (the prediction and the text for a regression task). "
      "--data_dir is then only needed for --do_train/--do_eval.")

  _define(flags.DEFINE_bool, "dynamic_padding", True,
      "With --do_predict, run prediction on length-bucketed batches: each "
      "window of examples is sorted by length and each batch padded only to "
      "its longest example (rounded up), so short texts cost less. "
      "test_results.tsv keeps the input order; probabilities equal the "
      "fixed-length ones to float rounding. One device only (across several "
      "replicas, batches keep max_seq_length). --nodynamic_padding: the "
      "original's fixed-length batches.")

  _define(flags.DEFINE_bool, "write_eval_predictions", True,
      "With --do_eval, also write eval_predictions.tsv (guid, gold label, "
      "predicted label, per-label probabilities) and eval_extra_metrics.txt "
      "(F1 for binary tasks, Matthews correlation for CoLA).")

  distillation.define_flags()


class InputExample(object):
  """A single training/test example for simple sequence classification."""

  def __init__(self, guid, text_a, text_b=None, label=None):
    self.guid = guid
    self.text_a = text_a
    self.text_b = text_b
    self.label = label


class PaddingInputExample(object):
  """Fake example so the num input examples is a multiple of the batch size
  (on TPU, eval/predict batches have a fixed size)."""


class InputFeatures(object):
  """A single set of features of data."""

  def __init__(self, input_ids, input_mask, segment_ids, label_id,
               is_real_example=True):
    self.input_ids = input_ids
    self.input_mask = input_mask
    self.segment_ids = segment_ids
    self.label_id = label_id
    self.is_real_example = is_real_example


class DataProcessor(object):
  """Base class for data converters for sequence classification data sets."""

  def get_train_examples(self, data_dir):
    """Gets a collection of `InputExample`s for the train set."""
    raise ValueError(
        "%s has no training set (data_dir=%s)" % (type(self).__name__, data_dir))

  def get_dev_examples(self, data_dir):
    """Gets a collection of `InputExample`s for the dev set."""
    raise ValueError(
        "%s has no dev set (data_dir=%s)" % (type(self).__name__, data_dir))

  def get_test_examples(self, data_dir):
    """Gets a collection of `InputExample`s for prediction."""
    raise ValueError(
        "%s has no test set (data_dir=%s)" % (type(self).__name__, data_dir))

  def get_labels(self):
    """Gets the list of labels for this data set (None for regression)."""
    raise ValueError("%s defines no labels" % type(self).__name__)

  @classmethod
  def _read_tsv(cls, input_file, quotechar=None):
    """All rows of a TSV file as lists of strings: UTF-8 whatever the locale,
    every "\\r" dropped (as TF's line reader did), quotes kept in the fields
    unless `quotechar` is given."""
    return [row for _, row in _read_tsv_rows(input_file, quotechar)]


def _read_tsv_rows(input_file, quotechar=None):
  """[(line_number, row)] of a TSV file; see DataProcessor._read_tsv."""
  if not tf.io.gfile.exists(input_file):
    raise FileNotFoundError(
        "%s: file not found (check --data_dir and --task_name)" % input_file)
  with tf.io.gfile.GFile(input_file, "rb") as f:
    data = f.read().replace(b"\r", b"")
  try:
    # Lines end at "\n" only, a last line without one counts (TF's readline).
    lines = data.decode("utf-8").split("\n")
    if lines[-1] == "":
      lines.pop()
  except UnicodeDecodeError as e:
    column = e.start - data.rfind(b"\n", 0, e.start)
    raise ValueError(
        "%s: line %d: not valid UTF-8 (byte 0x%02x at column %d); re-save the "
        "file as UTF-8" % (input_file, data.count(b"\n", 0, e.start) + 1,
                           data[e.start], column)) from None
  if quotechar is None:
    reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
  else:
    reader = csv.reader(lines, delimiter="\t", quotechar=quotechar)
  return [(i + 1, row) for i, row in enumerate(reader)]


class _TsvFile(object):
  """The non-blank rows of one TSV file, all with the same number of columns
  (more than `columns_used`, the largest column index read; -1: the last)."""

  def __init__(self, input_file, columns_used):
    self.path = input_file
    rows = _read_tsv_rows(input_file)
    blank_lines = [n for n, row in rows if not row]
    self.rows = [(n, row) for n, row in rows if row]
    if blank_lines:
      logging.info("%s: skipped %d blank line(s) (first: line %d)", input_file,
                   len(blank_lines), blank_lines[0])
    if not self.rows:
      return
    width = len(self.rows[0][1])
    for n, row in self.rows:
      if len(row) != width or len(row) <= columns_used:
        raise ValueError(
            "%s: line %d: expected %d TAB-separated columns (as on line %d), "
            "found %d: %s" %
            (input_file, n, max(width, columns_used + 1), self.rows[0][0],
             len(row), shorten("\t".join(row))))

  def check_label(self, line_number, label, label_list):
    """Raises ValueError for a label outside `label_list`."""
    if label_list is None:
      try:
        float(label)
      except ValueError:
        raise ValueError(
            "%s: line %d: label %r is not a number (regression task)" %
            (self.path, line_number, label)) from None
    elif label not in label_list:
      raise ValueError(
          "%s: line %d: label %r is not one of the task's labels %s" %
          (self.path, line_number, label, label_list))


def shorten(text, limit=120):
  text = repr(text)
  return text if len(text) <= limit else text[:limit] + "..."


class XnliProcessor(DataProcessor):
  """Processor for the XNLI data set."""

  def __init__(self):
    self.language = "zh"

  def get_train_examples(self, data_dir):
    tsv = _TsvFile(os.path.join(data_dir, "multinli",
                                "multinli.train.%s.tsv" % self.language), 2)
    examples = []
    for n, line in tsv.rows:
      if n == 1:
        continue
      text_a, text_b, label = [tokenization.convert_to_unicode(x)
                               for x in line[:3]]
      if label == "contradictory":
        label = "contradiction"
      tsv.check_label(n, label, self.get_labels())
      examples.append(InputExample("train-%d" % (n - 1), text_a, text_b, label))
    return examples

  def get_dev_examples(self, data_dir):
    tsv = _TsvFile(os.path.join(data_dir, "xnli.dev.tsv"), 7)
    examples = []
    for n, line in tsv.rows:
      if n == 1 or tokenization.convert_to_unicode(line[0]) != self.language:
        continue
      label = tokenization.convert_to_unicode(line[1])
      tsv.check_label(n, label, self.get_labels())
      examples.append(InputExample(
          "dev-%d" % (n - 1), tokenization.convert_to_unicode(line[6]),
          tokenization.convert_to_unicode(line[7]), label))
    return examples

  def get_labels(self):
    return ["contradiction", "entailment", "neutral"]


class _GlueProcessor(DataProcessor):
  """A GLUE task laid out as train.tsv / dev.tsv / test.tsv in data_dir.

  Subclasses set the files and columns. guid is `<set>-<row index>` (the first
  row after the header is 1) or `<set>-<guid_column>`. The test set gets the
  first label (a placeholder, as in the original), a transfer set None.
  """

  train_file = "train.tsv"
  dev_file = "dev.tsv"
  dev_set_name = "dev"
  test_file = "test.tsv"
  labels = None
  text_a_column = 0
  text_b_column = None  # None: single-sentence task.
  label_column = -1
  test_text_a_column = 1
  test_text_b_column = None
  guid_column = None
  headerless_sets = ()

  def get_train_examples(self, data_dir):
    return self._create_examples(os.path.join(data_dir, self.train_file),
                                 "train")

  def get_dev_examples(self, data_dir):
    return self._create_examples(os.path.join(data_dir, self.dev_file),
                                 self.dev_set_name)

  def get_test_examples(self, data_dir):
    return self._create_examples(os.path.join(data_dir, self.test_file), "test")

  def get_transfer_examples(self, data_dir):
    """Unlabeled examples of data_dir/train.tsv, for distillation."""
    return self._create_examples(os.path.join(data_dir, self.train_file),
                                 "transfer")

  def get_labels(self):
    return None if self.labels is None else list(self.labels)

  def _create_examples(self, path, set_type):
    """Creates examples from one TSV file."""
    if set_type == "test":
      columns = [self.test_text_a_column, self.test_text_b_column]
    else:
      columns = [self.text_a_column, self.text_b_column]
    labeled = set_type not in ("test", "transfer")
    tsv = _TsvFile(path, max(c for c in columns + [self.guid_column] + (
        [self.label_column] if labeled else []) if c is not None))
    text = lambda line, column: (None if column is None else
                                 tokenization.convert_to_unicode(line[column]))
    header_set = "train" if set_type == "transfer" else set_type
    examples = []
    for n, line in tsv.rows:
      if n == 1 and header_set not in self.headerless_sets:
        continue
      guid = "%s-%s" % (set_type, n - 1 if self.guid_column is None else
                        text(line, self.guid_column))
      label = None
      if labeled:
        label = text(line, self.label_column)
        tsv.check_label(n, label, self.get_labels())
      elif set_type == "test":
        label = "0.0" if self.labels is None else self.labels[0]
      examples.append(InputExample(guid, text(line, columns[0]),
                                   text(line, columns[1]), label))
    return examples


class MnliProcessor(_GlueProcessor):
  """Processor for the MultiNLI data set (GLUE version)."""
  dev_file = "dev_matched.tsv"
  dev_set_name = "dev_matched"
  test_file = "test_matched.tsv"
  labels = ("contradiction", "entailment", "neutral")
  guid_column = 0
  text_a_column = test_text_a_column = 8
  text_b_column = test_text_b_column = 9


class MnliMismatchedProcessor(MnliProcessor):
  """MultiNLI with the mismatched dev/test sets (new; the original had none)."""
  dev_file = "dev_mismatched.tsv"
  dev_set_name = "dev_mismatched"
  test_file = "test_mismatched.tsv"


class MrpcProcessor(_GlueProcessor):
  """Processor for the MRPC data set (GLUE version)."""
  labels = ("0", "1")
  label_column = 0
  text_a_column = test_text_a_column = 3
  text_b_column = test_text_b_column = 4


class ColaProcessor(_GlueProcessor):
  """Processor for the CoLA data set (GLUE version): train.tsv and dev.tsv
  have no header; test.tsv has one (`index sentence`)."""
  labels = ("0", "1")
  headerless_sets = ("train", "dev")
  text_a_column = 3
  label_column = 1


class Sst2Processor(_GlueProcessor):
  """SST-2 (header `sentence label`; test `index sentence`)."""
  labels = ("0", "1")
  label_column = 1


class QnliProcessor(_GlueProcessor):
  """QNLI (header `index question sentence label`)."""
  labels = ("entailment", "not_entailment")
  text_a_column = test_text_a_column = 1
  text_b_column = test_text_b_column = 2
  label_column = 3


class RteProcessor(QnliProcessor):
  """RTE (header `index sentence1 sentence2 label`)."""


class WnliProcessor(QnliProcessor):
  """WNLI (header `index sentence1 sentence2 label`, labels 0/1)."""
  labels = ("0", "1")


class QqpProcessor(_GlueProcessor):
  """QQP (`id qid1 qid2 question1 question2 is_duplicate`; test `id q1 q2`)."""
  labels = ("0", "1")
  text_a_column = 3
  text_b_column = 4
  label_column = 5
  test_text_b_column = 2


class StsbProcessor(_GlueProcessor):
  """STS-B: regression on the score in the last column (labels are floats)."""
  text_a_column = test_text_a_column = 7
  text_b_column = test_text_b_column = 8


class AxProcessor(MnliProcessor):
  """The GLUE diagnostic set (AX): predict-only, with an MNLI model.

  data_dir holds `diagnostic.tsv` (`index sentence1 sentence2`); labels are
  MNLI's so that an MNLI fine-tuned checkpoint can be used directly.
  """
  test_file = "diagnostic.tsv"
  test_text_a_column = 1
  test_text_b_column = 2

  def get_train_examples(self, data_dir):
    raise ValueError(
        "task ax (GLUE diagnostic) has no training set: fine-tune with "
        "--task_name=mnli, then run --task_name=ax --do_predict with that "
        "checkpoint as --init_checkpoint")

  def get_dev_examples(self, data_dir):
    raise ValueError(
        "task ax (GLUE diagnostic) has no dev set: only --do_predict works")


PROCESSORS = {
    "cola": ColaProcessor,
    "mnli": MnliProcessor,
    "mnli-mm": MnliMismatchedProcessor,
    "mrpc": MrpcProcessor,
    "xnli": XnliProcessor,
    "sst-2": Sst2Processor,
    "qnli": QnliProcessor,
    "rte": RteProcessor,
    "wnli": WnliProcessor,
    "qqp": QqpProcessor,
    "sts-b": StsbProcessor,
    "ax": AxProcessor,
}


def get_processor(task_name):
  """Returns the processor instance for `task_name` (case-insensitive)."""
  name = (task_name or "").lower()
  if name not in PROCESSORS:
    raise ValueError("Task not found: %s (known tasks: %s)" %
                     (task_name, ", ".join(sorted(PROCESSORS))))
  return PROCESSORS[name]()


def is_regression(label_list):
  """True for a regression task (label_list None, e.g. STS-B)."""
  return label_list is None


def convert_single_example(ex_index, example, label_list, max_seq_length,
                           tokenizer):
  """Converts a single `InputExample` into a single `InputFeatures`."""
  if isinstance(example, PaddingInputExample):
    zeros = [0] * max_seq_length
    return InputFeatures(list(zeros), list(zeros), list(zeros),
                         0.0 if is_regression(label_list) else 0,
                         is_real_example=False)

  if is_regression(label_list):
    try:
      label_id = float(example.label)
    except (TypeError, ValueError):
      raise ValueError("example %s: label %r is not a number (regression task)"
                       % (example.guid, example.label)) from None
  else:
    label_map = {label: i for i, label in enumerate(label_list)}
    if example.label not in label_map:
      raise ValueError("example %s: label %r is not one of the labels %s" %
                       (example.guid, example.label, list(label_list)))
    label_id = label_map[example.label]

  tokens_a = tokenizer.tokenize(example.text_a)
  tokens_b = tokenizer.tokenize(example.text_b) if example.text_b else None
  if tokens_b:
    # Account for [CLS], [SEP], [SEP] with "- 3".
    _truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
  else:
    # Account for [CLS] and [SEP] with "- 2".
    tokens_a = tokens_a[0:(max_seq_length - 2)]

  # The BERT convention: [CLS] a [SEP] (b [SEP]), type ids 0 for the first
  # sequence (with [CLS] and its [SEP]) and 1 for the second. The [CLS]
  # vector is the classifier's "sentence vector".
  tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
  segment_ids = [0] * len(tokens)
  if tokens_b:
    tokens += tokens_b + ["[SEP]"]
    segment_ids += [1] * (len(tokens_b) + 1)
  input_ids = tokenizer.convert_tokens_to_ids(tokens)
  # 1 for real tokens, 0 for padding: only real tokens are attended to.
  input_mask = [1] * len(input_ids)
  padding = [0] * (max_seq_length - len(input_ids))
  input_ids += padding
  input_mask += padding
  segment_ids += padding

  if ex_index < 5:
    logging.info("*** Example ***")
    logging.info("guid: %s", example.guid)
    logging.info("tokens: %s", " ".join(
        [tokenization.printable_text(x) for x in tokens]))
    logging.info("input_ids: %s", " ".join([str(x) for x in input_ids]))
    logging.info("input_mask: %s", " ".join([str(x) for x in input_mask]))
    logging.info("segment_ids: %s", " ".join([str(x) for x in segment_ids]))
    logging.info("label: %s (id = %s)", example.label, label_id)

  return InputFeatures(input_ids, input_mask, segment_ids, label_id)


def _truncate_seq_pair(tokens_a, tokens_b, max_length):
  """Truncates a sequence pair in place to the maximum length, one token at a
  time from the longer one (a short sequence's tokens carry more)."""
  while len(tokens_a) + len(tokens_b) > max_length:
    if len(tokens_a) > len(tokens_b):
      tokens_a.pop()
    else:
      tokens_b.pop()


def _int_feature(values):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def feature_to_example(feature):
  """InputFeatures -> tf.train.Example in the original feature order."""
  features = collections.OrderedDict()
  features["input_ids"] = _int_feature(feature.input_ids)
  features["input_mask"] = _int_feature(feature.input_mask)
  features["segment_ids"] = _int_feature(feature.segment_ids)
  if isinstance(feature.label_id, float):
    features["label_ids"] = tf.train.Feature(
        float_list=tf.train.FloatList(value=[feature.label_id]))
  else:
    features["label_ids"] = _int_feature([feature.label_id])
  features["is_real_example"] = _int_feature([int(feature.is_real_example)])
  return tf.train.Example(features=tf.train.Features(feature=features))


def file_based_convert_examples_to_features(
    examples, label_list, max_seq_length, tokenizer, output_file):
  """Convert a set of `InputExample`s to a TFRecord file (written atomically;
  `label_ids` is a float for regression tasks)."""
  with common.atomic_path(output_file) as tmp_file:
    with tf.io.TFRecordWriter(tmp_file) as writer:
      for feature in _convert_examples(examples, label_list, max_seq_length,
                                       tokenizer):
        writer.write(feature_to_example(feature).SerializeToString())


def file_based_input_fn_builder(input_file, seq_length, is_training,
                                drop_remainder, is_regression=False,
                                extra_features=None):
  """Creates an `input_fn` closure to be passed to the runner;
  `extra_features` (name -> tf.io spec) adds features, e.g. distillation's."""
  name_to_features = {
      "input_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
      "input_mask": tf.io.FixedLenFeature([seq_length], tf.int64),
      "segment_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
      "label_ids": tf.io.FixedLenFeature(
          [], tf.float32 if is_regression else tf.int64),
      "is_real_example": tf.io.FixedLenFeature([], tf.int64),
  }
  name_to_features.update(extra_features or {})

  def input_fn(params):
    d = tf.data.TFRecordDataset(input_file)
    d = runner.shard_for_context(d, params.get("input_context"))
    if is_training:
      d = d.repeat().shuffle(buffer_size=100)
    d = d.map(lambda record: runner.decode_record(record, name_to_features),
              num_parallel_calls=tf.data.AUTOTUNE)
    d = d.batch(params["batch_size"], drop_remainder=drop_remainder)
    return d.prefetch(tf.data.AUTOTUNE)

  return input_fn


def input_fn_builder(features, seq_length, is_training, drop_remainder):
  """Creates an in-memory `input_fn` closure (the Colab's API; demo-sized
  data). It has no `is_real_example` feature: every example counts."""
  regression = any(isinstance(f.label_id, float) for f in features)

  def column(name, shape, dtype=tf.int32):
    return tf.constant([getattr(f, name) for f in features], shape=shape,
                       dtype=dtype)

  def input_fn(params):
    n = len(features)
    d = tf.data.Dataset.from_tensor_slices({
        "input_ids": column("input_ids", [n, seq_length]),
        "input_mask": column("input_mask", [n, seq_length]),
        "segment_ids": column("segment_ids", [n, seq_length]),
        "label_ids": column("label_id", [n],
                            tf.float32 if regression else tf.int32),
    })
    d = runner.shard_for_context(d, params.get("input_context"))
    if is_training:
      d = d.repeat().shuffle(buffer_size=100)
    return d.batch(batch_size=params["batch_size"],
                   drop_remainder=drop_remainder)

  return input_fn


def convert_examples_to_features(examples, label_list, max_seq_length,
                                 tokenizer):
  """Convert a set of `InputExample`s to a list of `InputFeatures`."""
  return list(_convert_examples(examples, label_list, max_seq_length,
                                tokenizer))


def _convert_examples(examples, label_list, max_seq_length, tokenizer):
  for (ex_index, example) in enumerate(examples):
    if ex_index % 10000 == 0:
      logging.info("Writing example %d of %d", ex_index, len(examples))
    yield convert_single_example(ex_index, example, label_list,
                                 max_seq_length, tokenizer)


# ----------------------------------------------------------------------------
# Model.
# ----------------------------------------------------------------------------


class ClassifierModel(tf.Module):
  """BERT plus the original classification head.

  The head: root-scope `output_weights` [num_labels, hidden] (stddev 0.02
  whatever the config's initializer_range) and `output_bias` [num_labels]; a
  regression task (STS-B) has num_labels = 1. `encoder` (e.g. a TF-Hub model,
  of width `hidden_size`) may replace the `modeling.BertModel`.
  """

  def __init__(self, bert_config, num_labels, is_training=False,
               options=None, encoder=None, hidden_size=None):
    super(ClassifierModel, self).__init__(name="classifier")
    self.num_labels = int(num_labels)
    if encoder is None:
      encoder = modeling.BertModel(bert_config, is_training=is_training,
                                   options=options)
      hidden_size = bert_config.hidden_size
    self.bert = encoder
    self.hidden_size = int(hidden_size)
    self.output_weights = modeling.create_variable(
        "output_weights", [self.num_labels, self.hidden_size],
        modeling.create_initializer(0.02))
    self.output_bias = modeling.create_variable(
        "output_bias", [self.num_labels], modeling.zeros_initializer)

  def named_variables(self):
    """OrderedDict original name -> variable (encoder's, then the head's)."""
    named = collections.OrderedDict(self.bert.named_variables())
    named["output_weights"] = self.output_weights
    named["output_bias"] = self.output_bias
    return named

  def logits(self, input_ids, input_mask, segment_ids, training=False):
    """[batch, num_labels] float32 logits."""
    output_layer = self.bert(
        input_ids, input_mask=input_mask, token_type_ids=segment_ids,
        training=training).pooled_output
    output_layer = tf.cast(output_layer, tf.float32)
    if training:
      # I.e., 0.1 dropout (fixed, whatever the config says).
      output_layer = tf.nn.dropout(output_layer, rate=0.1)
    logits = tf.matmul(output_layer, self.output_weights, transpose_b=True)
    return tf.nn.bias_add(logits, self.output_bias)

  def __call__(self, input_ids, input_mask=None, segment_ids=None,
               training=False):
    return self.logits(input_ids, input_mask, segment_ids, training=training)


def classifier_loss(logits, labels, num_labels, regression=False):
  """(loss, per_example_loss, probabilities) of the original head; for
  regression the "probabilities" are the predicted values [batch] and the
  loss is the mean squared error."""
  if regression:
    predictions = logits[:, 0]
    per_example_loss = tf.square(predictions - tf.cast(labels, tf.float32))
    return tf.reduce_mean(per_example_loss), per_example_loss, predictions
  probabilities = tf.nn.softmax(logits, axis=-1)
  log_probs = tf.nn.log_softmax(logits, axis=-1)
  one_hot_labels = tf.one_hot(labels, depth=num_labels, dtype=tf.float32)
  per_example_loss = -tf.reduce_sum(one_hot_labels * log_probs, axis=-1)
  return tf.reduce_mean(per_example_loss), per_example_loss, probabilities


def create_model(bert_config, is_training, input_ids, input_mask, segment_ids,
                 labels, num_labels, use_one_hot_embeddings, model=None,
                 regression=False):
  """Creates a classification model (the original's function; `model`, if
  given, is used instead of a new one). Returns (loss, per_example_loss,
  logits, probabilities or, for regression, the predicted values)."""
  if model is None:
    model = ClassifierModel(
        bert_config, 1 if regression else num_labels, is_training=is_training,
        options=modeling.EncoderOptions(use_one_hot_embeddings))
  logits = model.logits(input_ids, input_mask, segment_ids,
                        training=is_training)
  loss, per_example_loss, probabilities = classifier_loss(
      logits, labels, num_labels, regression)
  return (loss, per_example_loss, logits, probabilities)


# The model code is plain TF (Python control flow only on Python values):
# AutoGraph's source conversion of the whole encoder only costs tracing time.
_no_autograph = tf.autograph.experimental.do_not_convert


class ClassifierTask(object):
  """The classifier for the shared loop (see runner.py's task protocol);
  `model_fn` may build the model instead (e.g. with a TF-Hub encoder)."""

  def __init__(self, bert_config, label_list, options=None, model_fn=None):
    self.bert_config = bert_config
    self.regression = is_regression(label_list)
    self.num_labels = 1 if self.regression else len(label_list)
    self.options = options
    self.model_fn = model_fn

  def create_model(self):
    if self.model_fn is not None:
      return self.model_fn()
    return ClassifierModel(self.bert_config, self.num_labels,
                           options=self.options)

  def _forward(self, model, features, training):
    logits = model.logits(features["input_ids"], features["input_mask"],
                          features["segment_ids"], training=training)
    loss, per_example_loss, _ = classifier_loss(
        logits, features["label_ids"], self.num_labels, self.regression)
    return loss, per_example_loss, logits

  @_no_autograph
  def compute_loss(self, model, features, training):
    return self._forward(model, features, training)[0], {}

  @_no_autograph
  def eval_metrics(self, model, features):
    loss, per_example_loss, logits = self._forward(model, features, False)
    # Padding examples (is_real_example 0) do not count.
    weights = tf.cast(features.get("is_real_example",
                                   tf.ones_like(per_example_loss)), tf.float32)
    total = tf.reduce_sum(weights)
    metrics = {
        "eval_loss": (tf.reduce_sum(per_example_loss * weights), total),
        "loss": (loss, tf.constant(1.0)),
    }
    if not self.regression:
      predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
      correct = tf.cast(
          tf.equal(predictions, tf.cast(features["label_ids"], tf.int32)),
          tf.float32)
      metrics["eval_accuracy"] = (tf.reduce_sum(correct * weights), total)
    return metrics

  @_no_autograph
  def predict(self, model, features):
    logits = model.logits(features["input_ids"], features["input_mask"],
                          features["segment_ids"], training=False)
    if self.regression:
      return {"predictions": logits[:, 0]}
    return {"probabilities": tf.nn.softmax(logits, axis=-1)}


def model_fn_builder(bert_config, num_labels, init_checkpoint, learning_rate,
                     num_train_steps, num_warmup_steps, use_tpu,
                     use_one_hot_embeddings):
  """The original's builder in its TF2 form (`runner.with_train_args`): the
  classifier task (labels 0..N-1) for the loop."""
  del use_tpu  # The strategy is the loop's (runner.RunConfig).
  task = ClassifierTask(bert_config, list(range(num_labels)),
                        options=modeling.EncoderOptions(use_one_hot_embeddings))
  return runner.with_train_args(task, init_checkpoint, learning_rate,
                                num_train_steps, num_warmup_steps)


# ----------------------------------------------------------------------------
# Metrics and output files.
# ----------------------------------------------------------------------------


def _ranks(x):
  """Average ranks (ties share the mean rank), as Spearman's rho needs."""
  _, inverse, counts = np.unique(np.asarray(x, dtype=np.float64),
                                 return_inverse=True, return_counts=True)
  ends = np.cumsum(counts)
  return (ends - (counts - 1) / 2.0)[inverse]


def pearson(x, y):
  x = np.asarray(x, dtype=np.float64) - np.mean(x)
  y = np.asarray(y, dtype=np.float64) - np.mean(y)
  denom = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
  return float((x * y).sum()) / denom if denom else 0.0


def spearman(x, y):
  return pearson(_ranks(x), _ranks(y))


def _confusion(labels, predictions, positive=1):
  """(tp, fp, fn, tn) of the positive class."""
  gold = np.asarray(labels) == positive
  pred = np.asarray(predictions) == positive
  return (float(np.sum(pred & gold)), float(np.sum(pred & ~gold)),
          float(np.sum(~pred & gold)), float(np.sum(~pred & ~gold)))


def binary_f1(labels, predictions, positive=1):
  """(f1, precision, recall) of the positive class."""
  tp, fp, fn, _ = _confusion(labels, predictions, positive)
  precision = tp / (tp + fp) if tp + fp else 0.0
  recall = tp / (tp + fn) if tp + fn else 0.0
  f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
  return f1, precision, recall


def matthews_corrcoef(labels, predictions):
  tp, fp, fn, tn = _confusion(labels, predictions)
  denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
  return (tp * tn - fp * fn) / denom if denom else 0.0


def probability_header(label_list):
  if is_regression(label_list):
    return ["prediction"]
  return ["probability_%s" % label for label in label_list]


def _prediction_header(label_list):
  """The predicted label's column (none for regression) and the values'."""
  return ([] if is_regression(label_list) else ["predicted_label"]) + (
      probability_header(label_list))


def _prediction_row(prediction, label_list):
  """(the float32 values of a prediction, its label or None for regression)."""
  if is_regression(label_list):
    return [np.float32(prediction["predictions"])], None
  values = [np.float32(p) for p in prediction["probabilities"]]
  return values, label_list[int(np.argmax(values))]


def write_test_results(output_dir, examples, results, label_list,
                       num_actual_predict_examples, prefix="test"):
  """Writes test_results.tsv (the original's: str(float32) probabilities,
  or the prediction for regression, no header) and test_predictions.tsv (with
  a header, the guid and the predicted label); `prefix` replaces "test"."""
  regression = is_regression(label_list)
  results_lines = []
  predictions_lines = [
      "\t".join(["guid"] + _prediction_header(label_list)) + "\n"]
  logging.info("***** Predict results *****")
  for (i, prediction) in enumerate(results):
    if i >= num_actual_predict_examples:
      break
    values, label = _prediction_row(prediction, label_list)
    values = [str(v) for v in values]
    results_lines.append("\t".join(values) + "\n")
    row = [examples[i].guid] + ([] if regression else [label])
    predictions_lines.append("\t".join(row + values) + "\n")
  if len(results_lines) != num_actual_predict_examples:
    raise runner.UserError(
        "predicted %d examples but the test set has %d" %
        (len(results_lines), num_actual_predict_examples))
  common.write_text(os.path.join(output_dir, prefix + "_results.tsv"),
                    results_lines)
  common.write_text(os.path.join(output_dir, prefix + "_predictions.tsv"),
                    predictions_lines)


def eval_prediction_metrics(examples, results, label_list):
  """(metrics, lines of eval_predictions.tsv) from the per-example
  predictions of the real eval examples."""
  regression = is_regression(label_list)
  lines = ["\t".join(["guid", "label"] + _prediction_header(label_list)) +
           "\n"]
  gold, predicted = [], []
  for example, prediction in zip(examples, results):
    if isinstance(example, PaddingInputExample):
      break
    values, label = _prediction_row(prediction, label_list)
    row = [example.guid, example.label]
    if regression:
      gold.append(float(example.label))
      predicted.append(float(values[0]))
    else:
      gold.append(label_list.index(example.label))
      predicted.append(label_list.index(label))
      row.append(label)
    lines.append("\t".join(row + [str(v) for v in values]) + "\n")
  metrics = collections.OrderedDict()
  if regression:
    metrics["eval_pearson"] = pearson(predicted, gold)
    metrics["eval_spearman"] = spearman(predicted, gold)
  elif len(label_list) == 2:
    f1, precision, recall = binary_f1(gold, predicted)
    metrics["eval_f1"] = f1
    metrics["eval_precision"] = precision
    metrics["eval_recall"] = recall
    metrics["eval_mcc"] = matthews_corrcoef(gold, predicted)
  return metrics, lines


def text_examples(predict_text, label_list, stdin=None):
  """`--predict_text` as InputExamples: the text itself, or stdin's lines
  for '-'; a TAB splits a line into a sentence pair. Blank lines are skipped."""
  if predict_text == "-":
    lines = (stdin or sys.stdin).read().splitlines()
  else:
    lines = predict_text.replace("\\t", "\t").splitlines()
  label = 0.0 if is_regression(label_list) else label_list[0]
  examples = []
  for line in lines:
    line = tokenization.convert_to_unicode(line).strip("\r\n")
    if not line.strip():
      continue
    text_a, _, text_b = line.partition("\t")
    examples.append(InputExample("text-%d" % len(examples), text_a.strip(),
                                 text_b.strip() or None, label))
  if not examples:
    raise runner.UserError(
        "--predict_text%s holds no text to classify." %
        (" (stdin)" if predict_text == "-" else ""))
  return examples


def print_text_predictions(examples, results, label_list, out=None):
  """One TSV line per example on stdout: label, probabilities, text."""
  out = out or sys.stdout
  out.write("\t".join(_prediction_header(label_list) + ["text"]) + "\n")
  for example, prediction in zip(examples, results):
    text = example.text_a + ("\t" + example.text_b if example.text_b else "")
    if is_regression(label_list):
      values = ["%.6g" % float(prediction["predictions"])]
    else:
      probs = [float(p) for p in prediction["probabilities"]]
      values = [str(label_list[int(np.argmax(probs))])] + [
          "%.6f" % p for p in probs]
    out.write("\t".join(values + [text]) + "\n")
  out.flush()


# ----------------------------------------------------------------------------
# main.
# ----------------------------------------------------------------------------

HEAD_VARIABLES = ("output_weights", "output_bias")


def _eval_records(examples, file_name, batch_size, label_list, tokenizer):
  """(examples, num_actual, input_fn) of an eval or predict set written to
  output_dir/file_name, padded to a multiple of the batch on TPU."""
  examples = list(examples)
  num_actual = len(examples)
  if FLAGS.use_tpu:
    while len(examples) % batch_size != 0:
      examples.append(PaddingInputExample())
  path = os.path.join(FLAGS.output_dir, file_name)
  file_based_convert_examples_to_features(examples, label_list,
                                          FLAGS.max_seq_length, tokenizer, path)
  input_fn = file_based_input_fn_builder(
      input_file=path,
      seq_length=FLAGS.max_seq_length,
      is_training=False,
      drop_remainder=bool(FLAGS.use_tpu),
      is_regression=is_regression(label_list))
  return examples, num_actual, input_fn


def evaluate_model(cfg, task, model, global_step, dev, label_list,
                   with_predictions=False):
  """(results, extra_metrics, eval_predictions.tsv lines or None): results
  has eval_pearson/eval_spearman too for regression; the rest needs
  `with_predictions`."""
  results = runner.evaluate(cfg, task, dev.input_fn, FLAGS.eval_batch_size,
                            steps=dev.steps, model=model,
                            global_step=global_step)
  if not (with_predictions or task.regression):
    return results, {}, None
  predictions = runner.predict(cfg, task, dev.input_fn, FLAGS.eval_batch_size,
                               model=model)
  metrics, lines = eval_prediction_metrics(dev.examples, predictions,
                                           label_list)
  if task.regression:
    results["eval_pearson"] = metrics.pop("eval_pearson")
    results["eval_spearman"] = metrics.pop("eval_spearman")
  return results, metrics, lines


def _as_estimator_values(results):
  """float32 metrics and an int64 global_step, printed as the Estimator did."""
  return {k: (np.int64(v) if k == "global_step" else np.float32(v))
          for k, v in results.items()}


def run(cfg, processor, label_list, tokenizer, task, init_checkpoint,
        export_fn=None, distill_task=None):
  """Train / eval / predict / export as the flags ask (shared with tfhub);
  `distill_task` (distillation.py) trains on the transfer set instead."""
  if distill_task is None and distillation.distilling() and FLAGS.do_train:
    raise common.UserError("the distillation flags (--teacher_*) are not "
                           "supported by this script: use run_classifier.py")

  if FLAGS.do_train:
    if distill_task is not None:
      train_examples, has_label = distillation.flags_transfer_set(processor)
    else:
      train_examples = processor.get_train_examples(FLAGS.data_dir)
      has_label = None
    num_train_steps, num_warmup_steps = runner.epoch_steps(
        len(train_examples), FLAGS.train_batch_size, FLAGS.num_train_epochs,
        FLAGS.warmup_proportion)

  dev = _dev_set(processor, label_list, tokenizer) if FLAGS.do_eval else None

  if FLAGS.do_train:
    train_input_fn = _train_input(train_examples, has_label, label_list,
                                  tokenizer)
    logging.info("***** Running training *****")
    logging.info("  Num examples = %d", len(train_examples))
    logging.info("  Batch size = %d", FLAGS.train_batch_size)
    logging.info("  Num steps = %d", num_train_steps)
    train_cfg, on_checkpoint = _eval_during_training(cfg, task, dev,
                                                     label_list,
                                                     num_train_steps)
    runner.train(train_cfg, distill_task or task, train_input_fn,
                 num_train_steps, num_warmup_steps, FLAGS.learning_rate,
                 init_checkpoint=init_checkpoint,
                 train_batch_size=FLAGS.train_batch_size,
                 on_checkpoint=on_checkpoint)

  model = None
  global_step = 0
  if FLAGS.do_eval or FLAGS.do_predict or FLAGS.export_dir:
    path = checkpoints.latest_checkpoint(FLAGS.output_dir)
    if path is None and init_checkpoint:
      path = checkpoints.normalize_checkpoint_path(init_checkpoint)
    checkpoints.check_head_is_trained(
        path, HEAD_VARIABLES, "classifier", FLAGS.allow_untrained_head,
        "--do_eval/--do_predict/--export_dir")
    model, global_step, _ = runner.load_model(cfg, task,
                                              init_checkpoint=init_checkpoint)

  if FLAGS.do_eval:
    _evaluate(cfg, task, model, global_step, dev, label_list)

  if FLAGS.do_predict:
    _predict(cfg, task, model, processor, label_list, tokenizer)

  if FLAGS.export_dir:
    if export_fn is None:
      raise runner.UserError("--export_dir is not supported by this script")
    export_fn(model, FLAGS.export_dir)


_DevSet = collections.namedtuple(
    "_DevSet", ["examples", "num_actual", "input_fn", "steps"])


def _dev_set(processor, label_list, tokenizer):
  """--do_eval: the dev examples (padded on TPU), their records and input."""
  examples, num_actual, input_fn = _eval_records(
      processor.get_dev_examples(FLAGS.data_dir), "eval.tf_record",
      FLAGS.eval_batch_size, label_list, tokenizer)
  # None: the whole file; on TPU the original ran len/batch padded steps.
  steps = len(examples) // FLAGS.eval_batch_size if FLAGS.use_tpu else None
  return _DevSet(examples, num_actual, input_fn, steps)


def _train_input(train_examples, has_label, label_list, tokenizer):
  """--do_train: the training records (or the transfer set's) and input_fn."""
  train_file = os.path.join(FLAGS.output_dir, "train.tf_record")
  extra_features = None
  if has_label is not None:
    extra_features = distillation.write_train_records(
        train_examples, has_label, label_list, tokenizer, train_file)
  else:
    file_based_convert_examples_to_features(
        train_examples, label_list, FLAGS.max_seq_length, tokenizer,
        train_file)
  return file_based_input_fn_builder(
      input_file=train_file,
      seq_length=FLAGS.max_seq_length,
      is_training=True,
      drop_remainder=True,
      is_regression=is_regression(label_list),
      extra_features=extra_features)


def _eval_during_training(cfg, task, dev, label_list, num_train_steps):
  """--eval_every_n_steps: (the training RunConfig, the on_checkpoint hook
  that evaluates, writes eval_history.tsv and keeps the best in best/)."""
  every = FLAGS.eval_every_n_steps
  if not every or every < 0:
    return cfg, None
  if not FLAGS.do_eval:
    raise runner.UserError("--eval_every_n_steps needs --do_eval=true")
  metric = FLAGS.best_metric or (
      "eval_pearson" if is_regression(label_list) else "eval_accuracy")
  best_dir = os.path.join(FLAGS.output_dir, "best")
  state = {"model": None, "best": None, "history": []}

  def on_checkpoint(step, prefix):
    if prefix is None or not (step % every == 0 or step >= num_train_steps):
      return
    if state["model"] is None:
      with runner.get_strategy(cfg).scope():
        state["model"] = task.create_model()
    named = state["model"].named_variables()
    checkpoints.init_from_checkpoint(named, prefix, log=False)
    results, _, _ = evaluate_model(cfg, task, state["model"], step, dev,
                                   label_list)
    if metric not in results:
      raise runner.UserError("--best_metric=%s is not an eval metric (have: %s)"
                             % (metric, ", ".join(sorted(results))))
    state["history"].append((step, results))
    keys = sorted({k for _, r in state["history"] for k in r
                   if k != "global_step"})
    common.write_text(
        os.path.join(FLAGS.output_dir, "eval_history.tsv"),
        ["\t".join(["global_step"] + keys) + "\n"] +
        ["\t".join([str(s)] + [str(r.get(k, "")) for k in keys]) + "\n"
         for s, r in state["history"]])
    value, best = results[metric], state["best"]
    better = best is None or (value < best if metric.endswith("loss") else
                              value > best)
    logging.info("Eval at step %d: %s = %s%s", step, metric, value,
                 " (new best)" if better else "")
    if better:
      state["best"] = value
      tf.io.gfile.makedirs(best_dir)
      best_vars = collections.OrderedDict(named)
      best_vars["global_step"] = np.int64(step)
      checkpoints.save(best_dir, step, best_vars, keep_checkpoint_max=1)
      runner.write_eval_results(
          os.path.join(best_dir, "eval_results.txt"),
          _as_estimator_values(results),
          header="***** Best eval results (step %d) *****" % step)

  save_steps = math.gcd(cfg.save_checkpoints_steps or every, every)
  train_cfg = runner.RunConfig.from_flags(
      FLAGS, output_dir=FLAGS.output_dir, strategy=cfg.strategy,
      save_checkpoints_steps=save_steps)
  return train_cfg, on_checkpoint


def _evaluate(cfg, task, model, global_step, dev, label_list):
  """--do_eval: eval_results.txt (and the optional prediction files)."""
  logging.info("***** Running evaluation *****")
  logging.info("  Num examples = %d (%d actual, %d padding)",
               len(dev.examples), dev.num_actual,
               len(dev.examples) - dev.num_actual)
  logging.info("  Batch size = %d", FLAGS.eval_batch_size)
  result, extra_metrics, prediction_lines = evaluate_model(
      cfg, task, model, global_step, dev, label_list,
      with_predictions=FLAGS.write_eval_predictions)
  output_eval_file = os.path.join(FLAGS.output_dir, "eval_results.txt")
  runner.write_eval_results(output_eval_file, _as_estimator_values(result))
  if FLAGS.write_eval_predictions and prediction_lines is not None:
    common.write_text(
        os.path.join(FLAGS.output_dir, "eval_predictions.tsv"),
        prediction_lines)
    if extra_metrics:
      runner.write_eval_results(
          os.path.join(FLAGS.output_dir, "eval_extra_results.txt"),
          extra_metrics, header="***** Extra eval results *****")


def _predict(cfg, task, model, processor, label_list, tokenizer):
  """--do_predict: test_results.tsv (or --predict_text's lines on stdout)."""
  if FLAGS.predict_text:
    predict_examples = text_examples(FLAGS.predict_text, label_list)
  elif FLAGS.predict_transfer_set:
    predict_examples = distillation.with_placeholder_labels(
        distillation.flags_transfer_set(processor)[0], label_list)
  else:
    predict_examples = processor.get_test_examples(FLAGS.data_dir)
  predict_examples, num_actual_predict_examples, predict_input_fn = (
      _eval_records(predict_examples, "predict.tf_record",
                    FLAGS.predict_batch_size, label_list, tokenizer))
  logging.info("***** Running prediction*****")
  logging.info("  Num examples = %d (%d actual, %d padding)",
               len(predict_examples), num_actual_predict_examples,
               len(predict_examples) - num_actual_predict_examples)
  logging.info("  Batch size = %d", FLAGS.predict_batch_size)
  result = runner.predict(cfg, task, predict_input_fn,
                          FLAGS.predict_batch_size, model=model,
                          dynamic_padding=FLAGS.dynamic_padding)
  if FLAGS.predict_text:
    print_text_predictions(predict_examples[:num_actual_predict_examples],
                           result, label_list)
  else:
    write_test_results(FLAGS.output_dir, predict_examples, result,
                       label_list, num_actual_predict_examples,
                       "transfer" if FLAGS.predict_transfer_set else "test")


def main(_):
  tokenization.validate_case_matches_checkpoint(FLAGS.do_lower_case,
                                                FLAGS.init_checkpoint)

  if not FLAGS.do_train and not FLAGS.do_eval and not FLAGS.do_predict:
    raise ValueError(
        "At least one of `do_train`, `do_eval` or `do_predict' must be True.")
  if not FLAGS.data_dir and (FLAGS.do_train or FLAGS.do_eval or
                             not FLAGS.predict_text):
    raise runner.UserError(
        "--data_dir is required (the task's .tsv files), except for "
        "--do_predict with --predict_text.")

  bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)

  if FLAGS.max_seq_length > bert_config.max_position_embeddings:
    raise ValueError(
        "Cannot use sequence length %d because the BERT model "
        "was only trained up to sequence length %d (--max_seq_length must be "
        "<= max_position_embeddings of %s)" %
        (FLAGS.max_seq_length, bert_config.max_position_embeddings,
         FLAGS.bert_config_file))

  runner.prepare_output_dir(FLAGS.output_dir)

  processor = get_processor(FLAGS.task_name)
  label_list = processor.get_labels()

  tokenizer = tokenization.FullTokenizer(
      vocab_file=FLAGS.vocab_file, do_lower_case=FLAGS.do_lower_case)
  modeling.check_vocab_size(FLAGS.vocab_file, bert_config)

  cfg = runner.RunConfig.from_flags(FLAGS, output_dir=FLAGS.output_dir)
  task = ClassifierTask(bert_config, label_list, options=cfg.encoder_options)

  def export_fn(model, export_dir):
    import classifier_export  # pylint: disable=g-import-not-at-top
    classifier_export.export_classifier(
        model, export_dir, vocab_file=FLAGS.vocab_file,
        do_lower_case=FLAGS.do_lower_case,
        max_seq_length=FLAGS.max_seq_length, label_list=label_list)

  run(cfg, processor, label_list, tokenizer, task, FLAGS.init_checkpoint,
      export_fn=export_fn,
      distill_task=distillation.make_distill_task(bert_config, label_list,
                                                  cfg))


if __name__ == "__main__":
  define_flags()
  flags.mark_flag_as_required("task_name")
  flags.mark_flag_as_required("vocab_file")
  flags.mark_flag_as_required("bert_config_file")
  flags.mark_flag_as_required("output_dir")
  app.run(runner.main_wrapper(main))
