# coding=utf-8
"""The original's own unit tests, in TF1 graph mode, against this project.

google-research/bert ships `tokenization_test.py`, `modeling_test.py` and
`optimization_test.py`. This file re-states their published assertions (same
inputs, same expected values, the same graph-mode calls: `tf.get_variable`,
`tf.trainable_variables()`, `tf.gradients`, sessions), written for this
project, with the one change a user of the original would make on TF2:

    import tensorflow.compat.v1 as tf
    tf.disable_v2_behavior()

`disable_v2_behavior()` is process-wide, so tests/test_library_api.py runs this
file in its own process (`python tests/original_unit_tests.py`); the rest of
the suite stays in TF2 mode. The project modules are imported flat (the
repository root on sys.path), or from the `bert` package with `--package`.
"""

import collections
import json
import os
import random
import re
import sys
import tempfile

import tensorflow.compat.v1 as tf
tf.disable_v2_behavior()

if "--package" in sys.argv:
  sys.argv.remove("--package")
  from bert import modeling, optimization, tokenization  # pylint: disable=g-import-not-at-top
else:
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
  import modeling  # pylint: disable=g-import-not-at-top
  import optimization  # pylint: disable=g-import-not-at-top
  import tokenization  # pylint: disable=g-import-not-at-top


# ---------------------------------------------------------------- tokenization
_VOCAB = ["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un",
          "runn", "##ing"]


class TokenizationTest(tf.test.TestCase):

  def test_full_tokenizer(self):
    fd, vocab_file = tempfile.mkstemp()
    with os.fdopen(fd, "wb") as f:
      f.write("".join(t + "\n" for t in _VOCAB + [","]).encode("utf-8"))
    tokenizer = tokenization.FullTokenizer(vocab_file)
    os.unlink(vocab_file)
    tokens = tokenizer.tokenize(u"UNwant\u00E9d,running")
    self.assertAllEqual(tokens, ["un", "##want", "##ed", ",", "runn", "##ing"])
    self.assertAllEqual(tokenizer.convert_tokens_to_ids(tokens),
                        [7, 4, 5, 10, 8, 9])

  def test_chinese(self):
    tokenizer = tokenization.BasicTokenizer()
    self.assertAllEqual(tokenizer.tokenize(u"ah\u535A\u63A8zz"),
                        [u"ah", u"\u535A", u"\u63A8", u"zz"])

  def test_basic_tokenizer_lower(self):
    tokenizer = tokenization.BasicTokenizer(do_lower_case=True)
    self.assertAllEqual(tokenizer.tokenize(u" \tHeLLo!how  \n Are yoU?  "),
                        ["hello", "!", "how", "are", "you", "?"])
    self.assertAllEqual(tokenizer.tokenize(u"H\u00E9llo"), ["hello"])

  def test_basic_tokenizer_no_lower(self):
    tokenizer = tokenization.BasicTokenizer(do_lower_case=False)
    self.assertAllEqual(tokenizer.tokenize(u" \tHeLLo!how  \n Are yoU?  "),
                        ["HeLLo", "!", "how", "Are", "yoU", "?"])

  def test_wordpiece_tokenizer(self):
    vocab = {token: i for i, token in enumerate(_VOCAB)}
    tokenizer = tokenization.WordpieceTokenizer(vocab=vocab)
    self.assertAllEqual(tokenizer.tokenize(""), [])
    self.assertAllEqual(tokenizer.tokenize("unwanted running"),
                        ["un", "##want", "##ed", "runn", "##ing"])
    self.assertAllEqual(tokenizer.tokenize("unwantedX running"),
                        ["[UNK]", "runn", "##ing"])

  def test_convert_tokens_to_ids(self):
    vocab = {token: i for i, token in enumerate(_VOCAB)}
    self.assertAllEqual(
        tokenization.convert_tokens_to_ids(
            vocab, ["un", "##want", "##ed", "runn", "##ing"]),
        [7, 4, 5, 8, 9])

  def test_is_whitespace(self):
    for ch in (u" ", u"\t", u"\r", u"\n", u"\u00A0"):
      self.assertTrue(tokenization._is_whitespace(ch))
    for ch in (u"A", u"-"):
      self.assertFalse(tokenization._is_whitespace(ch))

  def test_is_control(self):
    self.assertTrue(tokenization._is_control(u"\u0005"))
    for ch in (u"A", u" ", u"\t", u"\r", u"\U0001F4A9"):
      self.assertFalse(tokenization._is_control(ch))

  def test_is_punctuation(self):
    for ch in (u"-", u"$", u"`", u"."):
      self.assertTrue(tokenization._is_punctuation(ch))
    for ch in (u"A", u" "):
      self.assertFalse(tokenization._is_punctuation(ch))


# -------------------------------------------------------------------- modeling
def _ids_tensor(shape, vocab_size, rng=None, name=None):
  """A constant int32 tensor of random ids in [0, vocab_size)."""
  rng = rng or random.Random()
  count = 1
  for dim in shape:
    count *= dim
  values = [rng.randint(0, vocab_size - 1) for _ in range(count)]
  return tf.constant(value=values, dtype=tf.int32, shape=shape, name=name)


def _flatten(item):
  if isinstance(item, (list, tuple)):
    for x in item:
      for y in _flatten(x):
        yield y
  elif isinstance(item, dict):
    for key in item:
      for y in _flatten(item[key]):
        yield y
  else:
    yield item


def _unreachable_ops(graph, outputs):
  """Ops of `graph` none of whose outputs is reached from `outputs`.

  A tensor reaches the tensors its op reads and writes; a variable reaches
  its `Assign` (so the initialiser chain counts), as in the original check.
  """
  producer = collections.defaultdict(list)   # tensor -> op names
  neighbours = collections.defaultdict(list)  # op -> tensor names
  assign_links = collections.defaultdict(set)
  for op in graph.get_operations():
    neighbours[op.name].extend(x.name for x in op.inputs)
    for y in op.outputs:
      producer[y.name].append(op.name)
      neighbours[op.name].append(y.name)
    if op.type == "Assign":
      names = [x.name for x in op.inputs] + [y.name for y in op.outputs]
      for a in names:
        assign_links[a].update(b for b in names if b != a)
  seen = set()
  stack = [x.name for x in _flatten(outputs)]
  while stack:
    name = stack.pop()
    if name in seen:
      continue
    seen.add(name)
    for op_name in producer.get(name, ()):
      stack.extend(neighbours[op_name])
    stack.extend(assign_links.get(name, ()))
  return [op for op in graph.get_operations()
          if any(y.name not in seen for y in op.outputs)]


class BertModelTest(tf.test.TestCase):

  def _create_model(self, batch_size=13, seq_length=7, vocab_size=99,
                    hidden_size=32, num_hidden_layers=5, num_attention_heads=4,
                    intermediate_size=37, type_vocab_size=16):
    input_ids = _ids_tensor([batch_size, seq_length], vocab_size)
    input_mask = _ids_tensor([batch_size, seq_length], vocab_size=2)
    token_type_ids = _ids_tensor([batch_size, seq_length], type_vocab_size)
    config = modeling.BertConfig(
        vocab_size=vocab_size, hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size, hidden_act="gelu",
        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
        max_position_embeddings=512, type_vocab_size=type_vocab_size,
        initializer_range=0.02)
    model = modeling.BertModel(
        config=config, is_training=True, input_ids=input_ids,
        input_mask=input_mask, token_type_ids=token_type_ids, scope=None)
    return {
        "embedding_output": model.get_embedding_output(),
        "sequence_output": model.get_sequence_output(),
        "pooled_output": model.get_pooled_output(),
        "all_encoder_layers": model.get_all_encoder_layers(),
    }

  def test_default(self):
    with self.test_session() as sess:
      ops = self._create_model()
      init_op = tf.group(tf.global_variables_initializer(),
                         tf.local_variables_initializer())
      sess.run(init_op)
      result = sess.run(ops)
      self.assertAllEqual(result["embedding_output"].shape, [13, 7, 32])
      self.assertAllEqual(result["sequence_output"].shape, [13, 7, 32])
      self.assertAllEqual(result["pooled_output"].shape, [13, 32])
      self.assertLen(result["all_encoder_layers"], 5)
      ignore = [re.compile(x) for x in (
          "^.*/assert_less_equal/.*$", "^.*/dilation_rate$",
          "^.*/Tensordot/concat$", "^.*/Tensordot/concat/axis$",
          "^testing/.*$")]
      unreachable = [op.name for op in _unreachable_ops(sess.graph,
                                                        [init_op, ops])
                     if not any(r.match(op.name) for r in ignore)]
      self.assertEqual(unreachable, [],
                       "The following ops are unreachable: %s" %
                       " ".join(unreachable))
      # The graph's variables carry the original names.
      names = [v.name for v in tf.trainable_variables()]
      self.assertIn("bert/embeddings/word_embeddings:0", names)
      self.assertIn("bert/encoder/layer_4/attention/self/query/kernel:0",
                    names)

  def test_config_to_json_string(self):
    config = modeling.BertConfig(vocab_size=99, hidden_size=37)
    obj = json.loads(config.to_json_string())
    self.assertEqual(obj["vocab_size"], 99)
    self.assertEqual(obj["hidden_size"], 37)


# ---------------------------------------------------------------- optimization
class OptimizationTest(tf.test.TestCase):

  def test_adam(self):
    with self.test_session() as sess:
      w = tf.get_variable(
          "w", shape=[3],
          initializer=tf.constant_initializer([0.1, -0.2, -0.1]))
      x = tf.constant([0.4, 0.2, -0.5])
      loss = tf.reduce_mean(tf.square(x - w))
      tvars = tf.trainable_variables()
      grads = tf.gradients(loss, tvars)
      global_step = tf.train.get_or_create_global_step()
      optimizer = optimization.AdamWeightDecayOptimizer(learning_rate=0.2)
      train_op = optimizer.apply_gradients(zip(grads, tvars), global_step)
      init_op = tf.group(tf.global_variables_initializer(),
                         tf.local_variables_initializer())
      sess.run(init_op)
      for _ in range(100):
        sess.run(train_op)
      w_np = sess.run(w)
      self.assertAllClose(w_np.flat, [0.4, 0.2, -0.5], rtol=1e-2, atol=1e-2)


if __name__ == "__main__":
  tf.test.main()
