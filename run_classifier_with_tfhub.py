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
"""BERT finetuning runner with TF-Hub.

Same flags and files as the original: all of run_classifier.py's flags plus
`bert_hub_module_handle`, a local path or any handle tensorflow-hub resolves,
of a TF2 BERT encoder in the TF-Hub layout (dict inputs `input_word_ids`,
`input_mask`, `input_type_ids`; output `pooled_output`), such as the ones
`export_hub.py` makes from an original checkpoint. The vocab file and
lower-casing come from the module (its `vocab_file` asset and
`do_lower_case` variable); `vocab_file`, `bert_config_file` and
`init_checkpoint` are not used.

Differences from the original (TF1 `hub.Module`): the TF1 Hub format is not
supported; `--do_predict` alone is accepted (it predicts with the fine-tuned
checkpoint in output_dir); every task of run_classifier.py is available; eval
metrics are weighted by `is_real_example` (the same numbers off TPU).
"""

import json

import common  # Before TensorFlow: keeps its C++ start-up lines quiet.
from absl import app
from absl import flags
from absl import logging

import export_hub
import modeling
import run_classifier
import runner
import tokenization

FLAGS = flags.FLAGS


def define_flags():
  """run_classifier.py's flags plus bert_hub_module_handle (idempotent)."""
  run_classifier.define_flags()
  if "bert_hub_module_handle" not in FLAGS:
    flags.DEFINE_string(
        "bert_hub_module_handle", None,
        "Handle for the BERT TF-Hub module (a local path or a URL).")


def create_model(is_training, input_ids, input_mask, segment_ids, labels,
                 num_labels, bert_hub_module_handle, model=None):
  """Returns (loss, per_example_loss, logits, probabilities) of a Hub model."""
  if model is None:
    model = create_hub_classifier(bert_hub_module_handle, num_labels)
  logits = model.logits(input_ids, input_mask, segment_ids,
                        training=is_training)
  loss, per_example_loss, probabilities = run_classifier.classifier_loss(
      logits, labels, num_labels)
  return (loss, per_example_loss, logits, probabilities)


def create_hub_classifier(bert_hub_module_handle, num_labels):
  """`run_classifier.ClassifierModel` with the Hub encoder (trainable)."""
  encoder = export_hub.HubEncoderForClassifier(bert_hub_module_handle,
                                               trainable=True)
  return run_classifier.ClassifierModel(
      None, num_labels, encoder=encoder, hidden_size=encoder.hidden_size())


def create_tokenizer_from_hub_module(bert_hub_module_handle):
  """Get the vocab file and casing info from the Hub module."""
  encoder = export_hub.HubEncoderForClassifier(bert_hub_module_handle,
                                               trainable=False)
  vocab_file, do_lower_case = encoder.tokenization_info()
  return tokenization.FullTokenizer(
      vocab_file=vocab_file, do_lower_case=do_lower_case), encoder


def _hub_task(handle, label_list):
  num_labels = 1 if label_list is None else len(label_list)
  return run_classifier.ClassifierTask(
      None, label_list,
      model_fn=lambda: create_hub_classifier(handle, num_labels))


def model_fn_builder(num_labels, learning_rate, num_train_steps,
                     num_warmup_steps, use_tpu, bert_hub_module_handle):
  """The original's builder in its TF2 form: the Hub classifier task."""
  del use_tpu  # The strategy is the loop's (runner.RunConfig).
  task = _hub_task(bert_hub_module_handle, list(range(num_labels)))
  return runner.with_train_args(task, None, learning_rate, num_train_steps,
                                num_warmup_steps)


def main(_):
  logging.set_verbosity(logging.INFO)

  if not FLAGS.do_train and not FLAGS.do_eval and not FLAGS.do_predict:
    raise ValueError(
        "At least one of `do_train`, `do_eval` or `do_predict' must be True.")
  for name in ("data_dir", "task_name", "bert_hub_module_handle",
               "output_dir"):
    if not getattr(FLAGS, name):
      raise common.UserError("--%s is required" % name)

  processor = run_classifier.get_processor(FLAGS.task_name)
  label_list = processor.get_labels()

  handle = FLAGS.bert_hub_module_handle
  tokenizer, probe = create_tokenizer_from_hub_module(handle)
  if hasattr(probe.module, "bert_config_json"):
    config = modeling.BertConfig.from_dict(json.loads(
        probe.module.bert_config_json.numpy().decode("utf-8")))
    if FLAGS.max_seq_length > config.max_position_embeddings:
      raise ValueError(
          "Cannot use sequence length %d because the BERT model in %s was "
          "only trained up to sequence length %d" %
          (FLAGS.max_seq_length, handle, config.max_position_embeddings))
  vocab_file, do_lower_case = probe.tokenization_info()
  del probe

  runner.prepare_output_dir(FLAGS.output_dir)
  cfg = runner.RunConfig.from_flags(FLAGS, output_dir=FLAGS.output_dir)
  task = _hub_task(handle, label_list)
  task.weights_source = "the TF-Hub module %s" % handle

  def export_fn(model, export_dir):
    import classifier_export  # pylint: disable=g-import-not-at-top
    classifier_export.export_classifier(
        model, export_dir, vocab_file=vocab_file, do_lower_case=do_lower_case,
        max_seq_length=FLAGS.max_seq_length, label_list=label_list)

  run_classifier.run(cfg, processor, label_list, tokenizer, task,
                     init_checkpoint=None, export_fn=export_fn)


if __name__ == "__main__":
  define_flags()
  flags.mark_flag_as_required("data_dir")
  flags.mark_flag_as_required("task_name")
  flags.mark_flag_as_required("bert_hub_module_handle")
  flags.mark_flag_as_required("output_dir")
  app.run(common.main_wrapper(main))
