# coding=utf-8
"""Writes tests/fixtures/hf_tiny_* with Hugging Face `transformers` itself.

Run once (needs torch and transformers, which the test suite does not):

    pip install torch==2.13.0 transformers
    python tests/make_hf_fixtures.py

For each activation ("gelu" = the exact erf form, "gelu_new" = the tanh form)
it saves a tiny randomly initialised `BertForPreTraining` with
`save_pretrained` and the outputs `transformers` computes on fixed inputs
(`outputs.npz`: sequence output, pooled output, MLM log-probabilities at the
masked positions, NSP logits). The "gelu" model's tokenizer is saved by
`transformers` too (a v5 directory: tokenizer.json, no vocab.txt); the
"gelu_new" one carries a plain vocab.txt.

Then it checks the other direction: classifier and SQuAD checkpoints of ours
(built from the converted tiny model with random heads), converted by
convert_checkpoint.py, load in `transformers` as BertForSequenceClassification
/ BertForQuestionAnswering with no missing or unexpected keys and give our
logits; it prints the numbers.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIXTURES = os.path.join(HERE, "fixtures")

# A 100-token vocabulary: the special tokens, letters, a few words and pieces.
_WORDS = ("the cat dog sat on mat is was and of to in it he she they we "
          "you run ran walk house tree big small red blue green . , ! ?")
VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] +
         list("abcdefghijklmnopqrstuvwxyz") + _WORDS.split() +
         ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"])
VOCAB += ["[unused%d]" % i for i in range(100 - len(VOCAB))]
assert len(VOCAB) == 100, len(VOCAB)

# Fixed inputs: two sequences of 12, the second padded after 8 tokens.
INPUT_IDS = np.array(
    [[2, 31, 33, 34, 4, 35, 36, 3, 40, 41, 4, 3],
     [2, 50, 4, 52, 53, 3, 60, 3, 0, 0, 0, 0]], np.int32)
INPUT_MASK = (INPUT_IDS != 0).astype(np.int32)
SEGMENT_IDS = np.array(
    [[0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1],
     [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0]], np.int32)
MASKED_POSITIONS = np.array([[4, 10, 1], [2, 4, 0]], np.int32)

# initializer_range 0.2 (not 0.02): pre-activations of order 1, where the two
# gelu forms differ by ~1e-3, so the tests tell them apart.
CONFIG = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2,
              num_attention_heads=4, intermediate_size=37,
              max_position_embeddings=64, type_vocab_size=2,
              initializer_range=0.2)


def make_pretraining_fixture(act, seed):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  out_dir = os.path.join(FIXTURES, "hf_tiny_" + act)
  shutil.rmtree(out_dir, ignore_errors=True)
  torch.manual_seed(seed)
  config = transformers.BertConfig(hidden_act=act, **CONFIG)
  model = transformers.BertForPreTraining(config).eval()
  # Non-trivial LayerNorm and bias values (they start at 1 and 0).
  with torch.no_grad():
    for name, p in model.named_parameters():
      if name.endswith("bias") or "LayerNorm" in name:
        p.add_(0.1 * torch.randn_like(p))
  model.save_pretrained(out_dir)
  with tempfile.TemporaryDirectory() as tmp:
    vocab_file = os.path.join(tmp, "vocab.txt")
    with open(vocab_file, "w") as f:
      f.write("".join(t + "\n" for t in VOCAB))
    if act == "gelu":
      tokenizer = transformers.BertTokenizer(vocab_file, do_lower_case=True)
      tokenizer.save_pretrained(out_dir)
    else:
      shutil.copy(vocab_file, os.path.join(out_dir, "vocab.txt"))
  with torch.no_grad():
    ids = torch.tensor(INPUT_IDS, dtype=torch.long)
    mask = torch.tensor(INPUT_MASK, dtype=torch.long)
    segments = torch.tensor(SEGMENT_IDS, dtype=torch.long)
    encoder = model.bert(input_ids=ids, attention_mask=mask,
                         token_type_ids=segments)
    out = model(input_ids=ids, attention_mask=mask, token_type_ids=segments)
    log_probs = torch.log_softmax(out.prediction_logits, dim=-1).numpy()
  batch = np.arange(INPUT_IDS.shape[0])[:, None]
  np.savez(os.path.join(out_dir, "outputs.npz"),
           input_ids=INPUT_IDS, input_mask=INPUT_MASK, segment_ids=SEGMENT_IDS,
           masked_lm_positions=MASKED_POSITIONS,
           sequence_output=encoder.last_hidden_state.numpy(),
           pooled_output=encoder.pooler_output.numpy(),
           masked_lm_log_probs=log_probs[batch, MASKED_POSITIONS],
           next_sentence_logits=out.seq_relationship_logits.numpy())
  print("wrote", out_dir, sorted(os.listdir(out_dir)))
  return out_dir


def convert(args):
  subprocess.run([sys.executable, os.path.join(ROOT, "convert_checkpoint.py")]
                 + args, check=True)


def check_heads_load(hf_dir):
  """Our classifier / SQuAD checkpoints load in transformers, same logits."""
  sys.path.insert(0, ROOT)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  import checkpoints  # pylint: disable=g-import-not-at-top
  import modeling  # pylint: disable=g-import-not-at-top
  import run_classifier  # pylint: disable=g-import-not-at-top
  import run_squad  # pylint: disable=g-import-not-at-top

  with tempfile.TemporaryDirectory() as tmp:
    original = os.path.join(tmp, "original")
    convert(["--input=" + hf_dir, "--output=" + original])
    config = modeling.BertConfig.from_json_file(
        os.path.join(original, "bert_config.json"))
    init = os.path.join(original, "bert_model.ckpt")
    ids, mask, segments = (tf.constant(INPUT_IDS), tf.constant(INPUT_MASK),
                           tf.constant(SEGMENT_IDS))
    torch_inputs = dict(
        input_ids=torch.tensor(INPUT_IDS, dtype=torch.long),
        attention_mask=torch.tensor(INPUT_MASK, dtype=torch.long),
        token_type_ids=torch.tensor(SEGMENT_IDS, dtype=torch.long))
    cases = [
        ("BertForSequenceClassification",
         run_classifier.ClassifierModel(config, num_labels=2),
         ["--task_name=mrpc"]),
        ("BertForQuestionAnswering", run_squad.SquadModel(config), []),
    ]
    for name, model, extra in cases:
      named = model.named_variables()
      checkpoints.init_from_checkpoint(named, init, log=False)
      for var_name, variable in named.items():  # Trained-looking heads.
        if not var_name.startswith("bert/"):
          variable.assign(tf.random.normal(variable.shape, seed=3) * 0.5)
      ours_dir = os.path.join(tmp, name)
      checkpoints.save(ours_dir, 7, named)
      for f in ("bert_config.json", "vocab.txt"):
        shutil.copy(os.path.join(original, f), ours_dir)
      hf_out = os.path.join(tmp, name + "_hf")
      convert(["--input=" + ours_dir, "--output=" + hf_out] + extra)
      cls = getattr(transformers, name)
      hf_model, info = cls.from_pretrained(hf_out, output_loading_info=True)
      hf_model.eval()
      with torch.no_grad():
        hf_out_values = hf_model(**torch_inputs)
      ours = model(ids, input_mask=mask, segment_ids=segments)
      if name == "BertForSequenceClassification":
        diffs = [np.abs(ours.numpy() - hf_out_values.logits.numpy()).max()]
        labels = hf_model.config.id2label
      else:
        diffs = [np.abs(ours[0].numpy() -
                        hf_out_values.start_logits.numpy()).max(),
                 np.abs(ours[1].numpy() -
                        hf_out_values.end_logits.numpy()).max()]
        labels = None
      print("%s: missing_keys=%s unexpected_keys=%s mismatched=%s "
            "max |logit diff|=%s%s" %
            (name, info["missing_keys"], info["unexpected_keys"],
             info.get("mismatched_keys"), ["%.2e" % d for d in diffs],
             " id2label=%s" % labels if labels else ""))
      assert not info["missing_keys"] and not info["unexpected_keys"]
      assert max(diffs) < 1e-5


def check_minilm():
  """The MiniLM reference checkpoint loads as a BertModel with its tokenizer."""
  sys.path.insert(0, ROOT)
  minilm = os.path.join(ROOT, "..", "shared", "reference", "model",
                        "minilm_ckpt")
  if not os.path.exists(os.path.join(minilm, "bert_model.ckpt.index")):
    print("MiniLM reference checkpoint absent: skipped")
    return
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  import checkpoints  # pylint: disable=g-import-not-at-top
  import modeling  # pylint: disable=g-import-not-at-top
  import tokenization  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as tmp:
    hf_dir = os.path.join(tmp, "minilm_hf")
    convert(["--input=" + minilm, "--output=" + hf_dir])
    hf_model, info = transformers.BertModel.from_pretrained(
        hf_dir, output_loading_info=True)
    hf_model.eval()
    text = "Hello, World! The unaffable cat sat."
    hf_ids = transformers.AutoTokenizer.from_pretrained(hf_dir)(text)[
        "input_ids"]
    ours_tok = tokenization.FullTokenizer(os.path.join(minilm, "vocab.txt"),
                                          do_lower_case=True)
    our_ids = ours_tok.convert_tokens_to_ids(
        ["[CLS]"] + ours_tok.tokenize(text) + ["[SEP]"])
    ids = np.array([our_ids + [0] * 4], np.int32)
    mask = (ids != 0).astype(np.int32)
    with torch.no_grad():
      hf_out = hf_model(input_ids=torch.tensor(ids, dtype=torch.long),
                        attention_mask=torch.tensor(mask, dtype=torch.long))
    config = modeling.BertConfig.from_json_file(
        os.path.join(minilm, "bert_config.json"))
    model = modeling.BertModel(config)
    checkpoints.init_from_checkpoint(model.named_variables(), minilm,
                                     log=False)
    ours = model(tf.constant(ids), input_mask=tf.constant(mask))
    n = len(our_ids)
    print("MiniLM as BertModel: missing_keys=%s unexpected_keys=%s, same "
          "token ids as our tokenizer: %s, max |sequence diff|=%.2e, max "
          "|pooled diff|=%.2e" % (
              info["missing_keys"], info["unexpected_keys"],
              hf_ids == our_ids,
              np.abs(ours.sequence_output.numpy()[:, :n] -
                     hf_out.last_hidden_state.numpy()[:, :n]).max(),
              np.abs(ours.pooled_output.numpy() -
                     hf_out.pooler_output.numpy()).max()))


def main():
  os.makedirs(FIXTURES, exist_ok=True)
  make_pretraining_fixture("gelu", seed=1)
  new_dir = make_pretraining_fixture("gelu_new", seed=2)
  check_heads_load(new_dir)
  check_minilm()


if __name__ == "__main__":
  main()
