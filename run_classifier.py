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
replaced by the shared TF2 loop in `runner.py`.
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

import checkpoints
import modeling
import optimization  # pylint: disable=unused-import  (public API of the original)
import runner
import tokenization

FLAGS = flags.FLAGS


_define = runner.define_flag


def define_flags():
  """Defines the flags of this script (idempotent)."""
  if "task_name" in FLAGS and "allow_untrained_head" in FLAGS:
    define_distillation_flags()
    return

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

  _define(flags.DEFINE_bool, "dynamic_padding", False,
      "With --do_predict, run prediction on length-bucketed batches: each "
      "window of examples is sorted by length and each batch padded only to "
      "its longest example (rounded up), so short texts cost less. "
      "test_results.tsv keeps the input order; probabilities equal the "
      "fixed-length ones to float rounding. One device only (ignored, with a "
      "warning, across several replicas).")

  _define(flags.DEFINE_bool, "write_eval_predictions", True,
      "With --do_eval, also write eval_predictions.tsv (guid, gold label, "
      "predicted label, per-label probabilities) and eval_extra_metrics.txt "
      "(F1 for binary tasks, Matthews correlation for CoLA).")

  define_distillation_flags()


def define_distillation_flags():
  """The knowledge-distillation flag group (new; docs/distillation.md)."""
  _define(flags.DEFINE_string, "teacher_bert_config_file", None,
      "Distillation: bert_config.json of the teacher, a classifier fine-tuned "
      "on the same task (with --teacher_init_checkpoint). The teacher runs "
      "forward-only in each training step; it is never updated or saved.")

  _define(flags.DEFINE_string, "teacher_init_checkpoint", None,
      "Distillation: the teacher's fine-tuned classifier checkpoint (its "
      "output_weights/output_bias head must be there). Must use the same "
      "vocabulary as the student.")

  _define(flags.DEFINE_string, "teacher_predictions_file", None,
      "Distillation: the teacher's probabilities (the test_results.tsv "
      "layout; for STS-B the predicted score), one row per transfer example "
      "in order: data_dir's train.tsv (unless --distill_on_train_set=false) "
      "then --transfer_data_dir's train.tsv. Write it with the teacher and "
      "--do_predict --predict_transfer_set. With a teacher checkpoint too, "
      "the two teachers' distributions are averaged.")

  _define(flags.DEFINE_float, "distill_temperature", 1.0,
      "Distillation: softmax temperature T of teacher and student; the soft "
      "loss is scaled by T^2.")

  _define(flags.DEFINE_float, "distill_alpha", 1.0,
      "Distillation: weight of the soft (teacher) loss; 1 - alpha weighs the "
      "gold labels' loss on the examples that have one. 0 is ordinary "
      "fine-tuning.")

  _define(flags.DEFINE_string, "transfer_data_dir", None,
      "Distillation: a directory whose train.tsv holds extra unlabeled "
      "examples in the task's training layout (a label column, if present, "
      "is ignored); the student learns the teacher's labels on them.")

  _define(flags.DEFINE_bool, "distill_on_train_set", True,
      "Distillation: also train on data_dir's train.tsv (false: on the "
      "--transfer_data_dir examples alone).")

  _define(flags.DEFINE_bool, "predict_transfer_set", False,
      "With --do_predict: predict the transfer set (data_dir's train.tsv "
      "unless --distill_on_train_set=false, then --transfer_data_dir's) "
      "instead of the test set, into transfer_results.tsv, for "
      "--teacher_predictions_file.")


def distilling():
  """True when the flags ask for knowledge distillation."""
  return bool(FLAGS.teacher_init_checkpoint or FLAGS.teacher_bert_config_file
              or FLAGS.teacher_predictions_file)


class InputExample(object):
  """A single training/test example for simple sequence classification."""

  def __init__(self, guid, text_a, text_b=None, label=None):
    """Constructs a InputExample.

    Args:
      guid: Unique id for the example.
      text_a: string. The untokenized text of the first sequence. For single
        sequence tasks, only this sequence must be specified.
      text_b: (Optional) string. The untokenized text of the second sequence.
        Only must be specified for sequence pair tasks.
      label: (Optional) string. The label of the example. This should be
        specified for train and dev examples, but not for test examples.
    """
    self.guid = guid
    self.text_a = text_a
    self.text_b = text_b
    self.label = label


class PaddingInputExample(object):
  """Fake example so the num input examples is a multiple of the batch size.

  When running eval/predict on the TPU, we need to pad the number of examples
  to be a multiple of the batch size, because the TPU requires a fixed batch
  size. The alternative is to drop the last batch, which is bad because it means
  the entire output data won't be generated.

  We use this class instead of `None` because treating `None` as padding
  batches could cause silent errors.
  """


class InputFeatures(object):
  """A single set of features of data."""

  def __init__(self,
               input_ids,
               input_mask,
               segment_ids,
               label_id,
               is_real_example=True):
    self.input_ids = input_ids
    self.input_mask = input_mask
    self.segment_ids = segment_ids
    self.label_id = label_id
    self.is_real_example = is_real_example


class DataProcessor(object):
  """Base class for data converters for sequence classification data sets."""

  # Regression tasks (STS-B) have `get_labels() is None`: one real-valued
  # output, MSE loss.

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
    """Reads a tab separated value file.

    Reads UTF-8 explicitly (whatever the locale), lines end at "\\n" and every
    "\\r" is dropped (what TF's line reader did for the original); no quote
    handling, so double quotes stay in the fields. Returns all rows, header
    included, as lists of strings.
    """
    return [row for _, row in _read_tsv_rows(input_file, quotechar)]


def _read_tsv_rows(input_file, quotechar=None):
  """Returns [(line_number, row)] of a TSV file; see DataProcessor._read_tsv."""
  if not tf.io.gfile.exists(input_file):
    raise FileNotFoundError(
        "%s: file not found (check --data_dir and --task_name)" % input_file)
  with tf.io.gfile.GFile(input_file, "rb") as reader:
    data = reader.read()
  raw_lines = data.split(b"\n")
  if raw_lines and not raw_lines[-1]:
    raw_lines.pop()
  lines = []
  for i, raw in enumerate(raw_lines):
    try:
      line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
      raise ValueError(
          "%s: line %d: not valid UTF-8 (byte 0x%02x at column %d); re-save the "
          "file as UTF-8" % (input_file, i + 1, raw[e.start], e.start + 1)
      ) from None
    lines.append(line.replace("\r", ""))
  if quotechar is None:
    reader = csv.reader(lines, delimiter="\t", quotechar=None,
                        quoting=csv.QUOTE_NONE)
  else:
    reader = csv.reader(lines, delimiter="\t", quotechar=quotechar)
  return [(i + 1, row) for i, row in enumerate(reader)]


class _SplitFilesProcessor(DataProcessor):
  """A data set laid out as one TSV file per split in data_dir.

  Subclasses define `_create_examples(path, set_name)`, which reads one file;
  the class attributes name the files and the dev set's guid prefix.
  """

  train_file = "train.tsv"
  dev_file = "dev.tsv"
  dev_set_name = "dev"
  test_file = "test.tsv"

  def get_train_examples(self, data_dir):
    """See base class."""
    return self._create_examples(os.path.join(data_dir, self.train_file),
                                 "train")

  def get_dev_examples(self, data_dir):
    """See base class."""
    return self._create_examples(os.path.join(data_dir, self.dev_file),
                                 self.dev_set_name)

  def get_test_examples(self, data_dir):
    """See base class."""
    return self._create_examples(os.path.join(data_dir, self.test_file), "test")

  def get_transfer_examples(self, data_dir):
    """Unlabeled examples of data_dir/train.tsv in the training layout.

    The label column, if present, is ignored: every example's label is None.
    Used as a distillation transfer set (--transfer_data_dir).
    """
    return self._create_examples(os.path.join(data_dir, self.train_file),
                                 "transfer")


class _TsvFile(object):
  """The rows of one TSV file, with the checks the built-in processors need."""

  def __init__(self, input_file, columns_used):
    """Reads `input_file`; every row must have the same number of columns.

    Args:
      input_file: path of the TSV file.
      columns_used: largest column index any processor reads from a row (-1
        means "the last column", which any non-empty row has).
    """
    self.path = input_file
    rows = _read_tsv_rows(input_file)
    self.blank_lines = [n for n, row in rows if not row]
    self.rows = [(n, row) for n, row in rows if row]
    if self.blank_lines:
      logging.info("%s: skipped %d blank line(s) (first: line %d)", input_file,
                   len(self.blank_lines), self.blank_lines[0])
    if not self.rows:
      return
    width = len(self.rows[0][1])
    for n, row in self.rows:
      if len(row) != width or len(row) <= columns_used:
        raise ValueError(
            "%s: line %d: expected %d TAB-separated columns (as on line %d), "
            "found %d: %s" %
            (input_file, n, max(width, columns_used + 1), self.rows[0][0],
             len(row), _shorten("\t".join(row))))

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


def _shorten(text, limit=120):
  text = repr(text)
  return text if len(text) <= limit else text[:limit] + "..."


class XnliProcessor(DataProcessor):
  """Processor for the XNLI data set."""

  def __init__(self):
    self.language = "zh"

  def get_train_examples(self, data_dir):
    """See base class."""
    tsv = _TsvFile(
        os.path.join(data_dir, "multinli",
                     "multinli.train.%s.tsv" % self.language), 2)
    examples = []
    for n, line in tsv.rows:
      if n == 1:
        continue
      guid = "train-%d" % (n - 1)
      text_a = tokenization.convert_to_unicode(line[0])
      text_b = tokenization.convert_to_unicode(line[1])
      label = tokenization.convert_to_unicode(line[2])
      if label == tokenization.convert_to_unicode("contradictory"):
        label = tokenization.convert_to_unicode("contradiction")
      tsv.check_label(n, label, self.get_labels())
      examples.append(
          InputExample(guid=guid, text_a=text_a, text_b=text_b, label=label))
    return examples

  def get_dev_examples(self, data_dir):
    """See base class."""
    tsv = _TsvFile(os.path.join(data_dir, "xnli.dev.tsv"), 7)
    examples = []
    for n, line in tsv.rows:
      if n == 1:
        continue
      guid = "dev-%d" % (n - 1)
      language = tokenization.convert_to_unicode(line[0])
      if language != tokenization.convert_to_unicode(self.language):
        continue
      text_a = tokenization.convert_to_unicode(line[6])
      text_b = tokenization.convert_to_unicode(line[7])
      label = tokenization.convert_to_unicode(line[1])
      tsv.check_label(n, label, self.get_labels())
      examples.append(
          InputExample(guid=guid, text_a=text_a, text_b=text_b, label=label))
    return examples

  def get_labels(self):
    """See base class."""
    return ["contradiction", "entailment", "neutral"]


class _GlueProcessor(_SplitFilesProcessor):
  """A GLUE task laid out as train.tsv / dev.tsv / test.tsv.

  Subclasses set the columns. guid is `<set>-<i>` with i the row index (the
  first row after a header is 1), or `<set>-<value of guid_column>`. Every file
  has a header row except those of `headerless_sets`. The test set gets the
  first label (a placeholder, as in the original).
  """

  labels = None
  text_a_column = 0
  text_b_column = None  # None: single-sentence task.
  label_column = -1
  test_text_a_column = 1
  test_text_b_column = None
  guid_column = None
  headerless_sets = ()

  def get_labels(self):
    """See base class."""
    return None if self.labels is None else list(self.labels)

  def _test_label(self):
    return "0.0" if self.labels is None else self.labels[0]

  def _create_examples(self, path, set_type):
    """Creates examples from one TSV file."""
    if set_type == "test":
      columns = [self.test_text_a_column, self.test_text_b_column]
    elif set_type == "transfer":
      # The training layout; the label column may be absent (ignored).
      columns = [self.text_a_column, self.text_b_column]
    else:
      columns = [self.text_a_column, self.text_b_column, self.label_column]
    tsv = _TsvFile(path, max(c for c in columns + [self.guid_column]
                             if c is not None))
    text = lambda line, column: (None if column is None else
                                 tokenization.convert_to_unicode(line[column]))
    examples = []
    for n, line in tsv.rows:
      header_set = "train" if set_type == "transfer" else set_type
      if n == 1 and header_set not in self.headerless_sets:
        continue
      guid = "%s-%s" % (set_type, n - 1 if self.guid_column is None else
                        text(line, self.guid_column))
      if set_type == "test":
        text_a = text(line, self.test_text_a_column)
        text_b = text(line, self.test_text_b_column)
        label = self._test_label()
      elif set_type == "transfer":
        text_a = text(line, self.text_a_column)
        text_b = text(line, self.text_b_column)
        label = None
      else:
        text_a = text(line, self.text_a_column)
        text_b = text(line, self.text_b_column)
        label = text(line, self.label_column)
        tsv.check_label(n, label, self.get_labels())
      examples.append(
          InputExample(guid=guid, text_a=text_a, text_b=text_b, label=label))
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
  """Processor for the CoLA data set (GLUE version).

  train.tsv and dev.tsv have no header (sentence in column 3, label in 1);
  test.tsv has one (`index sentence`).
  """
  labels = ("0", "1")
  headerless_sets = ("train", "dev")
  text_a_column = 3
  label_column = 1
  test_text_a_column = 1


class Sst2Processor(_GlueProcessor):
  """SST-2 (header `sentence label`; test `index sentence`)."""
  labels = ("0", "1")
  text_a_column = 0
  label_column = 1
  test_text_a_column = 1


class QnliProcessor(_GlueProcessor):
  """QNLI (header `index question sentence label`)."""
  labels = ("entailment", "not_entailment")
  text_a_column = 1
  text_b_column = 2
  label_column = 3
  test_text_a_column = 1
  test_text_b_column = 2


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
  test_text_a_column = 1
  test_text_b_column = 2


class StsbProcessor(_GlueProcessor):
  """STS-B: regression on the score in the last column (labels are floats)."""
  labels = None
  text_a_column = 7
  text_b_column = 8
  label_column = -1
  test_text_a_column = 7
  test_text_b_column = 8


class AxProcessor(MnliProcessor):
  """The GLUE diagnostic set (AX): predict-only, with an MNLI model.

  data_dir holds `diagnostic.tsv` (`index sentence1 sentence2`); labels are
  MNLI's so that an MNLI fine-tuned checkpoint can be used directly.
  """

  def get_train_examples(self, data_dir):
    raise ValueError(
        "task ax (GLUE diagnostic) has no training set: fine-tune with "
        "--task_name=mnli, then run --task_name=ax --do_predict with that "
        "checkpoint as --init_checkpoint")

  def get_dev_examples(self, data_dir):
    raise ValueError(
        "task ax (GLUE diagnostic) has no dev set: only --do_predict works")

  def get_test_examples(self, data_dir):
    """See base class."""
    tsv = _TsvFile(os.path.join(data_dir, "diagnostic.tsv"), 2)
    examples = []
    for n, line in tsv.rows:
      if n == 1:
        continue
      guid = "test-%s" % tokenization.convert_to_unicode(line[0])
      examples.append(
          InputExample(guid=guid,
                       text_a=tokenization.convert_to_unicode(line[1]),
                       text_b=tokenization.convert_to_unicode(line[2]),
                       label="contradiction"))
    return examples


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
    return InputFeatures(
        input_ids=[0] * max_seq_length,
        input_mask=[0] * max_seq_length,
        segment_ids=[0] * max_seq_length,
        label_id=0.0 if is_regression(label_list) else 0,
        is_real_example=False)

  if is_regression(label_list):
    try:
      label_id = float(example.label)
    except (TypeError, ValueError):
      raise ValueError("example %s: label %r is not a number (regression task)"
                       % (example.guid, example.label)) from None
  else:
    label_map = {}
    for (i, label) in enumerate(label_list):
      label_map[label] = i
    if example.label not in label_map:
      raise ValueError("example %s: label %r is not one of the labels %s" %
                       (example.guid, example.label, list(label_list)))
    label_id = label_map[example.label]

  tokens_a = tokenizer.tokenize(example.text_a)
  tokens_b = None
  if example.text_b:
    tokens_b = tokenizer.tokenize(example.text_b)

  if tokens_b:
    # Modifies `tokens_a` and `tokens_b` in place so that the total
    # length is less than the specified length.
    # Account for [CLS], [SEP], [SEP] with "- 3"
    _truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
  else:
    # Account for [CLS] and [SEP] with "- 2"
    if len(tokens_a) > max_seq_length - 2:
      tokens_a = tokens_a[0:(max_seq_length - 2)]

  # The convention in BERT is:
  # (a) For sequence pairs:
  #  tokens:   [CLS] is this jack ##son ##ville ? [SEP] no it is not . [SEP]
  #  type_ids: 0     0  0    0    0     0       0 0     1  1  1  1   1 1
  # (b) For single sequences:
  #  tokens:   [CLS] the dog is hairy . [SEP]
  #  type_ids: 0     0   0   0  0     0 0
  #
  # Where "type_ids" are used to indicate whether this is the first
  # sequence or the second sequence. The embedding vectors for `type=0` and
  # `type=1` were learned during pre-training and are added to the wordpiece
  # embedding vector (and position vector).
  #
  # For classification tasks, the first vector (corresponding to [CLS]) is
  # used as the "sentence vector".
  tokens = []
  segment_ids = []
  tokens.append("[CLS]")
  segment_ids.append(0)
  for token in tokens_a:
    tokens.append(token)
    segment_ids.append(0)
  tokens.append("[SEP]")
  segment_ids.append(0)

  if tokens_b:
    for token in tokens_b:
      tokens.append(token)
      segment_ids.append(1)
    tokens.append("[SEP]")
    segment_ids.append(1)

  input_ids = tokenizer.convert_tokens_to_ids(tokens)

  # The mask has 1 for real tokens and 0 for padding tokens. Only real
  # tokens are attended to.
  input_mask = [1] * len(input_ids)

  # Zero-pad up to the sequence length.
  while len(input_ids) < max_seq_length:
    input_ids.append(0)
    input_mask.append(0)
    segment_ids.append(0)

  assert len(input_ids) == max_seq_length
  assert len(input_mask) == max_seq_length
  assert len(segment_ids) == max_seq_length

  if ex_index < 5:
    logging.info("*** Example ***")
    logging.info("guid: %s", example.guid)
    logging.info("tokens: %s", " ".join(
        [tokenization.printable_text(x) for x in tokens]))
    logging.info("input_ids: %s", " ".join([str(x) for x in input_ids]))
    logging.info("input_mask: %s", " ".join([str(x) for x in input_mask]))
    logging.info("segment_ids: %s", " ".join([str(x) for x in segment_ids]))
    logging.info("label: %s (id = %s)", example.label, label_id)

  feature = InputFeatures(
      input_ids=input_ids,
      input_mask=input_mask,
      segment_ids=segment_ids,
      label_id=label_id,
      is_real_example=True)
  return feature


def _create_int_feature(values):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _create_float_feature(values):
  return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def _feature_to_example(feature):
  """InputFeatures → tf.train.Example in the original feature order."""
  features = collections.OrderedDict()
  features["input_ids"] = _create_int_feature(feature.input_ids)
  features["input_mask"] = _create_int_feature(feature.input_mask)
  features["segment_ids"] = _create_int_feature(feature.segment_ids)
  if isinstance(feature.label_id, float):
    features["label_ids"] = _create_float_feature([feature.label_id])
  else:
    features["label_ids"] = _create_int_feature([feature.label_id])
  features["is_real_example"] = _create_int_feature(
      [int(feature.is_real_example)])
  return tf.train.Example(features=tf.train.Features(feature=features))


def file_based_convert_examples_to_features(
    examples, label_list, max_seq_length, tokenizer, output_file):
  """Convert a set of `InputExample`s to a TFRecord file.

  Features: `input_ids`, `input_mask`, `segment_ids` [max_seq_length],
  `label_ids` [1] and `is_real_example` [1], all int64 (`label_ids` is a float
  for regression tasks). The file is written under a temporary name and
  renamed when complete.
  """
  with common.atomic_path(output_file) as tmp_file:
    with tf.io.TFRecordWriter(tmp_file) as writer:
      for (ex_index, example) in enumerate(examples):
        if ex_index % 10000 == 0:
          logging.info("Writing example %d of %d", ex_index, len(examples))

        feature = convert_single_example(ex_index, example, label_list,
                                         max_seq_length, tokenizer)
        writer.write(_feature_to_example(feature).SerializeToString())


def file_based_input_fn_builder(input_file, seq_length, is_training,
                                drop_remainder, is_regression=False,
                                extra_features=None):
  """Creates an `input_fn` closure to be passed to the runner.

  `extra_features` (name -> tf.io feature spec) adds features of the record,
  e.g. the distillation ones (`transfer_feature_spec`).
  """

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
    """The actual input function."""
    batch_size = params["batch_size"]

    # For training, we want a lot of parallel reading and shuffling.
    # For eval, we want no shuffling and parallel reading doesn't matter.
    d = tf.data.TFRecordDataset(input_file)
    d = runner.shard_for_context(d, params.get("input_context"))
    if is_training:
      d = d.repeat()
      d = d.shuffle(buffer_size=100)

    d = d.map(lambda record: runner.decode_record(record, name_to_features),
              num_parallel_calls=tf.data.AUTOTUNE)
    d = d.batch(batch_size, drop_remainder=drop_remainder)
    return d.prefetch(tf.data.AUTOTUNE)

  return input_fn


def _truncate_seq_pair(tokens_a, tokens_b, max_length):
  """Truncates a sequence pair in place to the maximum length."""

  # This is a simple heuristic which will always truncate the longer sequence
  # one token at a time. This makes more sense than truncating an equal percent
  # of tokens from each, since if one sequence is very short then each token
  # that's truncated likely contains more information than a longer sequence.
  while True:
    total_length = len(tokens_a) + len(tokens_b)
    if total_length <= max_length:
      break
    if len(tokens_a) > len(tokens_b):
      tokens_a.pop()
    else:
      tokens_b.pop()


def input_fn_builder(features, seq_length, is_training, drop_remainder):
  """Creates an in-memory `input_fn` closure (the Colab's API).

  Unlike the file-based builder it has no `is_real_example` feature; the
  classifier task treats every example as real then.
  """

  all_input_ids = []
  all_input_mask = []
  all_segment_ids = []
  all_label_ids = []

  for feature in features:
    all_input_ids.append(feature.input_ids)
    all_input_mask.append(feature.input_mask)
    all_segment_ids.append(feature.segment_ids)
    all_label_ids.append(feature.label_id)

  regression = any(isinstance(x, float) for x in all_label_ids)

  def input_fn(params):
    """The actual input function."""
    batch_size = params["batch_size"]

    num_examples = len(features)

    # This is for demo purposes and does NOT scale to large data sets.
    d = tf.data.Dataset.from_tensor_slices({
        "input_ids":
            tf.constant(
                all_input_ids, shape=[num_examples, seq_length],
                dtype=tf.int32),
        "input_mask":
            tf.constant(
                all_input_mask,
                shape=[num_examples, seq_length],
                dtype=tf.int32),
        "segment_ids":
            tf.constant(
                all_segment_ids,
                shape=[num_examples, seq_length],
                dtype=tf.int32),
        "label_ids":
            tf.constant(all_label_ids, shape=[num_examples],
                        dtype=tf.float32 if regression else tf.int32),
    })
    d = runner.shard_for_context(d, params.get("input_context"))

    if is_training:
      d = d.repeat()
      d = d.shuffle(buffer_size=100)

    d = d.batch(batch_size=batch_size, drop_remainder=drop_remainder)
    return d

  return input_fn


def convert_examples_to_features(examples, label_list, max_seq_length,
                                 tokenizer):
  """Convert a set of `InputExample`s to a list of `InputFeatures`."""

  features = []
  for (ex_index, example) in enumerate(examples):
    if ex_index % 10000 == 0:
      logging.info("Writing example %d of %d", ex_index, len(examples))

    feature = convert_single_example(ex_index, example, label_list,
                                     max_seq_length, tokenizer)

    features.append(feature)
  return features


# ----------------------------------------------------------------------------
# Model.
# ----------------------------------------------------------------------------


class ClassifierModel(tf.Module):
  """BERT plus the original classification head.

  Variables: the encoder's (`bert/...`) plus the root-scope `output_weights`
  [num_labels, hidden] (truncated normal, stddev 0.02 whatever the config's
  initializer_range) and `output_bias` [num_labels] (zeros). A regression
  task (STS-B) has num_labels = 1.
  """

  def __init__(self, bert_config, num_labels, is_training=False,
               options=None, encoder=None, hidden_size=None):
    """Builds the model.

    Args:
      bert_config: `modeling.BertConfig` (may be None when `encoder` is given).
      num_labels: number of output units.
      is_training: default for `training` in the original create_model form.
      options: `modeling.EncoderOptions` of the encoder (default: defaults).
      encoder: optional encoder to use instead of a `modeling.BertModel`
        (e.g. a TF-Hub model): called as `encoder(input_ids,
        input_mask=..., token_type_ids=..., training=...)`, returning an object
        with `.pooled_output`; has `named_variables()`.
      hidden_size: width of the pooled output (defaults to the config's).
    """
    super(ClassifierModel, self).__init__(name="classifier")
    self.num_labels = int(num_labels)
    self.is_training = bool(is_training)
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
  """(loss, per_example_loss, probabilities) of the original head.

  For regression (one output) "probabilities" are the predicted values
  [batch] and the loss is the mean squared error.
  """
  if regression:
    predictions = logits[:, 0]
    per_example_loss = tf.square(predictions - tf.cast(labels, tf.float32))
    return tf.reduce_mean(per_example_loss), per_example_loss, predictions
  probabilities = tf.nn.softmax(logits, axis=-1)
  log_probs = tf.nn.log_softmax(logits, axis=-1)
  one_hot_labels = tf.one_hot(labels, depth=num_labels, dtype=tf.float32)
  per_example_loss = -tf.reduce_sum(one_hot_labels * log_probs, axis=-1)
  loss = tf.reduce_mean(per_example_loss)
  return loss, per_example_loss, probabilities


def create_model(bert_config, is_training, input_ids, input_mask, segment_ids,
                 labels, num_labels, use_one_hot_embeddings, model=None,
                 regression=False):
  """Creates a classification model (the original's function).

  Builds a `ClassifierModel` (freshly initialised) unless `model` is given,
  and runs it once.

  Returns:
    (loss, per_example_loss, logits, probabilities); for regression the last
    item holds the predicted values.
  """
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
  """The classifier for the shared loop (see runner.py's task protocol)."""

  def __init__(self, bert_config, label_list, options=None, model_fn=None,
               weighted_eval=True):
    """Args:
      bert_config: `modeling.BertConfig`.
      label_list: the task's labels, or None for regression.
      options: `modeling.EncoderOptions` of the encoder.
      model_fn: optional zero-argument callable building the model (e.g. with
        a TF-Hub encoder); default builds a `ClassifierModel`.
      weighted_eval: weight eval_accuracy/eval_loss by is_real_example.
    """
    self.bert_config = bert_config
    self.label_list = label_list
    self.regression = is_regression(label_list)
    self.num_labels = 1 if self.regression else len(label_list)
    self.options = options
    self.model_fn = model_fn
    self.weighted_eval = weighted_eval

  def create_model(self):
    if self.model_fn is not None:
      return self.model_fn()
    return ClassifierModel(self.bert_config, self.num_labels,
                           options=self.options)

  def _forward(self, model, features, training):
    logits = model.logits(features["input_ids"], features["input_mask"],
                          features["segment_ids"], training=training)
    loss, per_example_loss, probabilities = classifier_loss(
        logits, features["label_ids"], self.num_labels, self.regression)
    return loss, per_example_loss, logits, probabilities

  @_no_autograph
  def compute_loss(self, model, features, training):
    loss, _, _, _ = self._forward(model, features, training)
    return loss, {}

  @_no_autograph
  def eval_metrics(self, model, features):
    loss, per_example_loss, logits, _ = self._forward(model, features, False)
    if self.weighted_eval and "is_real_example" in features:
      weights = tf.cast(features["is_real_example"], tf.float32)
    else:
      weights = tf.ones_like(per_example_loss)
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


# ----------------------------------------------------------------------------
# Knowledge distillation (new; docs/distillation.md).
# ----------------------------------------------------------------------------
#
# A student ClassifierModel learns from a teacher's soft labels over a
# transfer set (the training set and/or unlabeled --transfer_data_dir
# examples), as in Turc et al., "Well-Read Students Learn Better" (2019).
# The teacher is either a fine-tuned classifier checkpoint that runs
# forward-only in the same step (its variables are frozen and never saved),
# or a file of its probabilities, or both (their distributions are averaged).

_DISTILL_FEATURES = ("has_label", "teacher_targets")


def soft_targets(teacher_log_probs, temperature):
  """The teacher's tempered distribution softmax(log p / T), [batch, labels].

  log p may be the teacher's logits or log-probabilities: softmax is the same.
  """
  return tf.nn.softmax(teacher_log_probs / temperature, axis=-1)


def distillation_loss(student_logits, targets, temperature, regression=False):
  """Per-example soft loss of the student, [batch].

  Classification: T^2 * KL(targets || softmax(student_logits / T)), where
  `targets` is the teacher's tempered distribution (`soft_targets`); the T^2
  keeps the gradient's scale independent of T (Hinton et al., 2015).
  Regression: the squared error to the teacher's score `targets` [batch].
  """
  if regression:
    return tf.square(student_logits[:, 0] - targets)
  log_student = tf.nn.log_softmax(student_logits / temperature, axis=-1)
  kl = tf.reduce_sum(tf.math.xlogy(targets, targets) - targets * log_student,
                     axis=-1)
  return kl * (temperature * temperature)


class DistillationTask(ClassifierTask):
  """ClassifierTask trained on a teacher's soft labels (and gold labels).

  `create_model()` returns the plain student `ClassifierModel`: only its
  variables are trained and saved. With a teacher checkpoint, the first
  `create_model()` call (made by the runner under the strategy scope) also
  builds the teacher there, with frozen variables, and loads it once.

  Training features: those of the classifier, plus `has_label` [batch] (0 for
  transfer examples, whose gold loss is skipped) and, with a predictions
  file, `teacher_targets` [batch, num_labels] (probabilities; [batch] scores
  for regression).
  """

  def __init__(self, bert_config, label_list, options=None, temperature=1.0,
               alpha=1.0, teacher_config=None, teacher_checkpoint=None):
    super(DistillationTask, self).__init__(bert_config, label_list,
                                           options=options)
    if temperature <= 0:
      raise common.UserError("--distill_temperature=%s must be positive" %
                             temperature)
    if not 0.0 <= alpha <= 1.0:
      raise common.UserError("--distill_alpha=%s must be in [0, 1]" % alpha)
    self.temperature = float(temperature)
    self.alpha = float(alpha)
    self.teacher_config = teacher_config
    self.teacher_checkpoint = teacher_checkpoint
    self.teacher = None

  def create_model(self):
    student = super(DistillationTask, self).create_model()
    if self.teacher_config is not None and self.teacher is None:
      self.teacher = self._build_teacher()
    return student

  def _build_teacher(self):
    """The frozen teacher classifier, loaded from its fine-tuned checkpoint."""
    path = checkpoints.normalize_checkpoint_path(self.teacher_checkpoint)
    checkpoints.check_head_is_trained(path, _HEAD_VARIABLES, "classifier",
                                      False, "--teacher_init_checkpoint")

    def frozen(next_creator, **kwargs):
      kwargs["trainable"] = False
      return next_creator(**kwargs)

    with tf.variable_creator_scope(frozen):
      teacher = ClassifierModel(self.teacher_config, self.num_labels,
                                options=self.options)
    report = checkpoints.init_from_checkpoint(teacher.named_variables(), path,
                                              log=False)
    if report.missing:
      raise common.UserError(
          "--teacher_init_checkpoint=%s lacks %d of the teacher's variables "
          "(first: %s): check --teacher_bert_config_file" %
          (self.teacher_checkpoint, len(report.missing), report.missing[0]))
    logging.info("Teacher: %d variables loaded from %s (frozen, not saved)",
                 len(report.loaded), path)
    return teacher

  def _targets(self, features):
    """The teacher's soft targets for a batch (averaged over teachers)."""
    targets = []
    if self.teacher is not None:
      logits = self.teacher.logits(features["input_ids"],
                                   features["input_mask"],
                                   features["segment_ids"], training=False)
      logits = tf.stop_gradient(logits)
      targets.append(logits[:, 0] if self.regression else
                     soft_targets(logits, self.temperature))
    if "teacher_targets" in features:
      given = tf.cast(features["teacher_targets"], tf.float32)
      if self.regression:
        targets.append(tf.reshape(given, [-1]))
      else:
        log_p = tf.math.log(tf.maximum(given, 1e-30))
        targets.append(soft_targets(log_p, self.temperature))
    if not targets:
      raise ValueError("distillation needs a teacher: a checkpoint or "
                       "teacher_targets in the features")
    return targets[0] if len(targets) == 1 else tf.add_n(targets) / len(targets)

  @_no_autograph
  def compute_loss(self, model, features, training):
    logits = model.logits(features["input_ids"], features["input_mask"],
                          features["segment_ids"], training=training)
    logs = {}
    loss = 0.0
    if self.alpha > 0:
      soft = tf.reduce_mean(distillation_loss(
          logits, self._targets(features), self.temperature, self.regression))
      logs["distill_loss"] = soft
      loss = self.alpha * soft
    if self.alpha < 1:
      _, per_example, _ = classifier_loss(logits, features["label_ids"],
                                          self.num_labels, self.regression)
      if "has_label" in features:
        weights = tf.cast(features["has_label"], tf.float32)
        gold = (tf.reduce_sum(per_example * weights) /
                tf.maximum(tf.reduce_sum(weights), 1.0))
      else:
        gold = tf.reduce_mean(per_example)
      logs["gold_loss"] = gold
      loss = gold if self.alpha == 0 else loss + (1.0 - self.alpha) * gold
    return loss, logs


def read_teacher_predictions(path, num_examples, label_list):
  """Rows of a teacher's test_results.tsv-style file, [num_examples, n].

  One line per transfer example, TAB-separated probabilities in label order
  (one predicted value for regression), no header.
  """
  if not tf.io.gfile.exists(path):
    raise common.UserError("--teacher_predictions_file=%s: file not found" %
                           path)
  width = 1 if is_regression(label_list) else len(label_list)
  rows = []
  with tf.io.gfile.GFile(path, "r") as f:
    for n, line in enumerate(f, start=1):
      line = line.rstrip("\r\n")
      if not line:
        continue
      try:
        values = [float(x) for x in line.split("\t")]
      except ValueError:
        values = None
      if values is None or len(values) != width:
        raise common.UserError(
            "--teacher_predictions_file=%s: line %d: expected %d TAB-separated "
            "numbers (%s), found %s" %
            (path, n, width, ", ".join(_probability_header(label_list)),
             _shorten(line)))
      rows.append(values)
  if len(rows) != num_examples:
    raise common.UserError(
        "--teacher_predictions_file=%s has %d rows but the transfer set has %d "
        "examples: it must hold the teacher's predictions row for row (make "
        "it with --do_predict --predict_transfer_set and the same data flags)"
        % (path, len(rows), num_examples))
  return np.asarray(rows, dtype=np.float32)


def get_transfer_set(processor, data_dir, transfer_data_dir, use_train_set):
  """(examples, has_label) the student trains on, in the order of the file.

  The training set of data_dir (if `use_train_set`), then the unlabeled
  examples of transfer_data_dir/train.tsv (if given).
  """
  examples, has_label = [], []
  if use_train_set:
    train = processor.get_train_examples(data_dir)
    examples.extend(train)
    has_label.extend([1] * len(train))
  if transfer_data_dir:
    if not hasattr(processor, "get_transfer_examples"):
      raise common.UserError("--transfer_data_dir: task %s cannot read a "
                             "transfer set" % type(processor).__name__)
    transfer = processor.get_transfer_examples(transfer_data_dir)
    if not transfer:
      raise common.UserError("--transfer_data_dir=%s: train.tsv has no "
                             "examples" % transfer_data_dir)
    examples.extend(transfer)
    has_label.extend([0] * len(transfer))
  if not examples:
    raise common.UserError("distillation has no training examples: set "
                           "--transfer_data_dir or --distill_on_train_set")
  return examples, has_label


def with_placeholder_labels(examples, label_list):
  """The examples, unlabeled ones given the first label as a placeholder."""
  placeholder = "0.0" if is_regression(label_list) else label_list[0]
  return [InputExample(e.guid, e.text_a, e.text_b, placeholder)
          if e.label is None else e for e in examples]


def file_based_convert_transfer_set(examples, has_label, teacher_targets,
                                    label_list, max_seq_length, tokenizer,
                                    output_file, seed=None):
  """Writes the distillation training TFRecord (classifier features + has_label
  [+ teacher_targets]).

  The records are written in a random order (`seed`), each with its own
  label and teacher row: the training set comes before the transfer examples
  in the transfer set, and the input pipeline's small shuffle buffer would
  otherwise give whole stretches of steps without a gold label.
  """
  examples = with_placeholder_labels(examples, label_list)
  order = np.random.RandomState(seed).permutation(len(examples))
  with common.atomic_path(output_file) as tmp_file:
    with tf.io.TFRecordWriter(tmp_file) as writer:
      for n, i in enumerate(order):
        if n % 10000 == 0:
          logging.info("Writing example %d of %d", n, len(examples))
        feature = convert_single_example(n, examples[i], label_list,
                                         max_seq_length, tokenizer)
        record = _feature_to_example(feature)
        fmap = record.features.feature
        fmap["has_label"].CopyFrom(_create_int_feature([has_label[i]]))
        if teacher_targets is not None:
          fmap["teacher_targets"].CopyFrom(
              _create_float_feature(teacher_targets[i]))
        writer.write(record.SerializeToString())


def transfer_feature_spec(label_list, with_teacher_targets):
  """The extra features of the distillation TFRecord."""
  spec = {"has_label": tf.io.FixedLenFeature([], tf.int64)}
  if with_teacher_targets:
    width = 1 if is_regression(label_list) else len(label_list)
    spec["teacher_targets"] = tf.io.FixedLenFeature([width], tf.float32)
  return spec


# ----------------------------------------------------------------------------
# Metrics and output files.
# ----------------------------------------------------------------------------


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


def _ranks(x):
  """Average ranks (ties share the mean rank), as Spearman's rho needs."""
  x = np.asarray(x, dtype=np.float64)
  order = np.argsort(x, kind="mergesort")
  ranks = np.empty(len(x), dtype=np.float64)
  sorted_x = x[order]
  i = 0
  while i < len(x):
    j = i
    while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
      j += 1
    ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
    i = j + 1
  return ranks


def pearson(x, y):
  x = np.asarray(x, dtype=np.float64)
  y = np.asarray(y, dtype=np.float64)
  x = x - x.mean()
  y = y - y.mean()
  denom = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
  return float((x * y).sum()) / denom if denom else 0.0


def spearman(x, y):
  return pearson(_ranks(x), _ranks(y))


def binary_f1(labels, predictions, positive=1):
  """(f1, precision, recall) of the positive class."""
  labels = np.asarray(labels)
  predictions = np.asarray(predictions)
  tp = float(np.sum((predictions == positive) & (labels == positive)))
  fp = float(np.sum((predictions == positive) & (labels != positive)))
  fn = float(np.sum((predictions != positive) & (labels == positive)))
  precision = tp / (tp + fp) if tp + fp else 0.0
  recall = tp / (tp + fn) if tp + fn else 0.0
  f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
  return f1, precision, recall


def matthews_corrcoef(labels, predictions):
  labels = np.asarray(labels)
  predictions = np.asarray(predictions)
  tp = float(np.sum((predictions == 1) & (labels == 1)))
  tn = float(np.sum((predictions == 0) & (labels == 0)))
  fp = float(np.sum((predictions == 1) & (labels == 0)))
  fn = float(np.sum((predictions == 0) & (labels == 1)))
  denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
  return (tp * tn - fp * fn) / denom if denom else 0.0


def _probability_header(label_list):
  if is_regression(label_list):
    return ["prediction"]
  return ["probability_%s" % label for label in label_list]


def write_test_results(output_dir, examples, results, label_list,
                       num_actual_predict_examples, prefix="test"):
  """Writes test_results.tsv (original format) and test_predictions.tsv.

  test_results.tsv: one line per real example, the class probabilities as
  str(float32) joined by TAB, no header (the prediction itself for a
  regression task). test_predictions.tsv: a header `guid predicted_label
  probability_<label>...` (`guid prediction` for regression), then one line
  per real example. `prefix` replaces "test" in both names.
  """
  regression = is_regression(label_list)
  results_lines = []
  predictions_lines = ["\t".join(
      ["guid"] + ([] if regression else ["predicted_label"]) +
      _probability_header(label_list)) + "\n"]
  num_written_lines = 0
  logging.info("***** Predict results *****")
  for (i, prediction) in enumerate(results):
    if i >= num_actual_predict_examples:
      break
    if regression:
      values = [np.float32(prediction["predictions"])]
    else:
      values = [np.float32(p) for p in prediction["probabilities"]]
    output_line = "\t".join(str(v) for v in values) + "\n"
    results_lines.append(output_line)
    row = [examples[i].guid]
    if not regression:
      row.append(label_list[int(np.argmax(values))])
    predictions_lines.append("\t".join(row + [str(v) for v in values]) + "\n")
    num_written_lines += 1
  if num_written_lines != num_actual_predict_examples:
    raise runner.UserError(
        "predicted %d examples but the test set has %d" %
        (num_written_lines, num_actual_predict_examples))
  common.write_text(os.path.join(output_dir, prefix + "_results.tsv"),
                    results_lines)
  common.write_text(os.path.join(output_dir, prefix + "_predictions.tsv"),
                    predictions_lines)


def eval_prediction_metrics(examples, results, label_list):
  """Metrics from per-example predictions of real eval examples.

  Returns (metrics dict, lines of eval_predictions.tsv).
  """
  regression = is_regression(label_list)
  lines = ["\t".join(["guid", "label"] +
                     ([] if regression else ["predicted_label"]) +
                     _probability_header(label_list)) + "\n"]
  gold, predicted = [], []
  for example, prediction in zip(examples, results):
    if isinstance(example, PaddingInputExample):
      break
    if regression:
      values = [np.float32(prediction["predictions"])]
      gold.append(float(example.label))
      predicted.append(float(values[0]))
      row = [example.guid, example.label]
    else:
      values = [np.float32(p) for p in prediction["probabilities"]]
      index = int(np.argmax(values))
      gold.append(label_list.index(example.label))
      predicted.append(index)
      row = [example.guid, example.label, label_list[index]]
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


# ----------------------------------------------------------------------------
# main.
# ----------------------------------------------------------------------------

_HEAD_VARIABLES = ("output_weights", "output_bias")


def check_head_is_trained(checkpoint_path, allow_untrained_head, what):
  """Refuses eval/predict from a checkpoint without the classifier head."""
  checkpoints.check_head_is_trained(checkpoint_path, _HEAD_VARIABLES,
                                    "classifier", allow_untrained_head, what)


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
  regression = is_regression(label_list)
  header = (["prediction"] if regression else
            ["predicted_label"] + _probability_header(label_list))
  out.write("\t".join(header + ["text"]) + "\n")
  for example, prediction in zip(examples, results):
    text = example.text_a + ("\t" + example.text_b if example.text_b else "")
    if regression:
      values = ["%.6g" % float(prediction["predictions"])]
    else:
      probs = [float(p) for p in prediction["probabilities"]]
      values = [str(label_list[int(np.argmax(probs))])] + [
          "%.6f" % p for p in probs]
    out.write("\t".join(values + [text]) + "\n")
  out.flush()


def _pad_for_tpu(examples, batch_size, use_tpu):
  """On TPU the original pads eval/predict sets to a multiple of the batch."""
  examples = list(examples)
  num_actual = len(examples)
  if use_tpu:
    while len(examples) % batch_size != 0:
      examples.append(PaddingInputExample())
  return examples, num_actual


class _BestCheckpointKeeper(object):
  """Evaluates checkpoints during training and keeps the best in best/."""

  def __init__(self, cfg, task, eval_input_fn, eval_batch_size, eval_steps,
               eval_examples, label_list, metric, output_dir):
    self.cfg = cfg
    self.task = task
    self.eval_input_fn = eval_input_fn
    self.eval_batch_size = eval_batch_size
    self.eval_steps = eval_steps
    self.eval_examples = eval_examples
    self.label_list = label_list
    self.metric = metric
    self.lower_is_better = metric.endswith("loss")
    self.output_dir = output_dir
    self.best_dir = os.path.join(output_dir, "best")
    self.best_value = None
    self.model = None
    self.history = []

  def __call__(self, step, prefix, every_n, last_step):
    if prefix is None or not (step % every_n == 0 or step >= last_step):
      return
    if self.model is None:
      strategy = runner.get_strategy(self.cfg)
      with strategy.scope():
        self.model = self.task.create_model()
    named = self.model.named_variables()
    checkpoints.init_from_checkpoint(named, prefix, log=False)
    results, _, _ = evaluate_model(
        self.cfg, self.task, self.model, step, self.eval_input_fn,
        self.eval_batch_size, self.eval_steps, self.eval_examples,
        self.label_list)
    if self.metric not in results:
      raise runner.UserError("--best_metric=%s is not an eval metric (have: %s)"
                             % (self.metric, ", ".join(sorted(results))))
    value = results[self.metric]
    self.history.append((step, results))
    self._write_history()
    better = self.best_value is None or (
        value < self.best_value if self.lower_is_better else
        value > self.best_value)
    logging.info("Eval at step %d: %s = %s%s", step, self.metric, value,
                 " (new best)" if better else "")
    if better:
      self.best_value = value
      tf.io.gfile.makedirs(self.best_dir)
      best = collections.OrderedDict(named)
      best["global_step"] = np.int64(step)
      checkpoints.save(self.best_dir, step, best, keep_checkpoint_max=1)
      runner.write_eval_results(
          os.path.join(self.best_dir, "eval_results.txt"),
          _as_estimator_values(results),
          header="***** Best eval results (step %d) *****" % step)

  def _write_history(self):
    keys = sorted({k for _, r in self.history for k in r if k != "global_step"})
    lines = ["\t".join(["global_step"] + keys) + "\n"]
    for step, results in self.history:
      lines.append("\t".join([str(step)] + [str(results.get(k, ""))
                                            for k in keys]) + "\n")
    common.write_text(os.path.join(self.output_dir, "eval_history.tsv"), lines)


def evaluate_model(cfg, task, model, global_step, eval_input_fn,
                   eval_batch_size, eval_steps, eval_examples, label_list,
                   with_predictions=False):
  """Streaming eval metrics, plus prediction-based ones when needed.

  Regression tasks always get eval_pearson and eval_spearman (computed from
  all predictions). With `with_predictions`, also returns the lines of
  eval_predictions.tsv and extra metrics (F1/precision/recall/MCC for binary
  tasks).

  Returns:
    (results, extra_metrics, eval_predictions_lines or None).
  """
  results = runner.evaluate(cfg, task, eval_input_fn, eval_batch_size,
                            steps=eval_steps, model=model,
                            global_step=global_step)
  if not (with_predictions or task.regression):
    return results, {}, None
  predictions = runner.predict(cfg, task, eval_input_fn, eval_batch_size,
                               model=model)
  metrics, lines = eval_prediction_metrics(eval_examples, predictions,
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
  """Train / eval / predict / export as the flags ask (shared with tfhub).

  With `distill_task` (a DistillationTask), training distills from its
  teacher over the transfer set; eval/predict use `task`.
  """
  if distill_task is None and distilling() and FLAGS.do_train:
    raise common.UserError("the distillation flags (--teacher_*) are not "
                           "supported by this script: use run_classifier.py")
  runner.prepare_output_dir(FLAGS.output_dir)
  regression = is_regression(label_list)

  train_examples = has_label = num_train_steps = num_warmup_steps = None
  if FLAGS.do_train:
    if distill_task is not None:
      train_examples, has_label = get_transfer_set(
          processor, FLAGS.data_dir, FLAGS.transfer_data_dir,
          FLAGS.distill_on_train_set)
    else:
      train_examples = processor.get_train_examples(FLAGS.data_dir)
    num_train_steps, num_warmup_steps = runner.epoch_steps(
        len(train_examples), FLAGS.train_batch_size, FLAGS.num_train_epochs,
        FLAGS.warmup_proportion)

  dev = _dev_set(processor, label_list, tokenizer) if FLAGS.do_eval else None

  if FLAGS.do_train:
    train_input_fn = _train_input(train_examples, has_label, label_list,
                                  tokenizer, distill_task is not None)
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
    what = "--do_eval/--do_predict/--export_dir"
    check_head_is_trained(path, FLAGS.allow_untrained_head, what)
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
  eval_examples = processor.get_dev_examples(FLAGS.data_dir)
  eval_examples, num_actual_eval_examples = _pad_for_tpu(
      eval_examples, FLAGS.eval_batch_size, FLAGS.use_tpu)
  eval_file = os.path.join(FLAGS.output_dir, "eval.tf_record")
  file_based_convert_examples_to_features(
      eval_examples, label_list, FLAGS.max_seq_length, tokenizer, eval_file)
  # None tells the loop to run over the whole file (CPU/GPU); on TPU the
  # original ran len/batch steps on the padded set.
  eval_steps = None
  if FLAGS.use_tpu:
    assert len(eval_examples) % FLAGS.eval_batch_size == 0
    eval_steps = int(len(eval_examples) // FLAGS.eval_batch_size)
  eval_input_fn = file_based_input_fn_builder(
      input_file=eval_file,
      seq_length=FLAGS.max_seq_length,
      is_training=False,
      drop_remainder=bool(FLAGS.use_tpu),
      is_regression=is_regression(label_list))
  return _DevSet(eval_examples, num_actual_eval_examples, eval_input_fn,
                 eval_steps)


def _train_input(train_examples, has_label, label_list, tokenizer, distill):
  """--do_train: the training records (or the transfer set's) and input_fn."""
  train_file = os.path.join(FLAGS.output_dir, "train.tf_record")
  extra_features = None
  if distill:
    targets = None
    if FLAGS.teacher_predictions_file:
      targets = read_teacher_predictions(FLAGS.teacher_predictions_file,
                                         len(train_examples), label_list)
    file_based_convert_transfer_set(
        train_examples, has_label, targets, label_list,
        FLAGS.max_seq_length, tokenizer, train_file,
        seed=12345 if FLAGS.seed is None else FLAGS.seed)
    extra_features = transfer_feature_spec(label_list, targets is not None)
    logging.info("  Distilling: %d labeled + %d unlabeled examples, "
                 "T=%s, alpha=%s", sum(has_label),
                 len(has_label) - sum(has_label), FLAGS.distill_temperature,
                 FLAGS.distill_alpha)
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
  """--eval_every_n_steps: (the training RunConfig, the on_checkpoint hook)."""
  if not (FLAGS.eval_every_n_steps and FLAGS.eval_every_n_steps > 0):
    return cfg, None
  if not FLAGS.do_eval:
    raise runner.UserError("--eval_every_n_steps needs --do_eval=true")
  metric = FLAGS.best_metric or (
      "eval_pearson" if is_regression(label_list) else "eval_accuracy")
  keeper = _BestCheckpointKeeper(
      cfg, task, dev.input_fn, FLAGS.eval_batch_size, dev.steps,
      dev.examples, label_list, metric, FLAGS.output_dir)
  every = FLAGS.eval_every_n_steps
  save_steps = math.gcd(cfg.save_checkpoints_steps or every, every)
  train_cfg = runner.RunConfig.from_flags(
      FLAGS, output_dir=FLAGS.output_dir, strategy=cfg.strategy,
      save_checkpoints_steps=save_steps)
  return train_cfg, (lambda step, prefix: keeper(step, prefix, every,
                                                 num_train_steps))


def _evaluate(cfg, task, model, global_step, dev, label_list):
  """--do_eval: eval_results.txt (and the optional prediction files)."""
  logging.info("***** Running evaluation *****")
  logging.info("  Num examples = %d (%d actual, %d padding)",
               len(dev.examples), dev.num_actual,
               len(dev.examples) - dev.num_actual)
  logging.info("  Batch size = %d", FLAGS.eval_batch_size)
  result, extra_metrics, prediction_lines = evaluate_model(
      cfg, task, model, global_step, dev.input_fn, FLAGS.eval_batch_size,
      dev.steps, dev.examples, label_list,
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
    predict_examples = with_placeholder_labels(get_transfer_set(
        processor, FLAGS.data_dir, FLAGS.transfer_data_dir,
        FLAGS.distill_on_train_set)[0], label_list)
  else:
    predict_examples = processor.get_test_examples(FLAGS.data_dir)
  predict_examples, num_actual_predict_examples = _pad_for_tpu(
      predict_examples, FLAGS.predict_batch_size, FLAGS.use_tpu)
  predict_file = os.path.join(FLAGS.output_dir, "predict.tf_record")
  file_based_convert_examples_to_features(predict_examples, label_list,
                                          FLAGS.max_seq_length, tokenizer,
                                          predict_file)

  logging.info("***** Running prediction*****")
  logging.info("  Num examples = %d (%d actual, %d padding)",
               len(predict_examples), num_actual_predict_examples,
               len(predict_examples) - num_actual_predict_examples)
  logging.info("  Batch size = %d", FLAGS.predict_batch_size)

  predict_input_fn = file_based_input_fn_builder(
      input_file=predict_file,
      seq_length=FLAGS.max_seq_length,
      is_training=False,
      drop_remainder=bool(FLAGS.use_tpu),
      is_regression=is_regression(label_list))
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


def make_distill_task(bert_config, label_list, cfg):
  """The DistillationTask the distillation flags ask for, or None."""
  if not distilling():
    if FLAGS.transfer_data_dir and FLAGS.do_train:
      raise common.UserError(
          "--transfer_data_dir needs a teacher: --teacher_bert_config_file "
          "and --teacher_init_checkpoint, or --teacher_predictions_file")
    return None
  if bool(FLAGS.teacher_bert_config_file) != bool(
      FLAGS.teacher_init_checkpoint):
    raise common.UserError(
        "--teacher_bert_config_file and --teacher_init_checkpoint go together "
        "(the teacher's architecture and its fine-tuned weights)")
  teacher_config = None
  if FLAGS.teacher_bert_config_file:
    teacher_config = modeling.BertConfig.from_json_file(
        FLAGS.teacher_bert_config_file)
    if teacher_config.vocab_size != bert_config.vocab_size:
      raise common.UserError(
          "--teacher_bert_config_file=%s has vocab_size %d but the student "
          "has %d: teacher and student must share the vocabulary" %
          (FLAGS.teacher_bert_config_file, teacher_config.vocab_size,
           bert_config.vocab_size))
    if FLAGS.max_seq_length > teacher_config.max_position_embeddings:
      raise common.UserError(
          "--max_seq_length=%d exceeds the teacher's max_position_embeddings "
          "(%d)" % (FLAGS.max_seq_length,
                    teacher_config.max_position_embeddings))
  return DistillationTask(
      bert_config, label_list, options=cfg.encoder_options,
      temperature=FLAGS.distill_temperature, alpha=FLAGS.distill_alpha,
      teacher_config=teacher_config,
      teacher_checkpoint=FLAGS.teacher_init_checkpoint)


def main(_):
  logging.set_verbosity(logging.INFO)

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
      distill_task=make_distill_task(bert_config, label_list, cfg))


if __name__ == "__main__":
  define_flags()
  flags.mark_flag_as_required("task_name")
  flags.mark_flag_as_required("vocab_file")
  flags.mark_flag_as_required("bert_config_file")
  flags.mark_flag_as_required("output_dir")
  app.run(runner.main_wrapper(main))
