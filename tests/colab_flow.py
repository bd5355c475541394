# coding=utf-8
"""The official Colab's flow, as code written against the original runs it.

    python tests/colab_flow.py MODE STYLE CKPT_PREFIX BERT_CONFIG WORK_DIR

MODE `eager` (TF2) or `graph` (`tensorflow.compat.v1` with v2 behaviour
disabled); STYLE `package` (`from bert import ...`, e.g. an installed wheel)
or `flat` (`import modeling` with the clone on sys.path). Prints one line
`COLAB FLOW OK <mode> <style> <module file>` when every check passed; any
failed check raises. Run as its own process by tests/test_library_api.py.
"""

import os
import sys

import numpy as np

MODE, STYLE, CKPT, CONFIG, WORK = sys.argv[1:6]

if MODE == "graph":
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  tf.disable_v2_behavior()
else:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

if STYLE == "package":
  from bert import checkpoints  # pylint: disable=g-import-not-at-top
  from bert import modeling
  from bert import optimization
  from bert import run_classifier
  from bert import tokenization
  from bert import create_pretraining_data, extract_features  # pylint: disable=g-import-not-at-top
  from bert import run_pretraining, run_squad  # pylint: disable=g-import-not-at-top
  import bert  # pylint: disable=g-import-not-at-top
  # One copy of each module: the flat name is the same module object.
  for _module in (checkpoints, modeling, optimization, run_classifier,
                  tokenization, create_pretraining_data, extract_features,
                  run_pretraining, run_squad):
    _short = _module.__name__.rsplit(".", 1)[-1]
    assert sys.modules[_short] is _module, _short
    assert getattr(bert, _short) is _module, _short
  assert bert.runner is sys.modules["runner"]  # PEP 562 attribute access
else:
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
  import checkpoints  # pylint: disable=g-import-not-at-top
  import modeling  # pylint: disable=g-import-not-at-top
  import optimization  # pylint: disable=g-import-not-at-top
  import run_classifier  # pylint: disable=g-import-not-at-top
  import tokenization  # pylint: disable=g-import-not-at-top

reader = tf.train.load_checkpoint(CKPT)
bert_config = modeling.BertConfig.from_json_file(CONFIG)
INPUT_IDS = np.array([[2, 10, 11, 12, 3], [2, 20, 3, 21, 3]], np.int32)
INPUT_MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], np.int32)
SEGMENT_IDS = np.array([[0, 0, 0, 0, 0], [0, 0, 0, 1, 1]], np.int32)


def expected_pooled(sequence_output):
  """The pooler, in numpy, from the checkpoint's weights."""
  kernel = reader.get_tensor("bert/pooler/dense/kernel")
  bias = reader.get_tensor("bert/pooler/dense/bias")
  return np.tanh(sequence_output[:, 0] @ kernel + bias)


def write_vocab():
  words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "was",
           "great", "awful", "##ly", "good", "bad", "plot"]
  words += ["tok%d" % i for i in range(bert_config.vocab_size - len(words))]
  path = os.path.join(WORK, "vocab.txt")
  with open(path, "w") as f:
    f.write("".join(w + "\n" for w in words))
  return path


def examples_to_dataset(is_training):
  """InputExample -> convert_examples_to_features -> input_fn -> dataset."""
  tokenizer = tokenization.FullTokenizer(write_vocab(), do_lower_case=True)
  texts = [("The movie was great", "1"), ("the plot was AWFULLY bad", "0"),
           ("good movie", "1"), ("bad bad plot", "0")]
  examples = [run_classifier.InputExample(guid="train-%d" % i, text_a=text,
                                          text_b=None, label=label)
              for i, (text, label) in enumerate(texts)]
  features = run_classifier.convert_examples_to_features(
      examples, ["0", "1"], 8, tokenizer)
  first = tokenizer.convert_tokens_to_ids(
      ["[CLS]"] + tokenizer.tokenize(texts[1][0]) + ["[SEP]"])
  assert features[1].input_ids[:len(first)] == first, features[1].input_ids
  assert features[1].label_id == 0
  input_fn = run_classifier.input_fn_builder(
      features=features, seq_length=8, is_training=is_training,
      drop_remainder=True)
  return input_fn({"batch_size": 2})


def eager_flow():
  # 1. Build the model from a config, load the checkpoint, pooled output.
  model = modeling.BertModel(
      config=bert_config, is_training=False,
      input_ids=tf.constant(INPUT_IDS), input_mask=tf.constant(INPUT_MASK),
      token_type_ids=tf.constant(SEGMENT_IDS), use_one_hot_embeddings=False)
  random_pooled = model.get_pooled_output().numpy()
  tvars = model.trainable_variables
  assignment_map, initialized = modeling.get_assignment_map_from_checkpoint(
      tvars, CKPT)
  assert len(assignment_map) == len(tvars), (len(assignment_map), len(tvars))
  assert "bert/embeddings/word_embeddings:0" in initialized
  checkpoints.init_from_checkpoint(model.named_variables(), CKPT, log=False)
  pooled = model.get_pooled_output().numpy()
  assert not np.allclose(pooled, random_pooled, atol=1e-3)
  np.testing.assert_allclose(
      pooled, expected_pooled(model.get_sequence_output().numpy()),
      rtol=1e-5, atol=1e-5)
  # 2. Examples -> features -> dataset.
  dataset = examples_to_dataset(is_training=True)
  batch = next(iter(dataset))
  assert batch["input_ids"].shape == (2, 8), batch["input_ids"].shape
  # 3. create_optimizer -> one training step (the original's update).
  task = run_classifier.model_fn_builder(
      bert_config, num_labels=2, init_checkpoint=CKPT, learning_rate=1e-3,
      num_train_steps=10, num_warmup_steps=0, use_tpu=False,
      use_one_hot_embeddings=False)
  classifier = task.create_model()
  checkpoints.init_from_checkpoint(classifier.named_variables(),
                                   task.train_args["init_checkpoint"],
                                   log=False)
  optimizer, _ = optimization.create_optimizer(
      None, task.train_args["learning_rate"],
      task.train_args["num_train_steps"], task.train_args["num_warmup_steps"],
      False)
  global_step = tf.Variable(0, dtype=tf.int64, trainable=False)
  before = classifier.output_weights.numpy()
  with tf.GradientTape() as tape:
    loss, _, _, _ = run_classifier.create_model(
        bert_config, True, batch["input_ids"], batch["input_mask"],
        batch["segment_ids"], batch["label_ids"], 2, False, model=classifier)
  tvars = classifier.trainable_variables
  grads = tape.gradient(loss, tvars)
  grads, _ = tf.clip_by_global_norm(grads, clip_norm=1.0)
  optimizer.apply_gradients(zip(grads, tvars), global_step)
  global_step.assign_add(1)
  assert np.isfinite(loss.numpy())
  slots = optimizer.named_slots()
  assert "output_weights/adam_m" in slots, list(slots)[:4]
  assert "bert/encoder/layer_0/attention/self/query/kernel/adam_v" in slots
  assert not np.allclose(classifier.output_weights.numpy(), before)


def graph_flow():
  input_ids = tf.placeholder(tf.int32, INPUT_IDS.shape)
  input_mask = tf.placeholder(tf.int32, INPUT_IDS.shape)
  segment_ids = tf.placeholder(tf.int32, INPUT_IDS.shape)
  model = modeling.BertModel(
      config=bert_config, is_training=False, input_ids=input_ids,
      input_mask=input_mask, token_type_ids=segment_ids,
      use_one_hot_embeddings=False)
  tvars = tf.trainable_variables()
  assert tvars[0].name.startswith("bert/embeddings/"), tvars[0].name
  assignment_map, _ = modeling.get_assignment_map_from_checkpoint(tvars, CKPT)
  assert len(assignment_map) == len(tvars)
  tf.train.init_from_checkpoint(CKPT, assignment_map)
  # The original's building blocks, composed as its BertModel did, with the
  # same variables (reuse): the same sequence output.
  with tf.variable_scope("bert", reuse=True):
    with tf.variable_scope("embeddings"):
      embeddings, _ = modeling.embedding_lookup(
          input_ids, bert_config.vocab_size, bert_config.hidden_size,
          word_embedding_name="word_embeddings")
      embeddings = modeling.embedding_postprocessor(
          embeddings, use_token_type=True, token_type_ids=segment_ids,
          token_type_vocab_size=bert_config.type_vocab_size,
          max_position_embeddings=bert_config.max_position_embeddings,
          dropout_prob=0.0)
    with tf.variable_scope("encoder"):
      attention_mask = modeling.create_attention_mask_from_input_mask(
          input_ids, input_mask)
      layers = modeling.transformer_model(
          embeddings, attention_mask, hidden_size=bert_config.hidden_size,
          num_hidden_layers=bert_config.num_hidden_layers,
          num_attention_heads=bert_config.num_attention_heads,
          intermediate_size=bert_config.intermediate_size,
          intermediate_act_fn=modeling.get_activation(bert_config.hidden_act),
          hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
          do_return_all_layers=True)
  assert len(tf.trainable_variables()) == len(tvars)  # nothing new
  loss = tf.reduce_mean(tf.square(model.get_pooled_output()))
  train_op = optimization.create_optimizer(loss, 1e-3, 10, 0, False)
  feed = {input_ids: INPUT_IDS, input_mask: INPUT_MASK,
          segment_ids: SEGMENT_IDS}
  with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    pooled, sequence, composed = sess.run(
        [model.get_pooled_output(), model.get_sequence_output(), layers[-1]],
        feed)
    np.testing.assert_allclose(pooled, expected_pooled(sequence), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(composed, sequence, rtol=1e-5, atol=1e-5)
    sess.run(train_op, feed)
    assert sess.run(tf.train.get_global_step()) == 1
    names = [v.name for v in tf.global_variables()]
    assert "bert/pooler/dense/kernel/adam_m:0" in names, names[-6:]
  with tf.Graph().as_default():
    # The Colab's TF1 model_fn body: a dataset from the original's input_fn,
    # create_model, the checkpoint through the assignment map, a train op.
    dataset = examples_to_dataset(is_training=False)
    batch = tf.data.make_one_shot_iterator(dataset).get_next()
    loss, _, logits, _ = run_classifier.create_model(
        bert_config, True, batch["input_ids"], batch["input_mask"],
        batch["segment_ids"], batch["label_ids"], 2, False)
    tvars = tf.trainable_variables()
    assert tvars[-2].name == "output_weights:0", tvars[-2].name
    assignment_map, _ = modeling.get_assignment_map_from_checkpoint(tvars,
                                                                    CKPT)
    assert "output_weights" not in assignment_map
    tf.train.init_from_checkpoint(CKPT, assignment_map)
    train_op = optimization.create_optimizer(loss, 1e-3, 10, 0, False)
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      word_embeddings = [v for v in tvars if v.name.startswith(
          "bert/embeddings/word_embeddings")][0]
      np.testing.assert_array_equal(
          sess.run(word_embeddings),
          reader.get_tensor("bert/embeddings/word_embeddings"))
      assert sess.run(logits).shape == (2, 2)
      sess.run(train_op)


if MODE == "graph":
  graph_flow()
else:
  eager_flow()
print("COLAB FLOW OK %s %s %s" % (MODE, STYLE, modeling.__file__))
