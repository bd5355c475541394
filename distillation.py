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
"""Knowledge distillation for run_classifier.py (docs/distillation.md).

A student classifier learns from a teacher's soft labels over a transfer set
(the training set and/or the unlabeled examples of --transfer_data_dir), as in
Turc et al., "Well-Read Students Learn Better" (2019). The teacher is a
fine-tuned classifier checkpoint that runs forward-only in the same step (its
variables are frozen and never saved), or a file of its probabilities, or both
(their distributions are averaged). The flags are run_classifier.py's.
"""

import common
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

import checkpoints
import modeling
import run_classifier
import runner

FLAGS = flags.FLAGS


def define_flags():
  """The distillation flags, listed under the calling script (idempotent)."""
  owner = runner._script_module_name(1)  # pylint: disable=protected-access
  d = lambda *args: runner.define_flag(*args, module_name=owner)
  d(flags.DEFINE_string, "teacher_bert_config_file", None,
    "Distillation: bert_config.json of the teacher, a classifier fine-tuned "
    "on the same task (with --teacher_init_checkpoint). The teacher runs "
    "forward-only in each training step; it is never updated or saved.")
  d(flags.DEFINE_string, "teacher_init_checkpoint", None,
    "Distillation: the teacher's fine-tuned classifier checkpoint (its "
    "output_weights/output_bias head must be there). Must use the same "
    "vocabulary as the student.")
  d(flags.DEFINE_string, "teacher_predictions_file", None,
    "Distillation: the teacher's probabilities (the test_results.tsv "
    "layout; for STS-B the predicted score), one row per transfer example "
    "in order: data_dir's train.tsv (unless --distill_on_train_set=false) "
    "then --transfer_data_dir's train.tsv. Write it with the teacher and "
    "--do_predict --predict_transfer_set. With a teacher checkpoint too, "
    "the two teachers' distributions are averaged.")
  d(flags.DEFINE_float, "distill_temperature", 1.0,
    "Distillation: softmax temperature T of teacher and student; the soft "
    "loss is scaled by T^2.")
  d(flags.DEFINE_float, "distill_alpha", 1.0,
    "Distillation: weight of the soft (teacher) loss; 1 - alpha weighs the "
    "gold labels' loss on the examples that have one. 0 is ordinary "
    "fine-tuning.")
  d(flags.DEFINE_string, "transfer_data_dir", None,
    "Distillation: a directory whose train.tsv holds extra unlabeled "
    "examples in the task's training layout (a label column, if present, "
    "is ignored); the student learns the teacher's labels on them.")
  d(flags.DEFINE_bool, "distill_on_train_set", True,
    "Distillation: also train on data_dir's train.tsv (false: on the "
    "--transfer_data_dir examples alone).")
  d(flags.DEFINE_bool, "predict_transfer_set", False,
    "With --do_predict: predict the transfer set (data_dir's train.tsv "
    "unless --distill_on_train_set=false, then --transfer_data_dir's) "
    "instead of the test set, into transfer_results.tsv, for "
    "--teacher_predictions_file.")


def distilling():
  """True when the flags ask for knowledge distillation."""
  return bool(FLAGS.teacher_init_checkpoint or FLAGS.teacher_bert_config_file
              or FLAGS.teacher_predictions_file)


def soft_targets(teacher_log_probs, temperature):
  """The teacher's tempered distribution softmax(log p / T), [batch, labels]
  (log p may be logits or log-probabilities: the softmax is the same)."""
  return tf.nn.softmax(teacher_log_probs / temperature, axis=-1)


def distillation_loss(student_logits, targets, temperature, regression=False):
  """Per-example soft loss of the student, [batch].

  Classification: T^2 * KL(targets || softmax(student_logits / T)); the T^2
  keeps the gradient's scale independent of T (Hinton et al., 2015).
  Regression: the squared error to the teacher's score `targets` [batch].
  """
  if regression:
    return tf.square(student_logits[:, 0] - targets)
  log_student = tf.nn.log_softmax(student_logits / temperature, axis=-1)
  kl = tf.reduce_sum(tf.math.xlogy(targets, targets) - targets * log_student,
                     axis=-1)
  return kl * (temperature * temperature)


class DistillationTask(object):
  """A `run_classifier.ClassifierTask` trained on a teacher's soft labels.

  `create_model()` returns the plain student `ClassifierModel`: only its
  variables are trained and saved. With a teacher checkpoint, the first call
  (made by the runner under the strategy scope) also builds the frozen teacher
  there and loads it. Training features: the classifier's, plus `has_label`
  (0 for transfer examples, whose gold loss is skipped) and, with a
  predictions file, `teacher_targets` [batch, num_labels] (probabilities;
  [batch] scores for regression).
  """

  def __init__(self, bert_config, label_list, options=None, temperature=1.0,
               alpha=1.0, teacher_config=None, teacher_checkpoint=None):
    if temperature <= 0:
      raise common.UserError("--distill_temperature=%s must be positive" %
                             temperature)
    if not 0.0 <= alpha <= 1.0:
      raise common.UserError("--distill_alpha=%s must be in [0, 1]" % alpha)
    self.classifier = run_classifier.ClassifierTask(bert_config, label_list,
                                                    options=options)
    self.eval_metrics = self.classifier.eval_metrics
    self.predict = self.classifier.predict
    self.temperature = float(temperature)
    self.alpha = float(alpha)
    self.teacher_config = teacher_config
    self.teacher_checkpoint = teacher_checkpoint
    self.teacher = None

  def create_model(self):
    student = self.classifier.create_model()
    if self.teacher_config is not None and self.teacher is None:
      self.teacher = self._build_teacher()
    return student

  def _build_teacher(self):
    path = checkpoints.normalize_checkpoint_path(self.teacher_checkpoint)
    checkpoints.check_head_is_trained(path, run_classifier.HEAD_VARIABLES,
                                      "classifier", False,
                                      "--teacher_init_checkpoint")

    def frozen(next_creator, **kwargs):
      kwargs["trainable"] = False
      return next_creator(**kwargs)

    with tf.variable_creator_scope(frozen):
      teacher = run_classifier.ClassifierModel(
          self.teacher_config, self.classifier.num_labels,
          options=self.classifier.options)
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
    regression = self.classifier.regression
    targets = []
    if self.teacher is not None:
      logits = tf.stop_gradient(self.teacher.logits(
          features["input_ids"], features["input_mask"],
          features["segment_ids"], training=False))
      targets.append(logits[:, 0] if regression else
                     soft_targets(logits, self.temperature))
    if "teacher_targets" in features:
      given = tf.cast(features["teacher_targets"], tf.float32)
      if regression:
        targets.append(tf.reshape(given, [-1]))
      else:
        log_p = tf.math.log(tf.maximum(given, 1e-30))
        targets.append(soft_targets(log_p, self.temperature))
    if not targets:
      raise ValueError("distillation needs a teacher: a checkpoint or "
                       "teacher_targets in the features")
    return targets[0] if len(targets) == 1 else tf.add_n(targets) / len(targets)

  @tf.autograph.experimental.do_not_convert
  def compute_loss(self, model, features, training):
    regression = self.classifier.regression
    logits = model.logits(features["input_ids"], features["input_mask"],
                          features["segment_ids"], training=training)
    logs = {}
    loss = 0.0
    if self.alpha > 0:
      soft = tf.reduce_mean(distillation_loss(
          logits, self._targets(features), self.temperature, regression))
      logs["distill_loss"] = soft
      loss = self.alpha * soft
    if self.alpha < 1:
      _, per_example, _ = run_classifier.classifier_loss(
          logits, features["label_ids"], self.classifier.num_labels,
          regression)
      if "has_label" in features:
        weights = tf.cast(features["has_label"], tf.float32)
        gold = (tf.reduce_sum(per_example * weights) /
                tf.maximum(tf.reduce_sum(weights), 1.0))
      else:
        gold = tf.reduce_mean(per_example)
      logs["gold_loss"] = gold
      loss = gold if self.alpha == 0 else loss + (1.0 - self.alpha) * gold
    return loss, logs


def make_distill_task(bert_config, label_list, cfg):
  """The DistillationTask the flags ask for, or None."""
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


# ----------------------------------------------------------------------------
# The transfer set and its training records.
# ----------------------------------------------------------------------------


def get_transfer_set(processor, data_dir, transfer_data_dir, use_train_set):
  """(examples, has_label): data_dir's training set (if `use_train_set`),
  then the unlabeled examples of transfer_data_dir/train.tsv (if given)."""
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


def flags_transfer_set(processor):
  """`get_transfer_set` of the flags."""
  return get_transfer_set(processor, FLAGS.data_dir, FLAGS.transfer_data_dir,
                          FLAGS.distill_on_train_set)


def with_placeholder_labels(examples, label_list):
  """The examples, unlabeled ones given the first label as a placeholder."""
  placeholder = "0.0" if label_list is None else label_list[0]
  return [run_classifier.InputExample(e.guid, e.text_a, e.text_b, placeholder)
          if e.label is None else e for e in examples]


def read_teacher_predictions(path, num_examples, label_list):
  """Rows of a teacher's test_results.tsv-style file, [num_examples, n]:
  TAB-separated probabilities in label order (the value for regression)."""
  if not tf.io.gfile.exists(path):
    raise common.UserError("--teacher_predictions_file=%s: file not found" %
                           path)
  header = run_classifier.probability_header(label_list)
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
      if values is None or len(values) != len(header):
        raise common.UserError(
            "--teacher_predictions_file=%s: line %d: expected %d TAB-separated "
            "numbers (%s), found %s" % (path, n, len(header), ", ".join(header),
                                        run_classifier.shorten(line)))
      rows.append(values)
  if len(rows) != num_examples:
    raise common.UserError(
        "--teacher_predictions_file=%s has %d rows but the transfer set has %d "
        "examples: it must hold the teacher's predictions row for row (make "
        "it with --do_predict --predict_transfer_set and the same data flags)"
        % (path, len(rows), num_examples))
  return np.asarray(rows, dtype=np.float32)


def file_based_convert_transfer_set(examples, has_label, teacher_targets,
                                    label_list, max_seq_length, tokenizer,
                                    output_file, seed=None):
  """Writes the training TFRecord: the classifier's features, `has_label`
  and (with `teacher_targets`) `teacher_targets`.

  The records are in a random order (`seed`): the training set comes before
  the transfer examples, and the input pipeline's small shuffle buffer would
  otherwise give whole stretches of steps without a gold label.
  """
  examples = with_placeholder_labels(examples, label_list)
  order = np.random.RandomState(seed).permutation(len(examples))
  with common.atomic_path(output_file) as tmp_file:
    with tf.io.TFRecordWriter(tmp_file) as writer:
      for n, i in enumerate(order):
        if n % 10000 == 0:
          logging.info("Writing example %d of %d", n, len(examples))
        feature = run_classifier.convert_single_example(
            n, examples[i], label_list, max_seq_length, tokenizer)
        record = run_classifier.feature_to_example(feature)
        fmap = record.features.feature
        fmap["has_label"].int64_list.value.append(has_label[i])
        if teacher_targets is not None:
          fmap["teacher_targets"].float_list.value.extend(teacher_targets[i])
        writer.write(record.SerializeToString())


def transfer_feature_spec(label_list, with_teacher_targets):
  """The extra features of the distillation TFRecord."""
  spec = {"has_label": tf.io.FixedLenFeature([], tf.int64)}
  if with_teacher_targets:
    width = 1 if label_list is None else len(label_list)
    spec["teacher_targets"] = tf.io.FixedLenFeature([width], tf.float32)
  return spec


def write_train_records(examples, has_label, label_list, tokenizer,
                        train_file):
  """The transfer set's training records; returns their extra features."""
  targets = None
  if FLAGS.teacher_predictions_file:
    targets = read_teacher_predictions(FLAGS.teacher_predictions_file,
                                       len(examples), label_list)
  file_based_convert_transfer_set(
      examples, has_label, targets, label_list, FLAGS.max_seq_length,
      tokenizer, train_file, seed=12345 if FLAGS.seed is None else FLAGS.seed)
  logging.info("  Distilling: %d labeled + %d unlabeled examples, T=%s, "
               "alpha=%s", sum(has_label), len(has_label) - sum(has_label),
               FLAGS.distill_temperature, FLAGS.distill_alpha)
  return transfer_feature_spec(label_list, targets is not None)
