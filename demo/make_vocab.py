# coding=utf-8
"""Builds a WordPiece vocabulary (`vocab.txt`) from plain text files.

The original release shipped no code to build a vocabulary (original issues #17 and
#59), and vocabularies made by other tools do not always suit `tokenization.py`. This
script builds one that does: it runs the project's own `tokenization.BasicTokenizer`
over the input, so the words it learns pieces for are exactly the words
`FullTokenizer` will later hand to the WordPiece step.

The vocabulary has the layout of the released BERT vocabularies:

  [PAD]                      id 0 (the padding id of every TFRecord)
  [unused0] ... [unusedK]    reserved rows, free for your own special tokens
  [UNK] [CLS] [SEP] [MASK]
  every character seen       as itself and as `##c`, so no word can become [UNK]
  learned pieces             whole words, word beginnings and `##` pieces

The learned pieces come from the usual WordPiece training procedure: every word starts
as its characters (`w ##o ##r ##d`), and the most frequent pair of adjacent pieces
(counted over the corpus) is merged into one new piece, again and again, until the
vocabulary has `--vocab_size` entries or no pair occurs `--min_frequency` times. So
frequent words become single tokens, and frequent endings such as `##ing` or `##ed`
become pieces that rarer words are built from. Ties are broken by the pieces' text,
so the output depends only on the input and the flags.

Because every character is in the vocabulary both as a word start and as a `##`
continuation, every word of the input tokenizes without `[UNK]` (except words longer
than the WordPiece limit of 200 characters, which `tokenization.py` always maps to
`[UNK]`; they are counted in the log).

Usage:
  python3 demo/make_vocab.py --input_file=corpus.txt --output_file=vocab.txt \
      --vocab_size=8000 --do_lower_case=True
"""

import collections
import heapq
import os
import sys

# The script lives in demo/; the project modules live one level up.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.insert(0, _ROOT)

import common  # pylint: disable=unused-import,wrong-import-position  (before TensorFlow: quiet start-up)
from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

import tokenization  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS

# `tokenization.WordpieceTokenizer` maps longer words to [UNK] whatever the vocab.
MAX_INPUT_CHARS_PER_WORD = 200


def define_flags():
  """Defines the command-line flags of this script."""
  flags.DEFINE_string(
      "input_file", None,
      "Input raw text file (or comma-separated list of files or glob patterns).")
  flags.DEFINE_string(
      "output_file", None, "Where to write the vocabulary, one token per line.")
  flags.DEFINE_integer(
      "vocab_size", 30522,
      "Size of the vocabulary, special tokens included. Building stops earlier when "
      "no pair of pieces occurs `min_frequency` times any more.")
  flags.DEFINE_bool(
      "do_lower_case", True,
      "Whether to lower case the input text. Should be True for uncased models and "
      "False for cased models; use the same value for the later scripts.")
  flags.DEFINE_integer(
      "num_unused", 10,
      "How many `[unusedK]` placeholder tokens to reserve between `[PAD]` and "
      "`[UNK]`.")
  flags.DEFINE_integer(
      "min_frequency", 2,
      "A new piece is only learned from a pair of pieces that occurs at least this "
      "many times in the input.")


def special_tokens(num_unused):
  """Returns the special tokens at the start of the vocabulary, in order."""
  return (["[PAD]"] + ["[unused%d]" % i for i in range(num_unused)] +
          ["[UNK]", "[CLS]", "[SEP]", "[MASK]"])


def expand_input_patterns(input_file):
  """Expands a comma-separated list of files / glob patterns into file paths."""
  paths = []
  for pattern in input_file.split(","):
    pattern = pattern.strip()
    if not pattern:
      continue
    matches = sorted(tf.io.gfile.glob(pattern))
    if not matches:
      raise ValueError(
          "--input_file: %r matches no file; give an existing text file or a glob "
          "pattern that matches one." % pattern)
    paths.extend(matches)
  if not paths:
    raise ValueError("--input_file is empty; give at least one text file.")
  return paths


def count_words(input_files, do_lower_case=True):
  """Counts the words that `BasicTokenizer` makes of the lines of `input_files`.

  Args:
    input_files: list of text file paths (UTF-8), read with `tf.io.gfile`.
    do_lower_case: passed to `tokenization.BasicTokenizer`.

  Returns:
    `collections.Counter` word -> number of occurrences.
  """
  basic_tokenizer = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
  counts = collections.Counter()
  for path in input_files:
    logging.info("Reading %s", path)
    with tf.io.gfile.GFile(path, "r") as reader:
      for line in reader:
        counts.update(basic_tokenizer.tokenize(tokenization.convert_to_unicode(line)))
  return counts


def _initial_pieces(word):
  """Splits a word into its first character and `##` continuation characters."""
  return [word[0]] + ["##" + c for c in word[1:]]


def _merge_pair(pieces, pair):
  """Merges every non-overlapping occurrence of `pair` in `pieces`, left to right."""
  first, second = pair
  merged = []
  i = 0
  while i < len(pieces):
    if i + 1 < len(pieces) and pieces[i] == first and pieces[i + 1] == second:
      merged.append(first + second[2:])
      i += 2
    else:
      merged.append(pieces[i])
      i += 1
  return merged


def learn_pieces(word_counts, max_new_pieces, min_frequency=2, known_tokens=()):
  """Learns up to `max_new_pieces` WordPiece tokens by merging frequent pairs.

  Args:
    word_counts: mapping word -> count, as from `count_words`.
    max_new_pieces: how many new tokens to learn at most.
    min_frequency: stop when the most frequent pair occurs fewer times than this.
    known_tokens: tokens already in the vocabulary (never added again).

  Returns:
    List of new tokens in the order they were learned (most useful first).
  """
  words = []
  freqs = []
  for word in sorted(word_counts):
    if 1 < len(word) <= MAX_INPUT_CHARS_PER_WORD:
      words.append(_initial_pieces(word))
      freqs.append(word_counts[word])

  pair_counts = collections.Counter()
  pair_words = collections.defaultdict(set)
  for index, pieces in enumerate(words):
    for pair in zip(pieces, pieces[1:]):
      pair_counts[pair] += freqs[index]
      pair_words[pair].add(index)
  # Max-heap on (count, then the pair's text for ties); stale entries are skipped.
  heap = [(-count, pair) for pair, count in pair_counts.items()]
  heapq.heapify(heap)

  seen = set(known_tokens)
  new_tokens = []
  while heap and len(new_tokens) < max_new_pieces:
    negative_count, pair = heapq.heappop(heap)
    count = pair_counts.get(pair, 0)
    if count != -negative_count:
      continue
    if count < min_frequency:
      break
    token = pair[0] + pair[1][2:]
    if token not in seen:
      seen.add(token)
      new_tokens.append(token)
    touched = set()
    for index in sorted(pair_words.pop(pair)):
      old_pieces = words[index]
      new_pieces = _merge_pair(old_pieces, pair)
      if len(new_pieces) == len(old_pieces):
        continue
      for old_pair in zip(old_pieces, old_pieces[1:]):
        pair_counts[old_pair] -= freqs[index]
        touched.add(old_pair)
      for new_pair in zip(new_pieces, new_pieces[1:]):
        pair_counts[new_pair] += freqs[index]
        pair_words[new_pair].add(index)
        touched.add(new_pair)
      words[index] = new_pieces
    pair_counts.pop(pair, None)
    for touched_pair in touched:
      touched_count = pair_counts.get(touched_pair, 0)
      if touched_count > 0:
        heapq.heappush(heap, (-touched_count, touched_pair))
      elif touched_pair in pair_counts:
        del pair_counts[touched_pair]
  return new_tokens


def build_vocab(word_counts, vocab_size, num_unused=10, min_frequency=2):
  """Builds the vocabulary list (special tokens, characters, learned pieces).

  Args:
    word_counts: mapping word -> count, as from `count_words`.
    vocab_size: the largest number of entries the vocabulary may have.
    num_unused: number of `[unusedK]` tokens after `[PAD]`.
    min_frequency: see `learn_pieces`.

  Returns:
    List of tokens; the token's index is its id.

  Raises:
    ValueError: if `vocab_size` cannot hold the special tokens and every character.
  """
  if num_unused < 0:
    raise ValueError("--num_unused=%d must be >= 0." % num_unused)
  if min_frequency < 1:
    raise ValueError("--min_frequency=%d must be >= 1." % min_frequency)
  if not word_counts:
    raise ValueError("The input holds no text to build a vocabulary from.")
  vocab = special_tokens(num_unused)
  characters = sorted({c for word in word_counts for c in word})
  vocab.extend(characters)
  vocab.extend("##" + c for c in characters)
  if vocab_size < len(vocab):
    raise ValueError(
        "--vocab_size=%d is too small: the %d special tokens and the %d characters "
        "of the input (each also as ##c) need %d entries; use --vocab_size=%d or "
        "more." % (vocab_size, len(special_tokens(num_unused)), len(characters),
                   len(vocab), len(vocab)))
  vocab.extend(learn_pieces(word_counts, vocab_size - len(vocab), min_frequency,
                            known_tokens=vocab))
  return vocab


def count_unknown_words(word_counts, vocab):
  """Returns how many distinct words of `word_counts` WordPiece maps to [UNK]."""
  wordpiece = tokenization.WordpieceTokenizer(
      vocab={token: i for i, token in enumerate(vocab)})
  return sum(1 for word in word_counts if "[UNK]" in wordpiece.tokenize(word))


def write_vocab(vocab, output_file):
  """Writes one token per line, through a temporary name then a rename."""
  output_dir = os.path.dirname(output_file)
  if output_dir:
    tf.io.gfile.makedirs(output_dir)
  temp_file = "%s.tmp-%d" % (output_file, os.getpid())
  try:
    with tf.io.gfile.GFile(temp_file, "w") as writer:
      for token in vocab:
        writer.write(token + "\n")
    tf.io.gfile.rename(temp_file, output_file, overwrite=True)
  finally:
    if tf.io.gfile.exists(temp_file):
      tf.io.gfile.remove(temp_file)


def main(_):
  logging.set_verbosity(logging.INFO)
  try:
    if not FLAGS.input_file:
      raise ValueError("--input_file is required: the text file(s) to learn from.")
    if not FLAGS.output_file:
      raise ValueError("--output_file is required: where to write vocab.txt.")
    input_files = expand_input_patterns(FLAGS.input_file)
    word_counts = count_words(input_files, FLAGS.do_lower_case)
    logging.info("%d words, %d distinct", sum(word_counts.values()),
                 len(word_counts))
    vocab = build_vocab(word_counts, FLAGS.vocab_size, FLAGS.num_unused,
                        FLAGS.min_frequency)
  except (ValueError, FileNotFoundError, tf.errors.OpError) as e:
    sys.exit("ERROR: %s" % " ".join(str(e).split()))

  too_long = sum(1 for word in word_counts if len(word) > MAX_INPUT_CHARS_PER_WORD)
  if too_long:
    logging.warning("%d distinct words are longer than %d characters; the tokenizer "
                    "maps them to [UNK] whatever the vocabulary.", too_long,
                    MAX_INPUT_CHARS_PER_WORD)
  unknown = count_unknown_words(word_counts, vocab)
  logging.info("%d of %d distinct words tokenize to [UNK]", unknown, len(word_counts))
  if len(vocab) < FLAGS.vocab_size:
    logging.info("Stopped at %d entries (< --vocab_size=%d): no pair of pieces "
                 "occurs --min_frequency=%d times any more.", len(vocab),
                 FLAGS.vocab_size, FLAGS.min_frequency)
  write_vocab(vocab, FLAGS.output_file)
  logging.info("Wrote %d tokens to %s", len(vocab), FLAGS.output_file)


if __name__ == "__main__":
  define_flags()
  app.run(main)
