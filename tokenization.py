"""Tokenization classes: the original BERT WordPiece tokenizer, bit-identical.

`FullTokenizer` = `BasicTokenizer` (cleaning, CJK spacing, lower-casing, accent
stripping, punctuation split) then `WordpieceTokenizer` (greedy longest match
first), with the original's outputs on the same Unicode database; faster through
lazily filled character tables and per-word caches.

Opt-in additions (defaults keep the original behaviour): `strip_accents`
(google-research/bert#130), `never_split` (#404) and
`validate_case_matches_checkpoint(..., extended=True)`.

`load_vocab` reads through `tf.io.gfile`, except local paths in a process that
has not imported TensorFlow (the same bytes without TensorFlow's import cost).
"""

import collections
import itertools
import re
import sys
import unicodedata

from absl import flags
from absl import logging

# --------------------------------------------------------------------------
# Checkpoint / casing consistency.
# --------------------------------------------------------------------------

_LOWER_CASE_MODELS = (
    "uncased_L-24_H-1024_A-16",
    "uncased_L-12_H-768_A-12",
    "multilingual_L-12_H-768_A-12",
    "chinese_L-12_H-768_A-12",
)

_CASED_MODELS = (
    "cased_L-12_H-768_A-12",
    "cased_L-24_H-1024_A-16",
    "multi_cased_L-12_H-768_A-12",
)

# Models released after the check was written (whole word masking, May 2019;
# the 24 small models, March 2020).  Only consulted with `extended=True`.
_EXTENDED_LOWER_CASE_MODELS = ("wwm_uncased_L-24_H-1024_A-16",) + tuple(
    "uncased_L-%d_H-%d_A-%d" % (layers, hidden, hidden // 64)
    for layers in (2, 4, 6, 8, 10, 12)
    for hidden in (128, 256, 512, 768))

_EXTENDED_CASED_MODELS = ("wwm_cased_L-24_H-1024_A-16",)

_CHECKPOINT_MODEL_NAME_RE = re.compile(r"^.*?([A-Za-z0-9_-]+)/bert_model.ckpt")


def validate_case_matches_checkpoint(do_lower_case, init_checkpoint,
                                     extended=False):
  """Raises ValueError if `do_lower_case` does not suit the released model.

  The model is the directory holding `bert_model.ckpt`; unknown names are not
  checked. `extended=True` also knows the whole-word-masking and 24 small
  models, which the original check does not.
  """
  if not init_checkpoint:
    return
  match = _CHECKPOINT_MODEL_NAME_RE.match(init_checkpoint)
  if match is None:
    return
  model_name = match.group(1)

  lower_models = _LOWER_CASE_MODELS
  cased_models = _CASED_MODELS
  if extended:
    lower_models = lower_models + _EXTENDED_LOWER_CASE_MODELS
    cased_models = cased_models + _EXTENDED_CASED_MODELS

  if model_name in lower_models and not do_lower_case:
    passed, kind, wanted = "False", "lowercased", "True"
  elif model_name in cased_models and do_lower_case:
    passed, kind, wanted = "True", "cased", "False"
  else:
    return
  if _case_check_skipped():
    return
  raise ValueError(
      "You passed in `--do_lower_case=%s` with `--init_checkpoint=%s`. "
      "However, `%s` seems to be a %s model, so you should pass in "
      "`--do_lower_case=%s` so that the fine-tuning matches how the model was "
      "pre-trained. If this error is wrong (a renamed directory), pass "
      "--skip_case_check." % (passed, init_checkpoint, model_name, kind, wanted))


def _case_check_skipped():
  """True when the script defines --skip_case_check and it is set."""
  values = flags.FLAGS
  return ("skip_case_check" in values and values.is_parsed() and
          bool(values.skip_case_check))


# --------------------------------------------------------------------------
# Text conversion helpers.
# --------------------------------------------------------------------------


def convert_to_unicode(text):
  """Returns `text` as `str`; `bytes` are decoded as UTF-8 ignoring bad bytes."""
  if isinstance(text, str):
    return text
  if isinstance(text, bytes):
    return text.decode("utf-8", "ignore")
  raise ValueError("Unsupported string type: %s" % (type(text)))


def printable_text(text):
  """Returns `text` encoded in a way suitable for print or logging (a `str`)."""
  return convert_to_unicode(text)


# --------------------------------------------------------------------------
# Vocabulary.
# --------------------------------------------------------------------------


def _tf_gfile_for(path):
  """`tf.io.gfile` for `scheme://` paths or once TensorFlow is loaded."""
  if "://" in str(path) or "tensorflow" in sys.modules:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf.io.gfile
  return None


def load_vocab(vocab_file):
  """Loads a vocabulary file into an OrderedDict token -> 0-based line number.

  Lines are split as TF's GFile.readline() did: at "\\n" only, every "\\r"
  dropped, strict UTF-8. Each is stripped; a blank line is the token "" and
  takes an index; a repeated token keeps its first place but takes the later
  index (all as the original). FileNotFoundError also for gfile paths.
  """
  gfile = _tf_gfile_for(vocab_file)
  if gfile is None:
    with open(vocab_file, "rb") as f:
      data = f.read()
  else:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    try:
      with gfile.GFile(vocab_file, "rb") as f:
        data = f.read()
    except tf.errors.NotFoundError as e:
      raise FileNotFoundError("No such file: %s (%s)" % (
          vocab_file, e.message)) from e
  lines = data.replace(b"\r", b"").decode("utf-8").split("\n")
  if lines[-1] == "":
    lines.pop()
  vocab = collections.OrderedDict()
  for index, line in enumerate(lines):
    vocab[line.strip()] = index
  return vocab


def convert_by_vocab(vocab, items):
  """Converts a sequence of tokens or ids using the vocab (KeyError if absent)."""
  return [vocab[item] for item in items]


def convert_tokens_to_ids(vocab, tokens):
  return convert_by_vocab(vocab, tokens)


def convert_ids_to_tokens(inv_vocab, ids):
  return convert_by_vocab(inv_vocab, ids)


def whitespace_tokenize(text):
  """Strips and splits `text` on runs of whitespace (Python's `str.split`)."""
  return text.split()


# --------------------------------------------------------------------------
# Character classes (the original predicates, plus cached tables).
# --------------------------------------------------------------------------


def _is_whitespace(char):
  """Space, tab, newline, carriage return or a Unicode Zs character."""
  if char == " " or char == "\t" or char == "\n" or char == "\r":
    return True
  return unicodedata.category(char) == "Zs"


def _is_control(char):
  """A Cc or Cf character other than tab, newline and carriage return."""
  if char == "\t" or char == "\n" or char == "\r":
    return False
  return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char):
  """Every non-alphanumeric printable ASCII character, or a Unicode P* one."""
  cp = ord(char)
  if ((33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or
      (123 <= cp <= 126)):
    return True
  return unicodedata.category(char).startswith("P")


def _is_cjk_codepoint(cp):
  """True for the CJK Unified Ideographs blocks the original spaces out."""
  return ((0x4E00 <= cp <= 0x9FFF) or (0x3400 <= cp <= 0x4DBF) or
          (0x20000 <= cp <= 0x2A6DF) or (0x2A700 <= cp <= 0x2B73F) or
          (0x2B740 <= cp <= 0x2B81F) or (0x2B820 <= cp <= 0x2CEAF) or
          (0xF900 <= cp <= 0xFAFF) or (0x2F800 <= cp <= 0x2FA1F))


class _LazyTable(dict):
  """A dict that computes missing entries with `compute`, of bounded size."""

  _max_size = 1 << 17   # Bounds memory on corpora of very many words.

  def __init__(self, compute):
    super().__init__()
    self._compute = compute

  def __missing__(self, key):
    value = self._compute(key)
    if len(self) >= self._max_size:
      self.clear()
    self[key] = value
    return value


def _cleaned(cp):
  """Text cleaning and CJK spacing of one code point, for `str.translate`."""
  char = chr(cp)
  if cp == 0 or cp == 0xFFFD or _is_control(char):
    return None
  if _is_whitespace(char):
    return " "
  if _is_cjk_codepoint(cp):
    return " " + char + " "
  return cp


_CLEAN_TABLE = _LazyTable(_cleaned)

_PUNCTUATION_TABLE = _LazyTable(_is_punctuation)


def _clean_and_split(text):
  """Steps 2-4 of BasicTokenizer: clean, space out CJK, whitespace split."""
  return text.translate(_CLEAN_TABLE).split()


def _strip_accents(text):
  """NFD-normalises `text` and deletes every Mn (non-spacing mark) character."""
  if text.isascii():
    return text
  text = unicodedata.normalize("NFD", text)
  return "".join(char for char in text if unicodedata.category(char) != "Mn")


def _split_on_punctuation(text):
  """Makes every punctuation character its own token."""
  output = []
  start = 0
  is_punct = _PUNCTUATION_TABLE
  for i, char in enumerate(text):
    if is_punct[char]:
      if start < i:
        output.append(text[start:i])
      output.append(char)
      start = i + 1
  if start < len(text):
    output.append(text[start:])
  return output


# --------------------------------------------------------------------------
# Tokenizers.
# --------------------------------------------------------------------------


class FullTokenizer(object):
  """Runs end-to-end tokenization: BasicTokenizer, then WordPiece."""

  def __init__(self, vocab_file, do_lower_case=True, strip_accents=None,
               never_split=None):
    """`strip_accents` and `never_split`: see `BasicTokenizer`."""
    self.vocab = load_vocab(vocab_file)
    self.inv_vocab = {v: k for k, v in self.vocab.items()}
    self.basic_tokenizer = BasicTokenizer(
        do_lower_case=do_lower_case, strip_accents=strip_accents,
        never_split=never_split)
    self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)
    # A cleaned whitespace-delimited word -> its WordPiece tokens or ids.
    self._word_pieces = _LazyTable(self._word_pieces_uncached)
    self._word_ids = _LazyTable(lambda word: tuple(convert_by_vocab(
        self.vocab, self._word_pieces_uncached(word))))

  def _word_pieces_uncached(self, word):
    """WordPiece tokens (a tuple) of one cleaned whitespace-delimited word."""
    pieces = []
    for token in self.basic_tokenizer._process_word(word):  # pylint: disable=protected-access
      pieces.extend(self.wordpiece_tokenizer._tokenize_word(token))  # pylint: disable=protected-access
    return tuple(pieces)

  # A vocab that does not fit the text (another language, a truncated or
  # wrong vocab.txt) turns many words into [UNK]: the first UNK_CHECK_PIECES
  # word pieces are counted, and more than UNK_WARN_SHARE of [UNK] warns once.
  UNK_CHECK_PIECES = 500
  UNK_WARN_SHARE = 0.05
  _unk_seen = None  # [pieces, unks] while counting.

  def _watch_unk(self, pieces, unk):
    if self._unk_seen is None:
      self._unk_seen = [0, 0]
    seen = self._unk_seen
    seen[0] += len(pieces)
    seen[1] += pieces.count(unk)
    if seen[0] >= self.UNK_CHECK_PIECES:
      self._unk_done = True
      if seen[1] > self.UNK_WARN_SHARE * seen[0]:
        logging.warning(
            "%.0f%% of the first %d word pieces are %s: the vocab file (%d "
            "entries) does not fit this text. Use the vocab.txt that comes "
            "with the checkpoint, and --do_lower_case as the model was "
            "trained.", 100.0 * seen[1] / seen[0], seen[0],
            self.wordpiece_tokenizer.unk_token, len(self.vocab))

  def _tokenize(self, text, word_table, unk):
    out = list(itertools.chain.from_iterable(map(
        word_table.__getitem__, _clean_and_split(convert_to_unicode(text)))))
    if "_unk_done" not in self.__dict__:
      self._watch_unk(out, unk)
    return out

  def tokenize(self, text):
    """Returns the list of WordPiece tokens of `text` (str or UTF-8 bytes)."""
    return self._tokenize(text, self._word_pieces,
                          self.wordpiece_tokenizer.unk_token)

  def tokenize_to_ids(self, text):
    """Same as `convert_tokens_to_ids(tokenize(text))`, faster."""
    return self._tokenize(text, self._word_ids,
                          self.vocab.get(self.wordpiece_tokenizer.unk_token))

  def convert_tokens_to_ids(self, tokens):
    return convert_by_vocab(self.vocab, tokens)

  def convert_ids_to_tokens(self, ids):
    return convert_by_vocab(self.inv_vocab, ids)


class BasicTokenizer(object):
  """Runs basic tokenization (punctuation splitting, lower casing, etc.)."""

  def __init__(self, do_lower_case=True, strip_accents=None, never_split=None):
    """`strip_accents`: None strips iff `do_lower_case` (the original),
    True/False decide alone. `never_split`: tokens kept whole in the text."""
    self.do_lower_case = do_lower_case
    self.strip_accents = strip_accents
    self.never_split = frozenset(never_split or ())
    self._do_strip_accents = bool(
        do_lower_case if strip_accents is None else strip_accents)
    self._never_split_re = None
    if self.never_split:
      alternatives = sorted(self.never_split, key=len, reverse=True)
      self._never_split_re = re.compile(
          "(%s)" % "|".join(re.escape(token) for token in alternatives if token))
    self._word_tokens = _LazyTable(self._process_word)

  def tokenize(self, text):
    """Tokenizes a piece of text (str or UTF-8 bytes)."""
    return list(itertools.chain.from_iterable(map(
        self._word_tokens.__getitem__,
        _clean_and_split(convert_to_unicode(text)))))

  def _process_word(self, word):
    """Steps 5-7 for one whitespace-delimited word of cleaned text."""
    if word in self.never_split:
      return (word,)
    if self._never_split_re is None or not self._never_split_re.search(word):
      return self._normalize_and_split(word)
    parts = []
    for i, part in enumerate(self._never_split_re.split(word)):
      if i % 2:
        parts.append(part)
      elif part:
        parts.extend(self._normalize_and_split(part))
    return tuple(parts)

  def _normalize_and_split(self, token):
    """Lower-casing, accent stripping and punctuation split of one token."""
    if self.do_lower_case:
      token = token.lower()
    if self._do_strip_accents:
      token = _strip_accents(token)
    pieces = _split_on_punctuation(token)
    if not token.isascii():
      # The original re-joins all pieces with spaces and splits again.
      pieces = " ".join(pieces).split()
    return tuple(pieces)

  def _is_chinese_char(self, cp):
    """Checks whether `cp` is the code point of a CJK character (original)."""
    return _is_cjk_codepoint(cp)


class WordpieceTokenizer(object):
  """Runs WordPiece tokenization (greedy longest-match-first)."""

  def __init__(self, vocab, unk_token="[UNK]", max_input_chars_per_word=200):
    self.vocab = vocab
    self.unk_token = unk_token
    self.max_input_chars_per_word = max_input_chars_per_word
    # No vocab entry is longer than this, so longer substrings never match.
    self._max_piece_chars = max((len(token) for token in vocab), default=0)
    self._word_pieces = _LazyTable(self._tokenize_word)

  def tokenize(self, text):
    """Word pieces of whitespace-separated tokens ("unaffable" -> "un",
    "##aff", "##able"); the text should have passed `BasicTokenizer`."""
    return list(itertools.chain.from_iterable(map(
        self._word_pieces.__getitem__,
        whitespace_tokenize(convert_to_unicode(text)))))

  def _tokenize_word(self, word):
    """WordPiece tokens (a tuple) of one word without whitespace."""
    length = len(word)
    if length > self.max_input_chars_per_word:
      return (self.unk_token,)
    vocab = self.vocab
    if length and word in vocab:
      return (word,)
    max_chars = self._max_piece_chars
    pieces = []
    start = 0
    while start < length:
      end = min(length, start + max_chars)
      piece = None
      while start < end:
        candidate = word[start:end]
        if start > 0:
          candidate = "##" + candidate
        if candidate in vocab:
          piece = candidate
          break
        end -= 1
      if piece is None:
        return (self.unk_token,)
      pieces.append(piece)
      start = end
    return tuple(pieces)
