"""Tests for tokenization.py against the original's outputs (../shared/reference)."""
import collections
import json
import random
import unicodedata

import pytest

from conftest import REFERENCE, require
import tokenization

TOKENIZATION_DIR = REFERENCE / "data" / "tokenization"
VOCAB = REFERENCE / "data" / "vocab.txt"


def _records():
  path = require(TOKENIZATION_DIR / "tokenization.jsonl")
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def records():
  return _records()


@pytest.fixture(scope="module")
def tokenizers():
  vocab = str(require(VOCAB))
  return {
      True: tokenization.FullTokenizer(vocab, do_lower_case=True),
      False: tokenization.FullTokenizer(vocab, do_lower_case=False),
  }


def _input_of(record):
  if record["kind"] == "bytes":
    return bytes.fromhex(record["input_bytes_hex"])
  return record["text"]


# --------------------------------------------------------------------------
# The oracle: every record of tokenization.jsonl, both casings.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_oracle_tokens_and_ids(records, tokenizers, do_lower_case):
  key = "lower" if do_lower_case else "cased"
  full = tokenizers[do_lower_case]
  basic = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
  checked = 0
  mismatches = []
  for record in records:
    if record["kind"] not in ("text", "bytes"):
      continue
    text = _input_of(record)
    want = record[key]
    # Twice: the second pass runs from the per-word caches.
    for _ in range(2):
      got = {
          "basic_tokens": basic.tokenize(text),
          "wordpiece_tokens": full.tokenize(text),
      }
      got["ids"] = full.convert_tokens_to_ids(got["wordpiece_tokens"])
      if got != want or full.tokenize_to_ids(text) != want["ids"]:
        mismatches.append((record["id"], got, want))
        break
    checked += 1
  assert checked == 224
  assert not mismatches, mismatches[:3]


def test_oracle_wordpiece_direct(records, tokenizers):
  wordpiece = tokenization.WordpieceTokenizer(vocab=tokenizers[True].vocab)
  checked = 0
  for record in records:
    if record["kind"] in ("text", "bytes"):
      assert wordpiece.tokenize(_input_of(record)) == record[
          "wordpiece_direct"], record["id"]
      checked += 1
  assert checked == 224


def test_oracle_convert_to_unicode(records):
  checked = 0
  for record in records:
    if record["kind"] != "convert_to_unicode":
      continue
    checked += 1
    if "input_bytes_hex" in record:
      value = bytes.fromhex(record["input_bytes_hex"])
    elif "input_text" in record:
      value = record["input_text"]
    else:
      value = eval(record["input_repr"])  # pylint: disable=eval-used
    for fn in (tokenization.convert_to_unicode, tokenization.printable_text):
      if "error_type" in record:
        with pytest.raises(ValueError) as info:
          fn(value)
        assert str(info.value) == record["error_message"]
      else:
        out = fn(value)
        assert type(out).__name__ == record["output_type"]
        assert out == record["output"]
  assert checked == 15


def _ranges_to_set(ranges):
  out = set()
  for first, last in ranges:
    out.update(range(first, last + 1))
  return out


def test_char_classes_over_all_code_points():
  path = require(TOKENIZATION_DIR / "char_classes.json")
  with open(path) as f:
    want = json.load(f)
  basic = tokenization.BasicTokenizer()
  predicates = {
      "_is_whitespace": lambda cp: tokenization._is_whitespace(chr(cp)),
      "_is_control": lambda cp: tokenization._is_control(chr(cp)),
      "_is_punctuation": lambda cp: tokenization._is_punctuation(chr(cp)),
      "_is_chinese_char": basic._is_chinese_char,
  }
  assert set(want) == set(predicates)
  for name, predicate in predicates.items():
    got = {cp for cp in range(0x110000) if predicate(cp)}
    assert got == _ranges_to_set(want[name]), name


def _reference_clean_and_split(text):
  """Steps 2-4 of the original BasicTokenizer, character by character."""
  out = []
  for char in text:
    cp = ord(char)
    if cp == 0 or cp == 0xFFFD or tokenization._is_control(char):
      continue
    if tokenization._is_whitespace(char):
      out.append(" ")
    elif tokenization._is_cjk_codepoint(cp):
      out.append(" " + char + " ")
    else:
      out.append(char)
  return tokenization.whitespace_tokenize("".join(out))


def _reference_split_on_punc(text):
  output = []
  start_new_word = True
  for char in text:
    if tokenization._is_punctuation(char):
      output.append([char])
      start_new_word = True
    else:
      if start_new_word:
        output.append([])
      start_new_word = False
      output[-1].append(char)
  return ["".join(x) for x in output]


def _interesting_code_points():
  """Every class boundary of char_classes.json (+-1) and a random sample."""
  path = require(TOKENIZATION_DIR / "char_classes.json")
  with open(path) as f:
    classes = json.load(f)
  points = set(range(0, 0x3000))
  for ranges in classes.values():
    for first, last in ranges:
      points.update((first - 1, first, first + 1, last - 1, last, last + 1))
      if last - first < 2000:
        points.update(range(first, last + 1))
  rng = random.Random(3)
  points.update(rng.randrange(0x110000) for _ in range(20000))
  return sorted(cp for cp in points if 0 <= cp < 0x110000)


def test_fast_tables_agree_with_predicates():
  points = _interesting_code_points()
  for start in range(0, len(points), 4096):
    text = "a".join(chr(cp) for cp in points[start:start + 4096])
    assert tokenization._clean_and_split(text) == _reference_clean_and_split(
        text), start
    assert tokenization._split_on_punctuation(text) == _reference_split_on_punc(
        text), start


def test_ascii_fast_path_matches_general_path():
  rng = random.Random(1)
  alphabet = [chr(cp) for cp in range(128)] + ["ab", "Ab", "  ", "\r\n"]
  general = {lc: tokenization.BasicTokenizer(do_lower_case=lc,
                                             never_split=["\uffff"])
             for lc in (True, False)}
  fast = {lc: tokenization.BasicTokenizer(do_lower_case=lc)
          for lc in (True, False)}
  for _ in range(3000):
    text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
    for lc in (True, False):
      assert fast[lc].tokenize(text) == general[lc].tokenize(text), repr(text)


def test_vocab_facts(tokenizers):
  path = require(TOKENIZATION_DIR / "vocab_facts.json")
  with open(path) as f:
    facts = json.load(f)
  vocab = tokenizers[True].vocab
  assert isinstance(vocab, collections.OrderedDict)
  assert len(vocab) == facts.pop("size")
  for token, index in facts.items():
    assert vocab[token] == index
    assert tokenizers[True].inv_vocab[index] == token


# --------------------------------------------------------------------------
# The original's own unit tests (spec §10).
# --------------------------------------------------------------------------

_TEST_VOCAB = ["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un",
               "runn", "##ing", ","]


def _write_vocab(tmp_path, tokens, name="vocab.txt"):
  path = tmp_path / name
  path.write_text("".join(token + "\n" for token in tokens), encoding="utf-8")
  return str(path)


def test_original_full_tokenizer(tmp_path):
  tokenizer = tokenization.FullTokenizer(_write_vocab(tmp_path, _TEST_VOCAB))
  tokens = tokenizer.tokenize(u"UNwant\u00E9d,running")
  assert tokens == ["un", "##want", "##ed", ",", "runn", "##ing"]
  assert tokenizer.convert_tokens_to_ids(tokens) == [7, 4, 5, 10, 8, 9]
  assert tokenizer.convert_ids_to_tokens([7, 4, 5, 10, 8, 9]) == tokens


def test_original_chinese():
  tokenizer = tokenization.BasicTokenizer()
  assert tokenizer.tokenize(u"ah\u535A\u63A8zz") == [
      u"ah", u"\u535A", u"\u63A8", u"zz"]


def test_original_basic_tokenizer_lower():
  tokenizer = tokenization.BasicTokenizer(do_lower_case=True)
  assert tokenizer.tokenize(u" \tHeLLo!how  \n Are yoU?  ") == [
      "hello", "!", "how", "are", "you", "?"]
  assert tokenizer.tokenize(u"H\u00E9llo") == ["hello"]


def test_original_basic_tokenizer_no_lower():
  tokenizer = tokenization.BasicTokenizer(do_lower_case=False)
  assert tokenizer.tokenize(u" \tHeLLo!how  \n Are yoU?  ") == [
      "HeLLo", "!", "how", "Are", "yoU", "?"]


def test_original_wordpiece_tokenizer():
  vocab = {token: i for i, token in enumerate(_TEST_VOCAB[:-1])}
  tokenizer = tokenization.WordpieceTokenizer(vocab=vocab)
  assert tokenizer.tokenize("") == []
  assert tokenizer.tokenize("unwanted running") == [
      "un", "##want", "##ed", "runn", "##ing"]
  assert tokenizer.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]


def test_original_convert_tokens_to_ids():
  vocab = {token: i for i, token in enumerate(_TEST_VOCAB[:-1])}
  assert tokenization.convert_tokens_to_ids(
      vocab, ["un", "##want", "##ed", "runn", "##ing"]) == [7, 4, 5, 8, 9]
  with pytest.raises(KeyError):
    tokenization.convert_tokens_to_ids(vocab, ["nope"])


def test_original_character_predicates():
  for char in (u" ", u"\t", u"\r", u"\n", u"\u00A0"):
    assert tokenization._is_whitespace(char)
  for char in (u"A", u"-"):
    assert not tokenization._is_whitespace(char)
  assert tokenization._is_control(u"\u0005")
  for char in (u"A", u" ", u"\t", u"\r", u"\U0001F4A9"):
    assert not tokenization._is_control(char)
  for char in (u"-", u"$", u"`", u"."):
    assert tokenization._is_punctuation(char)
  for char in (u"A", u" "):
    assert not tokenization._is_punctuation(char)


def test_spec_probe_sample_text_first_line():
  vocab = str(require(REFERENCE.parent / "data" / "vocab" /
                      "uncased_vocab.txt"))
  sample = require(REFERENCE / "data" / "pretraining" / "inputs" /
                   "sample_text.txt")
  first_line = sample.read_text(encoding="utf-8").split("\n")[0]
  tokens = tokenization.FullTokenizer(vocab).tokenize(first_line)
  assert " ".join(tokens) == (
      "this text is included to make sure unicode is handled properly : "
      "\u529b \u52a0 \u52dd \u5317 \u533a \u1d35 ##\u1d3a ##\u1d40 ##\u1d43 "
      "##\u099b ##\u099c ##\u099f ##\u09a1 ##\u09a3 ##\u09a4")


def test_whitespace_tokenize():
  assert tokenization.whitespace_tokenize("  ") == []
  assert tokenization.whitespace_tokenize(" a\u3000b\u2028c\x1fd ") == [
      "a", "b", "c", "d"]


# --------------------------------------------------------------------------
# WordPiece: the bounded search equals the plain greedy search.
# --------------------------------------------------------------------------


def _reference_wordpiece(vocab, word, unk="[UNK]", max_chars=200):
  chars = list(word)
  if len(chars) > max_chars:
    return [unk]
  start = 0
  out = []
  while start < len(chars):
    end = len(chars)
    piece = None
    while start < end:
      sub = "".join(chars[start:end])
      if start > 0:
        sub = "##" + sub
      if sub in vocab:
        piece = sub
        break
      end -= 1
    if piece is None:
      return [unk]
    out.append(piece)
    start = end
  return out


def test_wordpiece_matches_plain_greedy_search():
  rng = random.Random(7)
  letters = "abc#"
  vocab = {}
  for _ in range(60):
    token = "".join(rng.choice(letters) for _ in range(rng.randint(1, 4)))
    if rng.random() < 0.5:
      token = "##" + token
    vocab.setdefault(token, len(vocab))
  tokenizer = tokenization.WordpieceTokenizer(vocab, max_input_chars_per_word=9)
  for _ in range(3000):
    word = "".join(rng.choice(letters) for _ in range(rng.randint(1, 12)))
    assert tokenizer.tokenize(word) == _reference_wordpiece(
        vocab, word, max_chars=9), word


def test_small_cache_bound_keeps_results(tokenizers, records):
  vocab_path = str(require(VOCAB))
  tokenizer = tokenization.FullTokenizer(vocab_path, do_lower_case=True)
  for table in (tokenizer._word_pieces, tokenizer._word_ids):
    table._max_size = 3
  for record in records:
    if record["kind"] == "text":
      assert tokenizer.tokenize(record["text"]) == record["lower"][
          "wordpiece_tokens"]
      assert tokenizer.tokenize_to_ids(record["text"]) == record["lower"]["ids"]


# --------------------------------------------------------------------------
# New options: strip_accents and never_split.
# --------------------------------------------------------------------------


def test_strip_accents_defaults_follow_lower_case():
  text = u"Caf\u00E9 \u30D1\u30F3\u30C0"  # "Café パンダ"
  lower = tokenization.BasicTokenizer(do_lower_case=True)
  cased = tokenization.BasicTokenizer(do_lower_case=False)
  assert lower.tokenize(text) == ["cafe", u"\u30CF\u30F3\u30BF"]
  assert cased.tokenize(text) == [u"Caf\u00E9", u"\u30D1\u30F3\u30C0"]
  explicit_none = tokenization.BasicTokenizer(True, strip_accents=None)
  assert explicit_none.tokenize(text) == lower.tokenize(text)


def test_strip_accents_independent_of_lower_case():
  text = u"Caf\u00E9 \u30D1\u30F3\u30C0"
  keep = tokenization.BasicTokenizer(do_lower_case=True, strip_accents=False)
  assert keep.tokenize(text) == [u"caf\u00E9", u"\u30D1\u30F3\u30C0"]
  strip = tokenization.BasicTokenizer(do_lower_case=False, strip_accents=True)
  assert strip.tokenize(text) == ["Cafe", u"\u30CF\u30F3\u30BF"]
  # Stripping means NFD without recomposition, as in the original.
  assert strip.tokenize(u"\uD55C") == [unicodedata.normalize("NFD", u"\uD55C")]


def test_full_tokenizer_strip_accents_option():
  vocab = str(require(VOCAB))
  keep = tokenization.FullTokenizer(vocab, do_lower_case=True,
                                    strip_accents=False)
  assert keep.tokenize(u"caf\u00E9") != ["cafe"]
  strip = tokenization.FullTokenizer(vocab, do_lower_case=True,
                                     strip_accents=True)
  assert strip.tokenize(u"Caf\u00E9") == ["cafe"]


def test_never_split_default_splits_special_tokens(tokenizers):
  assert tokenizers[True].tokenize("a [MASK] b") == ["a", "[", "mask", "]", "b"]


def test_never_split_keeps_special_tokens(tokenizers):
  vocab = str(require(VOCAB))
  specials = ["[MASK]", "[CLS]", "[SEP]"]
  for do_lower_case in (True, False):
    tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=do_lower_case,
                                           never_split=specials)
    tokens = tokenizer.tokenize("[CLS] the [MASK] sat. [SEP]")
    assert tokens == ["[CLS]", "the", "[MASK]", "sat", ".", "[SEP]"]
    assert tokenizer.tokenize_to_ids("[CLS] the [MASK] sat. [SEP]") == [
        101, 1996, 103, 2938, 1012, 102]
    # Also when glued to punctuation or other text; the rest is unchanged.
    assert tokenizer.tokenize("([MASK]).") == ["(", "[MASK]", ")", "."]
    basic = tokenization.BasicTokenizer(do_lower_case=True, never_split=specials)
    assert basic.tokenize(u"x[MASK]Y \u00C9") == ["x", "[MASK]", "y", "e"]
  # Non-special text tokenizes exactly as without the option.
  plain = tokenizers[True]
  special = tokenization.FullTokenizer(vocab, never_split=specials)
  for record in _records():
    if record["kind"] == "text" and "[" not in record["text"]:
      assert special.tokenize(record["text"]) == plain.tokenize(record["text"])


# --------------------------------------------------------------------------
# validate_case_matches_checkpoint.
# --------------------------------------------------------------------------


def test_validate_case_original_behaviour():
  check = tokenization.validate_case_matches_checkpoint
  check(True, None)
  check(False, "")
  check(True, "/models/uncased_L-12_H-768_A-12/bert_model.ckpt")
  check(False, "gs://b/cased_L-12_H-768_A-12/bert_model.ckpt.index")
  check(True, "/models/uncased_L-12_H-768_A-12/model.ckpt-1000")
  with pytest.raises(ValueError) as info:
    check(False, "/m/uncased_L-12_H-768_A-12/bert_model.ckpt")
  message = str(info.value)
  for part in ("--do_lower_case=False", "/m/uncased_L-12_H-768_A-12/bert_model.ckpt",
               "`uncased_L-12_H-768_A-12`", "lowercased", "--do_lower_case=True"):
    assert part in message
  for name in ("uncased_L-24_H-1024_A-16", "multilingual_L-12_H-768_A-12",
               "chinese_L-12_H-768_A-12"):
    with pytest.raises(ValueError):
      check(False, "x/%s/bert_model.ckpt-5" % name)
  for name in ("cased_L-12_H-768_A-12", "cased_L-24_H-1024_A-16",
               "multi_cased_L-12_H-768_A-12"):
    with pytest.raises(ValueError, match="a cased model"):
      check(True, "%s/bert_model.ckpt" % name)
  # Not known to the original: never checked by default.
  check(False, "/m/wwm_uncased_L-24_H-1024_A-16/bert_model.ckpt")
  check(True, "/m/wwm_cased_L-24_H-1024_A-16/bert_model.ckpt")
  check(False, "/m/uncased_L-4_H-256_A-4/bert_model.ckpt")


def test_validate_case_extended():
  check = tokenization.validate_case_matches_checkpoint
  with pytest.raises(ValueError, match="lowercased"):
    check(False, "/m/wwm_uncased_L-24_H-1024_A-16/bert_model.ckpt",
          extended=True)
  with pytest.raises(ValueError, match="a cased model"):
    check(True, "/m/wwm_cased_L-24_H-1024_A-16/bert_model.ckpt", extended=True)
  count = 0
  for layers in (2, 4, 6, 8, 10, 12):
    for hidden, heads in ((128, 2), (256, 4), (512, 8), (768, 12)):
      path = "/m/uncased_L-%d_H-%d_A-%d/bert_model.ckpt" % (layers, hidden,
                                                            heads)
      with pytest.raises(ValueError):
        check(False, path, extended=True)
      check(True, path, extended=True)
      count += 1
  assert count == 24
  # The original list is still checked, and unknown names still pass.
  with pytest.raises(ValueError):
    check(True, "/m/cased_L-12_H-768_A-12/bert_model.ckpt", extended=True)
  check(False, "/m/my_model/bert_model.ckpt", extended=True)


# --------------------------------------------------------------------------
# load_vocab: line semantics of TF's GFile.readline(), strict UTF-8, gfile.
# --------------------------------------------------------------------------

_VOCAB_CASES = {
    "plain": b"[PAD]\n[UNK]\nhello\n",
    "no_final_newline": b"a\nb",
    "crlf": b"a\r\nb\r\n",
    "lone_cr": b"a\rb\nc\n",
    "blank_line": b"a\n\nb\n",
    "cr_only_line": b"a\n\r\nb\n",
    "final_cr": b"a\nb\n\r",
    "duplicate": b"x\ny\nx\nz\n",
    "spaces": b"  a \t\n\xc2\xa0b\xc2\xa0\n",
    "bom": b"\xef\xbb\xbfa\nb\n",
    "empty": b"",
    "only_newlines": b"\n\n",
}


def _original_load_vocab(path):
  """The original's reading loop over TF's GFile.readline()."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  vocab = collections.OrderedDict()
  index = 0
  with tf.io.gfile.GFile(path, "r") as reader:
    while True:
      token = tokenization.convert_to_unicode(reader.readline())
      if not token:
        break
      vocab[token.strip()] = index
      index += 1
  return vocab


@pytest.mark.parametrize("name", sorted(_VOCAB_CASES))
def test_load_vocab_edge_cases_match_gfile_readline(tmp_path, name):
  path = tmp_path / ("%s.txt" % name)
  path.write_bytes(_VOCAB_CASES[name])
  want = _original_load_vocab(str(path))
  got = tokenization.load_vocab(str(path))
  assert list(got.items()) == list(want.items())


def test_load_vocab_known_results(tmp_path):
  def load(data):
    path = tmp_path / "v.txt"
    path.write_bytes(data)
    return list(tokenization.load_vocab(str(path)).items())
  assert load(b"a\r\nb\rc\n") == [("a", 0), ("bc", 1)]
  assert load(b"a\n\nb\n") == [("a", 0), ("", 1), ("b", 2)]
  assert load(b"x\ny\nx\n") == [("x", 2), ("y", 1)]
  assert load(b"a\nb") == [("a", 0), ("b", 1)]


def test_load_vocab_rejects_invalid_utf8(tmp_path):
  path = tmp_path / "bad.txt"
  path.write_bytes(b"ok\n\xff\xfe\n")
  with pytest.raises(UnicodeDecodeError):
    tokenization.load_vocab(str(path))


@pytest.mark.parametrize("through_gfile", [False, True])
def test_load_vocab_missing_file(tmp_path, monkeypatch, through_gfile):
  if through_gfile:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    monkeypatch.setattr(tokenization, "_tf_gfile_for", lambda p: tf.io.gfile)
  else:
    monkeypatch.setattr(tokenization, "_tf_gfile_for", lambda p: None)
  with pytest.raises(FileNotFoundError, match="missing.txt"):
    tokenization.load_vocab(str(tmp_path / "missing.txt"))


def test_load_vocab_same_through_gfile_and_python_io(monkeypatch):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = str(require(VOCAB))
  monkeypatch.setattr(tokenization, "_tf_gfile_for", lambda p: tf.io.gfile)
  through_gfile = tokenization.load_vocab(path)
  monkeypatch.setattr(tokenization, "_tf_gfile_for", lambda p: None)
  through_io = tokenization.load_vocab(path)
  assert list(through_gfile.items()) == list(through_io.items())
  assert len(through_io) == 30522
