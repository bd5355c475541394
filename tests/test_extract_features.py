"""extract_features.py against the original's output, and its new options.

Oracle: ../shared/reference/model/extract_features/output.jsonl, written by the
original extract_features.main() with minilm_ckpt, --layers=-1,-2,-3,-4
--max_seq_length=32 --batch_size=8 --do_lower_case=True.

Tolerance for values: 1e-5 absolute. Both files hold round(x, 6) of float32
activations, so rounding alone can differ by up to 1e-6 per side where the 6th
decimal flips (2e-6 in all, the README's "2.3e-6 = rounding" check); on top of
that come float32 differences between the original's kernels and ours (a
different reduction order in the matmuls and LayerNorm gives ~1e-6 on values up to
|x| ~ 10 here). 1e-5 bounds both with margin and is still 100x below any real
error (a wrong mask, gelu or LayerNorm epsilon moves values by 1e-3 or more).
Tokens, layer indexes, key order and the json.dumps layout must match exactly.

The dynamic-padding path must equal the fixed-length path to the same 1e-5: padded
keys get -10000 before the softmax, so exp underflows to exactly 0 and the padding
cannot reach real tokens; only the matmul shapes (hence float32 summation order)
change.
"""
import collections
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REFERENCE, ROOT, require

import extract_features as ef
import modeling
import runner
import tokenization

TOL = 1e-5
LAYERS = [-1, -2, -3, -4]
MINILM = REFERENCE / "model" / "minilm_ckpt"
ORACLE = REFERENCE / "model" / "extract_features"


@pytest.fixture(scope="module")
def minilm():
  """The MiniLM model loaded once for the in-process runs of this module."""
  require(MINILM / "bert_model.ckpt.index")
  config = modeling.BertConfig.from_json_file(str(MINILM / "bert_config.json"))
  tokenizer = tokenization.FullTokenizer(str(MINILM / "vocab.txt"),
                                         do_lower_case=True)
  cfg = runner.RunConfig(output_dir=None)
  task = ef.FeatureExtractionTask(config, LAYERS)
  model, _, _ = runner.load_model(cfg, task,
                                  init_checkpoint=str(MINILM / "bert_model.ckpt"))
  return cfg, config, tokenizer, model


def _extract(minilm, input_file, output_file, layers=LAYERS, pooling="none",
             output_format="jsonl", output_dtype="float32", dynamic_padding=False,
             batch_size=8, max_seq_length=32, bucket_window=8):
  cfg, config, tokenizer, model = minilm
  task = ef.FeatureExtractionTask(config, layers, pooling=pooling)
  writer = ef.make_writer(str(output_file), output_format, layers,
                          config.hidden_size, pooling, output_dtype)
  return ef.extract(cfg, task, tokenizer, str(input_file), writer,
                    max_seq_length, batch_size, dynamic_padding=dynamic_padding,
                    bucket_window=bucket_window, model=model)


def _ordered(line):
  return json.loads(line, object_pairs_hook=list)


def _read_jsonl(path):
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f]


def _token_values(record):
  """JSONL record -> (tokens, array [tokens, layers, hidden])."""
  tokens = [f["token"] for f in record["features"]]
  values = np.array([[layer["values"] for layer in f["layers"]]
                     for f in record["features"]], dtype=np.float64)
  return tokens, values


def _assert_same_records(got, want, tol=TOL):
  assert len(got) == len(want)
  worst = 0.0
  for g, w in zip(got, want):
    assert g["linex_index"] == w["linex_index"]
    g_tokens, g_values = _token_values(g)
    w_tokens, w_values = _token_values(w)
    assert g_tokens == w_tokens
    assert ([[l["index"] for l in f["layers"]] for f in g["features"]] ==
            [[l["index"] for l in f["layers"]] for f in w["features"]])
    worst = max(worst, float(np.max(np.abs(g_values - w_values))))
  assert worst <= tol, worst
  return worst


@pytest.fixture(scope="module")
def reference_run(minilm, tmp_path_factory):
  """Our JSONL for the oracle's input (fixed-length path, the original flags)."""
  require(ORACLE / "output.jsonl")
  out = tmp_path_factory.mktemp("ef") / "output.jsonl"
  stats = _extract(minilm, ORACLE / "input.txt", out)
  return out, stats


def test_jsonl_matches_original(reference_run):
  out, stats = reference_run
  with open(ORACLE / "output.jsonl", encoding="utf-8") as f:
    want_lines = f.read().splitlines()
  with open(out, encoding="utf-8") as f:
    got_text = f.read()
  assert got_text.endswith("\n")
  got_lines = got_text.splitlines()
  assert len(got_lines) == len(want_lines) == 5 == stats.lines

  def layout(obj):
    # The key order at every level, with the values dropped.
    if isinstance(obj, list) and obj and isinstance(obj[0], tuple):
      return [(k, layout(v)) for k, v in obj]
    if isinstance(obj, list):
      return [layout(v) for v in obj if isinstance(v, list)]
    return None

  for got, want in zip(got_lines, want_lines):
    assert layout(_ordered(got)) == layout(_ordered(want))
    # json.dumps defaults (", " and ": " separators, ASCII escapes), values
    # already rounded to 6 decimals.
    parsed = json.loads(got)
    assert json.dumps(parsed) == got
    values = [v for f in parsed["features"] for l in f["layers"]
              for v in l["values"]]
    assert all(round(v, 6) == v for v in values)
  worst = _assert_same_records([json.loads(l) for l in got_lines],
                               [json.loads(l) for l in want_lines])
  print(f"max |delta| against the original: {worst:.2e}")
  # Pair split at the last ' ||| ' and accent stripping, as the original.
  tokens = [f["token"] for f in json.loads(got_lines[4])["features"]]
  assert tokens[:7] == ["[CLS]", "a", "|", "|", "|", "b", "[SEP]"]


def test_round6_is_python_round():
  rng = np.random.RandomState(0)
  x = np.concatenate([
      rng.standard_normal(100000).astype(np.float32) * 3,
      (np.arange(-5000, 5000) / 128.0).astype(np.float32),  # exact ties
      np.array([0.0, -0.0, 1e-7, -1e-7, 5e-7, 1.5e-5, 3e38], np.float32)])
  got = ef.round6(x).tolist()
  want = [round(float(v), 6) for v in x]
  assert [repr(v) for v in got] == [repr(v) for v in want]


def test_fast_json_writer_equals_json_dumps(tmp_path):
  """The vectorised number formatting gives the original's json.dumps bytes."""
  rng = np.random.RandomState(1)
  special = np.array([0.0, -0.0, 1e-4, -1e-4, 1.5e-5, -1e-5, 2e-5, 9.95e-5,
                      9.9999e-5, 1e-6, -4e-7, 5e-7, -5e-7, 1e-7, 0.5, -1.0,
                      123.456789, 99999999.0, 1e8, np.nan, np.inf, -np.inf],
                     np.float32)
  layers = []
  for scale in (1e-5, 1e-3, 1.0, 30.0, 1e6):
    layers.append(rng.standard_normal((6, 23)).astype(np.float32) * scale)
  layers[0][2, :special.size] = special
  tokens = ["[CLS]", "caf\u00e9", "\"q\"", "a\\b", "##x", "[SEP]"]
  layer_indexes = [-1, 0, 2, -3, 1]
  writer = ef.JsonlWriter(str(tmp_path / "o.jsonl"), layer_indexes)
  writer.write(7, tokens, layer_outputs=layers)
  writer.write(8, tokens[:1], layer_outputs=[l[:1] for l in layers])
  pooled_writer = ef.JsonlWriter(str(tmp_path / "p.jsonl"), [-2], "mean")
  pooled_writer.write(3, tokens, pooled=layers[0][2])
  writer.close()
  pooled_writer.close()

  def original(uid, n):
    features = []
    for i in range(n):
      features.append(collections.OrderedDict([
          ("token", tokens[i]),
          ("layers", [collections.OrderedDict([
              ("index", index),
              ("values", [round(float(x), 6) for x in layers[j][i].flat])])
                      for j, index in enumerate(layer_indexes)])]))
    return json.dumps(collections.OrderedDict([("linex_index", uid),
                                               ("features", features)]))

  with open(tmp_path / "o.jsonl", encoding="utf-8") as f:
    assert f.read() == original(7, 6) + "\n" + original(8, 1) + "\n"
  with open(tmp_path / "p.jsonl", encoding="utf-8") as f:
    assert f.read() == json.dumps(collections.OrderedDict([
        ("linex_index", 3), ("pooling", "mean"), ("layers", [-2]),
        ("num_tokens", 6),
        ("values", [round(float(x), 6) for x in layers[0][2]])])) + "\n"
  big = (rng.standard_normal((300, 384)) * 3).astype(np.float32)
  assert ef.format_value_rows(big) == [
      json.dumps([round(float(x), 6) for x in row])[1:-1] for row in big]


def _varied_input(path):
  """Lines of many lengths, blank lines, long lines and pairs."""
  with open(ORACLE / "input.txt", encoding="utf-8") as f:
    lines = f.read().splitlines()
  long_line = " ".join(["word"] * 60)
  lines += ["", "Short.", long_line, "x ||| " + long_line, "", "  ", "a b c d e",
            "Tokens: " + "alpha beta " * 6, "One more line ||| with a pair."]
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  return len(lines)


def test_dynamic_padding_same_output_in_input_order(minilm, tmp_path):
  src = tmp_path / "in.txt"
  n = _varied_input(src)
  fixed = _extract(minilm, src, tmp_path / "fixed.jsonl", batch_size=3)
  dynamic = _extract(minilm, src, tmp_path / "dyn.jsonl", batch_size=3,
                     dynamic_padding=True, bucket_window=7)
  got = _read_jsonl(tmp_path / "dyn.jsonl")
  want = _read_jsonl(tmp_path / "fixed.jsonl")
  assert [r["linex_index"] for r in got] == list(range(n))
  worst = _assert_same_records(got, want)
  print(f"max |delta| dynamic vs fixed padding: {worst:.2e}")
  for stats in (fixed, dynamic):
    assert stats.lines == n
    assert stats.blank_lines == 3  # "", "" and "  " (stripped): kept.
    assert stats.truncated == 2
    assert stats.pairs == 2 + 2
  assert len(got[5]["features"]) == 2  # A blank line is "[CLS] [SEP]".
  assert len(got[7]["features"]) == 32  # Truncated to max_seq_length.


def test_fused_blocks_with_dynamic_padding(minilm, tmp_path):
  """--fused_blocks (XLA-compiled attention core and GELU, compiled per
  bucket length) gives the fixed-padding default's records within the
  reference tolerance of a float32 port (2e-4: MiniLM's layers amplify float
  rounding, see test_modeling)."""
  cfg, config, tokenizer, model = minilm
  fused = modeling.BertModel(config, fused_blocks=True)
  for name, var in fused.named_variables().items():
    var.assign(model.named_variables()[name])
  src = tmp_path / "in.txt"
  n = _varied_input(src)
  _extract(minilm, src, tmp_path / "fixed.jsonl", batch_size=3)
  _extract((cfg, config, tokenizer, fused), src, tmp_path / "fused.jsonl",
           batch_size=3, dynamic_padding=True, bucket_window=7)
  got = _read_jsonl(tmp_path / "fused.jsonl")
  assert [r["linex_index"] for r in got] == list(range(n))
  worst = _assert_same_records(got, _read_jsonl(tmp_path / "fixed.jsonl"),
                               tol=2e-4)
  print(f"max |delta| fused + dynamic vs fixed default: {worst:.2e}")


def test_bucket_lengths_and_batches():
  feats = [ef.InputFeatures(i, None, [1] * n + [0] * (32 - n),
                            [1] * n + [0] * (32 - n), [0] * 32)
           for i, n in enumerate([5, 30, 9, 2, 17, 3, 12])]
  batches = list(ef.iter_batches(iter(feats), 2, 32, dynamic_padding=True,
                                 bucket_window=4))
  assert [b["unique_ids"].tolist() for b in batches] == [[3, 0], [2, 1], [5, 6],
                                                         [4]]
  assert [b["input_ids"].shape[1] for b in batches] == [
      runner.bucket_length(n, 32) for n in (5, 30, 12, 17)]
  assert all(b["input_mask"].shape == b["input_ids"].shape for b in batches)
  fixed = list(ef.iter_batches(iter(feats), 3, 32))
  assert [b["input_ids"].shape for b in fixed] == [(3, 32), (3, 32), (1, 32)]


def test_read_examples(tmp_path):
  src = tmp_path / "in.txt"
  src.write_bytes(b"a ||| b ||| c\n\n  spaced  \nx|||y\nno newline at end")
  stats = ef.ExtractionStats()
  examples = list(ef.iter_examples(str(src), stats))
  assert [(e.unique_id, e.text_a, e.text_b) for e in examples] == [
      (0, "a ||| b", "c"), (1, "", None), (2, "spaced", None),
      (3, "x|||y", None), (4, "no newline at end", None)]
  assert (stats.lines, stats.blank_lines, stats.pairs) == (5, 1, 1)
  assert [e.text_a for e in ef.read_examples(str(src))][0] == "a ||| b"


def test_npz_and_pooling_against_numpy(minilm, reference_run, tmp_path):
  out, _ = reference_run
  records = _read_jsonl(out)
  layers = [-1, -2]
  _extract(minilm, ORACLE / "input.txt", tmp_path / "tok.npz", layers=layers,
           output_format="npz")
  with np.load(tmp_path / "tok.npz") as z:
    assert sorted(z.files) == ["layers", "linex_index", "offsets", "tokens",
                               "values"]
    assert z["layers"].tolist() == layers
    assert z["linex_index"].tolist() == list(range(5))
    values, offsets, tokens = z["values"], z["offsets"], z["tokens"].tolist()
  assert values.dtype == np.float32 and values.shape == (offsets[-1], 2, 384)
  for i, record in enumerate(records):
    want_tokens, want = _token_values(record)
    rows = slice(offsets[i], offsets[i + 1])
    assert tokens[rows] == want_tokens
    # JSONL layers -1, -2 are its first two; the JSONL is rounded to 6 decimals.
    np.testing.assert_allclose(values[rows], want[:, :2], rtol=0, atol=TOL)

  # Pooling: average layers -1 and -2, then over real tokens (mean) or take
  # [CLS] (cls); compared with numpy on the JSONL values.
  for pooling in ("mean", "cls"):
    _extract(minilm, ORACLE / "input.txt", tmp_path / f"{pooling}.npz",
             layers=layers, pooling=pooling, output_format="npz")
    with np.load(tmp_path / f"{pooling}.npz") as z:
      assert sorted(z.files) == ["layers", "linex_index", "num_tokens",
                                 "values"]
      pooled, num_tokens = z["values"], z["num_tokens"]
    want = []
    for record in records:
      per_token = _token_values(record)[1][:, :2].mean(axis=1)
      want.append(per_token.mean(axis=0) if pooling == "mean" else per_token[0])
    assert pooled.shape == (5, 384)
    assert num_tokens.tolist() == [len(r["features"]) for r in records]
    np.testing.assert_allclose(pooled, np.array(want), rtol=0, atol=TOL)

  # npy + float16: the same mean vectors at half precision.
  _extract(minilm, ORACLE / "input.txt", tmp_path / "mean16.npy", layers=layers,
           pooling="mean", output_format="npy", output_dtype="float16")
  half = np.load(tmp_path / "mean16.npy")
  assert half.dtype == np.float16 and half.shape == (5, 384)
  with np.load(tmp_path / "mean.npz") as z:
    np.testing.assert_allclose(half.astype(np.float32), z["values"], rtol=1e-3,
                               atol=1e-3)
  # Pooled JSONL: one vector per line.
  _extract(minilm, ORACLE / "input.txt", tmp_path / "cls.jsonl", layers=layers,
           pooling="cls")
  lines = _read_jsonl(tmp_path / "cls.jsonl")
  assert list(lines[0]) == ["linex_index", "pooling", "layers", "num_tokens",
                            "values"]
  with np.load(tmp_path / "cls.npz") as z:
    np.testing.assert_allclose([l["values"] for l in lines], z["values"],
                               rtol=0, atol=1e-6)
  assert sorted(os.listdir(tmp_path)) == sorted([
      "tok.npz", "mean.npz", "cls.npz", "mean16.npy", "cls.jsonl"])


def test_failure_leaves_nothing_under_the_final_name(minilm, tmp_path):
  src = tmp_path / "in.txt"
  src.write_bytes(b"fine line\n" * 20 + b"bad \xff byte\n" + b"more\n")
  for name, fmt in (("out.jsonl", "jsonl"), ("out.npz", "npz")):
    with pytest.raises(runner.UserError, match=r"line 21 is not valid UTF-8"):
      _extract(minilm, src, tmp_path / name, output_format=fmt, batch_size=2)
  assert sorted(os.listdir(tmp_path)) == ["in.txt"]


def test_empty_input_gives_empty_outputs(minilm, tmp_path):
  src = tmp_path / "empty.txt"
  src.write_bytes(b"")
  assert _extract(minilm, src, tmp_path / "e.jsonl").lines == 0
  assert (tmp_path / "e.jsonl").read_bytes() == b""
  _extract(minilm, src, tmp_path / "e.npz", layers=[-1], output_format="npz")
  with np.load(tmp_path / "e.npz") as z:
    assert z["values"].shape == (0, 1, 384)
    assert z["offsets"].tolist() == [0]


def test_npz_to_stdout(minilm, tmp_path, monkeypatch):
  class FakeStdout(object):
    buffer = io.BytesIO()

  monkeypatch.setattr(sys, "stdout", FakeStdout)
  _extract(minilm, ORACLE / "input.txt", "-", layers=[-1], pooling="cls",
           output_format="npz")
  _extract(minilm, ORACLE / "input.txt", tmp_path / "cls.npz", layers=[-1],
           pooling="cls", output_format="npz")
  with np.load(io.BytesIO(FakeStdout.buffer.getvalue())) as piped, \
      np.load(tmp_path / "cls.npz") as written:
    assert piped.files == written.files
    for name in written.files:
      np.testing.assert_array_equal(piped[name], written[name])
  assert os.listdir(tmp_path) == ["cls.npz"]


def _cli(args, stdin=None, timeout=240):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run(
      [sys.executable, str(ROOT / "extract_features.py")] + args, input=stdin,
      capture_output=True, cwd=str(ROOT), env=env, timeout=timeout)


def _model_flags():
  return [f"--vocab_file={MINILM / 'vocab.txt'}",
          f"--bert_config_file={MINILM / 'bert_config.json'}",
          f"--init_checkpoint={MINILM / 'bert_model.ckpt'}",
          "--max_seq_length=32", "--batch_size=8"]


def _error_line(result):
  lines = [l for l in result.stderr.decode().splitlines()
           if l.startswith("ERROR: ")]
  assert len(lines) == 1, result.stderr.decode()[-2000:]
  return lines[0]


def test_cli_stdin_to_stdout(reference_run):
  require(MINILM / "bert_model.ckpt.index")
  out, _ = reference_run
  with open(ORACLE / "input.txt", "rb") as f:
    data = f.read()
  result = _cli(["--input_file=-", "--output_file=-", "--layers=-1,-2,-3,-4",
                 "--dynamic_padding"] + _model_flags(), stdin=data)
  assert result.returncode == 0, result.stderr.decode()[-3000:]
  got = [json.loads(l) for l in result.stdout.decode().splitlines()]
  _assert_same_records(got, _read_jsonl(out))
  assert "5 lines (2 with a ' ||| ' pair)" in result.stderr.decode()


def test_cli_bad_layers_one_line_error(tmp_path):
  require(MINILM / "bert_model.ckpt.index")
  out = tmp_path / "out.jsonl"
  result = _cli([f"--input_file={ORACLE / 'input.txt'}", f"--output_file={out}",
                 "--layers=-1,6"] + _model_flags())
  assert result.returncode != 0
  assert _error_line(result) == (
      "ERROR: --layers=-1,6: index 6 is out of range for a model with 6 layers "
      "(num_hidden_layers in bert_config_file); valid indexes are -6..5.")
  assert os.listdir(tmp_path) == []


def test_bad_flags_and_missing_files(tmp_path):
  with pytest.raises(runner.UserError, match=r"^--layers='-1,x' is not a "):
    ef.parse_layers("-1,x")
  assert ef.parse_layers("-1, 0,-6", 6) == [-1, 0, -6]
  with pytest.raises(runner.UserError, match=r"valid indexes are -2\.\.1\.$"):
    ef.parse_layers("-3", 2)
  with pytest.raises(runner.UserError,
                     match=r"^--input_file=.*nope\.txt: file not found\.$"):
    ef._require_file("input_file", str(tmp_path / "nope.txt"))
  with pytest.raises(runner.UserError, match=r"is a directory"):
    ef._require_file("vocab_file", str(tmp_path))
  with pytest.raises(FileNotFoundError, match=r"missing\.ckpt"):
    ef.checkpoints.normalize_checkpoint_path(str(tmp_path / "missing.ckpt"))
  config = modeling.BertConfig(vocab_size=10, max_position_embeddings=64)
  for kwargs, message in (
      (dict(output_format="npy"), r"--output_format=npy holds one vector"),
      (dict(output_dtype="float16"), r"--output_dtype=float16 applies to"),
      (dict(max_seq_length=65), r"Cannot use sequence length 65"),
      (dict(output_file=str(tmp_path / "no" / "out.jsonl")),
       r"directory .*no does not exist")):
    options = dict(output_file=str(tmp_path / "out.jsonl"), output_format="jsonl",
                   output_dtype="float32", pooling="none", max_seq_length=32,
                   batch_size=8, bert_config=config)
    options.update(kwargs)
    with pytest.raises(runner.UserError, match=message):
      ef.check_options(**options)
