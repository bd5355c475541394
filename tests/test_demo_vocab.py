"""Tests for demo/make_vocab.py (WordPiece vocabulary builder) and the demo corpus."""
import importlib.util

import pytest

import tokenization
from conftest import ROOT

DEMO = ROOT / "demo"

SMALL_TEXT = """\
The baker walked to his shop before sunrise.
He was baking bread, and the bakers next door were baking cakes.
Walking home, she talked about the walkers she had passed.

Naïve Crème brûlée costs €5 at the café; «quoted» text, x=y+1 & 100% (sure)!
Straße, İstanbul and 東京 are words too, as is supercalifragilistic.
"""


def _load_make_vocab():
  spec = importlib.util.spec_from_file_location("make_vocab",
                                                DEMO / "make_vocab.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


make_vocab = _load_make_vocab()


def _build(tmp_path, text, vocab_size=200, num_unused=3, min_frequency=2,
           do_lower_case=True, name="vocab.txt"):
  corpus = tmp_path / "corpus.txt"
  corpus.write_text(text, encoding="utf-8")
  files = make_vocab.expand_input_patterns(str(corpus))
  counts = make_vocab.count_words(files, do_lower_case)
  vocab = make_vocab.build_vocab(counts, vocab_size, num_unused, min_frequency)
  out = tmp_path / "out" / name
  make_vocab.write_vocab(vocab, str(out))
  return vocab, out


def _words(text, do_lower_case=True):
  basic = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
  return [w for line in text.splitlines() for w in basic.tokenize(line)]


def test_special_token_layout(tmp_path):
  vocab, out = _build(tmp_path, SMALL_TEXT, num_unused=3)
  assert vocab[:8] == ["[PAD]", "[unused0]", "[unused1]", "[unused2]", "[UNK]",
                       "[CLS]", "[SEP]", "[MASK]"]
  tokenizer = tokenization.FullTokenizer(str(out), do_lower_case=True)
  assert list(tokenizer.vocab) == vocab          # file round trip, no blanks
  assert len(set(vocab)) == len(vocab)           # no duplicates
  assert tokenizer.vocab["[PAD]"] == 0
  assert tokenizer.vocab["[UNK]"] == 4
  assert [tokenizer.vocab[t] for t in ("[CLS]", "[SEP]", "[MASK]")] == [5, 6, 7]
  assert len(vocab) <= 200
  # Every character seen, as itself and as a ## continuation.
  for char in set("".join(_words(SMALL_TEXT))):
    assert char in tokenizer.vocab and "##" + char in tokenizer.vocab


def test_every_word_tokenizes_without_unk(tmp_path):
  for do_lower_case in (True, False):
    vocab, out = _build(tmp_path, SMALL_TEXT, do_lower_case=do_lower_case,
                        name="vocab_%s.txt" % do_lower_case)
    tokenizer = tokenization.FullTokenizer(str(out), do_lower_case=do_lower_case)
    for line in SMALL_TEXT.splitlines():
      pieces = tokenizer.tokenize(line)
      assert "[UNK]" not in pieces, (line, pieces)
    # A word never seen, made of seen characters, still needs no [UNK].
    assert "[UNK]" not in tokenizer.tokenize("breadwalker")


def test_frequent_words_and_suffixes_are_learned(tmp_path):
  vocab, out = _build(tmp_path, SMALL_TEXT, vocab_size=400)
  tokenizer = tokenization.FullTokenizer(str(out), do_lower_case=True)
  # Frequent words become single tokens; shared endings become ## pieces.
  assert tokenizer.tokenize("the baking") == ["the", "baking"]
  assert "##ing" in tokenizer.vocab or "##king" in tokenizer.vocab
  # A word seen once (min_frequency 2) is not learned whole.
  assert "supercalifragilistic" not in tokenizer.vocab
  # Nothing beyond the special tokens and characters when the budget is full.
  small, _ = _build(tmp_path, SMALL_TEXT, vocab_size=1000, min_frequency=1000)
  assert all(len(t) == 1 or (t.startswith("##") and len(t) == 3) or
             t.startswith("[") for t in small)


def test_deterministic(tmp_path):
  first, out1 = _build(tmp_path, SMALL_TEXT, name="a.txt")
  second, out2 = _build(tmp_path, SMALL_TEXT, name="b.txt")
  assert first == second
  assert out1.read_bytes() == out2.read_bytes()
  # Line order of the input does not matter (only word counts do).
  reordered = "\n".join(reversed(SMALL_TEXT.splitlines())) + "\n"
  third, _ = _build(tmp_path, reordered, name="c.txt")
  assert third == first


def test_bad_input(tmp_path):
  with pytest.raises(ValueError, match="matches no file"):
    make_vocab.expand_input_patterns(str(tmp_path / "missing*.txt"))
  with pytest.raises(ValueError, match=r"--vocab_size=20 is too small.*use "
                     r"--vocab_size=\d+"):
    _build(tmp_path, SMALL_TEXT, vocab_size=20)


def test_demo_corpus_and_vocab(tmp_path):
  corpus = (DEMO / "corpus.txt").read_text(encoding="utf-8")
  documents = [d for d in corpus.split("\n\n") if d.strip()]
  assert len(documents) >= 20
  assert all(len(d.strip().splitlines()) >= 10 for d in documents)
  vocab, out = _build(tmp_path, corpus, vocab_size=2000, num_unused=10)
  assert len(vocab) <= 2000
  tokenizer = tokenization.FullTokenizer(str(out), do_lower_case=True)
  pieces = tokenizer.tokenize(corpus)
  assert "[UNK]" not in pieces
  # Most words of the corpus are whole tokens of its own vocabulary.
  assert len(pieces) < 1.2 * len(_words(corpus))
