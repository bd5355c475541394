"""Tests for create_pretraining_data.py against the original's outputs."""
import json
import os
import random
import re
import shlex
import subprocess
import sys

import pytest

from conftest import REFERENCE, ROOT, require
import create_pretraining_data as cpd
import tokenization

DATA = REFERENCE / "data"
PRETRAINING = DATA / "pretraining"
SCRIPT = str(ROOT / "create_pretraining_data.py")
_ABSL_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] ")


def _runs():
  with open(require(DATA / "manifest.json")) as f:
    return {run["run"]: run for run in json.load(f)[
        "create_pretraining_data_runs"]}


def _run_script(args, cwd=None):
  env = dict(os.environ)
  env.pop("PYTHONPATH", None)
  return subprocess.run([sys.executable, SCRIPT] + list(args), cwd=cwd,
                        capture_output=True, text=True, env=env, timeout=300)


def _log_lines(stderr):
  return [_ABSL_PREFIX.sub("", line) for line in stderr.splitlines()
          if _ABSL_PREFIX.match(line)]


def _reference_args(run, out_dir):
  """The manifest's command with the outputs redirected to `out_dir`."""
  args = []
  outputs = []
  for arg in shlex.split(run["command"])[2:]:
    if arg.startswith("--output_file="):
      for path in arg.split("=", 1)[1].split(","):
        outputs.append((path, str(out_dir / os.path.basename(path))))
      arg = "--output_file=" + ",".join(mine for _, mine in outputs)
    args.append(arg)
  return args, outputs


def _parse_records(path):
  """Records of a TFRecord file as canonical JSON lines (TF's own parser)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  lines = []
  for batch in tf.data.TFRecordDataset(str(path)).batch(4096):
    for raw in batch.numpy():
      example = tf.train.Example.FromString(raw)
      features = example.features.feature
      assert sorted(features.keys()) == sorted(cpd._FEATURE_NAMES)
      record = {}
      for name in cpd._FEATURE_NAMES:
        if name == "masked_lm_weights":
          record[name] = [float(v) for v in features[name].float_list.value]
        else:
          record[name] = list(features[name].int64_list.value)
      lines.append(json.dumps(record, separators=(",", ":")))
  return lines


@pytest.fixture(scope="module")
def reference_outputs(tmp_path_factory):
  """Runs our script with each reference run's flags (once per session)."""
  results = {}
  for name, run in _runs().items():
    out_dir = tmp_path_factory.mktemp(name)
    args, outputs = _reference_args(run, out_dir)
    proc = _run_script(args, cwd=str(DATA))
    results[name] = (run, proc, outputs)
  return results


@pytest.mark.parametrize("name", ["a_demo", "b_demo_wwm", "c_demo_cased",
                                  "d_austen"])
def test_reference_runs_parse_to_identical_records(reference_outputs, name):
  run, proc, outputs = reference_outputs[name]
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert len(outputs) == len(run["outputs"])
  for (ref_path, mine), expected in zip(outputs, run["outputs"]):
    with open(DATA / expected["jsonl"]) as f:
      want = f.read().splitlines()
    got = _parse_records(mine)
    assert len(got) == expected["records"]
    assert got == want


@pytest.mark.parametrize("name", ["a_demo", "b_demo_wwm", "c_demo_cased",
                                  "d_austen"])
def test_reference_runs_are_byte_identical(reference_outputs, name):
  # The original ran with protobuf's pure-Python runtime, which writes the
  # features in insertion order, as we do: the files match byte for byte.
  _, proc, outputs = reference_outputs[name]
  assert proc.returncode == 0, proc.stderr[-2000:]
  for ref_path, mine in outputs:
    with open(DATA / ref_path, "rb") as f:
      want = f.read()
    with open(mine, "rb") as f:
      assert f.read() == want
    assert not [p for p in os.listdir(os.path.dirname(mine))
                if ".tmp-" in p]


@pytest.mark.parametrize("name", ["a_demo", "d_austen"])
def test_reference_runs_log_the_same_lines(reference_outputs, name):
  _, proc, outputs = reference_outputs[name]
  with open(PRETRAINING / name / "log.txt", encoding="utf-8") as f:
    want = f.read().splitlines()
  got = [line for line in _log_lines(proc.stderr)
         if not line.startswith("Summary:")]
  # Output paths differ (ours go to a temporary directory).
  for ref_path, mine in outputs:
    got = [line.replace(mine, ref_path) for line in got]
  assert got == want


def test_summary_line(reference_outputs):
  _, proc, _ = reference_outputs["a_demo"]
  summary = [line for line in _log_lines(proc.stderr)
             if line.startswith("Summary:")]
  assert summary and summary[0].startswith(
      "Summary: 3 documents, 31 sentences, 60 instances, 32 random next "
      "(53.3%), 922 masked tokens")


# ---------------------------------------------------------------------------
# The exact random stream.
# ---------------------------------------------------------------------------


def test_original_api_matches_reference(tmp_path):
  """create_training_instances + write_instance_to_example_files, with
  random.Random and token strings, give the original's file."""
  tokenizer = tokenization.FullTokenizer(str(DATA / "vocab.txt"),
                                         do_lower_case=True)
  instances = cpd.create_training_instances(
      [str(PRETRAINING / "inputs" / "sample_text.txt")], tokenizer,
      max_seq_length=128, dupe_factor=5, short_seq_prob=0.1,
      masked_lm_prob=0.15, max_predictions_per_seq=20,
      rng=random.Random(12345), do_whole_word_mask=False)
  assert len(instances) == 60
  assert sum(i.is_random_next for i in instances) == 32
  assert sum(len(i.masked_lm_positions) for i in instances) == 922
  out = tmp_path / "api.tfrecord"
  cpd.write_instance_to_example_files(instances, tokenizer, 128, 20,
                                      [str(out)])
  assert out.read_bytes() == (PRETRAINING / "a_demo" /
                              "tf_examples.tfrecord").read_bytes()
  assert "tokens: [CLS]" in str(instances[0])


# ---------------------------------------------------------------------------
# Additions: streaming, workers, per-word masking, warnings.
# ---------------------------------------------------------------------------


def _inputs():
  names = ["austen_emma_1.txt", "austen_emma_2.txt", "sample_text.txt"]
  return ",".join(str(PRETRAINING / "inputs" / n) for n in names)


def _common_args(out, *extra):
  return ["--input_file=" + _inputs(), "--output_file=" + out,
          "--vocab_file=" + str(DATA / "vocab.txt"), "--max_seq_length=64",
          "--max_predictions_per_seq=10", "--dupe_factor=2"] + list(extra)


def test_streaming_is_deterministic_and_independent_of_workers(tmp_path):
  outputs = []
  for workers in (1, 2):
    out = str(tmp_path / ("s%d_a.tfrecord,%s" % (workers, tmp_path /
                                                 ("s%d_b.tfrecord" % workers))))
    proc = _run_script(_common_args(out, "--streaming",
                                    "--streaming_chunk_mb=0.02",
                                    "--num_workers=%d" % workers))
    assert proc.returncode == 0, proc.stderr[-2000:]
    outputs.append([open(p, "rb").read() for p in out.split(",")])
  assert outputs[0] == outputs[1]
  records = sum(len(_parse_records(p)) for p in
                [tmp_path / "s1_a.tfrecord", tmp_path / "s1_b.tfrecord"])
  assert records > 1000


def test_num_workers_is_deterministic(tmp_path):
  runs = []
  for attempt in range(2):
    out = str(tmp_path / ("w%d.tfrecord" % attempt))
    proc = _run_script(_common_args(out, "--num_workers=2"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs.append(open(out, "rb").read())
  assert runs[0] == runs[1]
  single = tmp_path / "single.tfrecord"
  assert _run_script(_common_args(str(single))).returncode == 0
  # Same documents and settings, different per-worker random streams.
  assert abs(len(_parse_records(single)) -
             len(_parse_records(tmp_path / "w0.tfrecord"))) < 200


def test_wwm_per_word_masking_treats_words_alike():
  tokenizer = tokenization.FullTokenizer(str(DATA / "vocab.txt"))
  vocab = tokenizer.vocab
  text = (PRETRAINING / "inputs" / "sample_text.txt").read_text("utf-8")
  documents = [[tokenizer.tokenize_to_ids(line) for line in text.split("\n")
                if line.strip()]]
  documents.append(documents[0][::-1])
  inv = tokenizer.inv_vocab
  for per_word in (False, True):
    spec = cpd._TokenSpec.for_ids(vocab)
    generator = cpd._Generator(spec, 128, 0.1, 0.15, 20, True, per_word)
    mixed_words = 0
    words = 0
    rng = random.Random(3)
    emitted = []
    for _ in range(30):
      generator.from_document(documents, 0, rng,
                              lambda *args: emitted.append(args))
    for tokens, _, positions, labels, _ in emitted:
      masked = dict(zip(positions, labels))
      # Group the masked positions into whole words.
      groups = []
      for pos in sorted(masked):
        if groups and inv[masked[pos]].startswith("##") and (
            groups[-1][-1] == pos - 1):
          groups[-1].append(pos)
        else:
          groups.append([pos])
      for group in groups:
        if len(group) < 2:
          continue
        words += 1
        kinds = {tokens[p] == vocab["[MASK]"] for p in group}
        mixed_words += len(kinds) > 1
    assert words > 20
    if per_word:
      assert mixed_words == 0
    else:
      assert mixed_words > 0


def test_warnings_for_input_traps(tmp_path):
  one_sentence_docs = tmp_path / "blank_between_lines.txt"
  one_sentence_docs.write_text("first sentence here .\n\nsecond one .\n\n"
                               "a third sentence .\n", encoding="utf-8")
  proc = _run_script(_common_args(str(tmp_path / "o1.tfrecord"))[1:] +
                     ["--input_file=" + str(one_sentence_docs)])
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "Every document is one sentence long" in proc.stderr
  single_doc = tmp_path / "single.txt"
  single_doc.write_text("one sentence .\nanother sentence .\nmore text .\n",
                        encoding="utf-8")
  proc = _run_script(_common_args(str(tmp_path / "o2.tfrecord"))[1:] +
                     ["--input_file=" + str(single_doc)])
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "single document" in proc.stderr


def test_never_split_and_strip_accents_flags(tmp_path):
  text = tmp_path / "special.txt"
  text.write_text("the [MASK] caf\u00e9 is open .\nwe sat there .\n\n"
                  "another doc here .\nwith two lines .\n", encoding="utf-8")
  base = ["--input_file=" + str(text), "--vocab_file=" + str(DATA /
                                                            "vocab.txt"),
          "--max_seq_length=32", "--max_predictions_per_seq=5",
          "--dupe_factor=1", "--masked_lm_prob=0.01"]
  out_plain = tmp_path / "plain.tfrecord"
  out_special = tmp_path / "special.tfrecord"
  assert _run_script(base + ["--output_file=%s" % out_plain]).returncode == 0
  proc = _run_script(base + ["--output_file=%s" % out_special,
                             "--never_split=[MASK]", "--strip_accents=false"])
  assert proc.returncode == 0, proc.stderr[-2000:]
  plain = [json.loads(x)["input_ids"] for x in _parse_records(out_plain)]
  special = [json.loads(x)["input_ids"] for x in _parse_records(out_special)]
  assert plain != special
  assert any(103 in ids for ids in special)


# ---------------------------------------------------------------------------
# Bad input: one line, exit status != 0, no output under the final name.
# ---------------------------------------------------------------------------


def _assert_clean_failure(proc, out_dir, *expected):
  assert proc.returncode != 0
  errors = [line for line in proc.stderr.splitlines()
            if line.startswith("ERROR:")]
  assert len(errors) == 1, proc.stderr[-2000:]
  for text in expected:
    assert text in errors[0]
  assert "Traceback" not in proc.stderr
  assert not [p for p in os.listdir(out_dir) if p.endswith(".tfrecord") or
              ".tmp-" in p]


def test_glob_matching_nothing(tmp_path):
  proc = _run_script(_common_args(str(tmp_path / "o.tfrecord"))[1:] +
                     ["--input_file=%s/nothing_*.txt" % tmp_path])
  _assert_clean_failure(proc, tmp_path, "nothing_*.txt", "matches no file")


def test_non_utf8_input_names_file_and_line(tmp_path):
  bad = tmp_path / "bad.txt"
  bad.write_bytes(b"good line .\nstill good .\n\nok \xff\xfe here .\n")
  proc = _run_script(_common_args(str(tmp_path / "o.tfrecord"))[1:] +
                     ["--input_file=" + str(bad)])
  _assert_clean_failure(proc, tmp_path, str(bad), "line 4", "UTF-8")


def test_unreadable_input(tmp_path):
  if os.geteuid() == 0:
    directory = tmp_path / "a_directory.txt"
    directory.mkdir()
    path = directory
  else:
    path = tmp_path / "locked.txt"
    path.write_text("x\n")
    path.chmod(0)
  proc = _run_script(_common_args(str(tmp_path / "o.tfrecord"))[1:] +
                     ["--input_file=" + str(path)])
  _assert_clean_failure(proc, tmp_path, str(path))


def test_missing_vocab(tmp_path):
  args = [a for a in _common_args(str(tmp_path / "o.tfrecord"))
          if not a.startswith("--vocab_file")]
  proc = _run_script(args + ["--vocab_file=%s/none.txt" % tmp_path])
  _assert_clean_failure(proc, tmp_path, "none.txt", "does not exist")


def test_vocab_without_special_tokens(tmp_path):
  vocab = tmp_path / "vocab.txt"
  vocab.write_text("[PAD]\n[UNK]\nthe\n", encoding="utf-8")
  args = [a for a in _common_args(str(tmp_path / "o.tfrecord"))
          if not a.startswith("--vocab_file")]
  proc = _run_script(args + ["--vocab_file=%s" % vocab])
  _assert_clean_failure(proc, tmp_path, "[CLS]")


def test_unwritable_output(tmp_path):
  proc = _run_script(_common_args(str(tmp_path / "missing_dir" /
                                      "o.tfrecord")))
  _assert_clean_failure(proc, tmp_path, "missing_dir", "Cannot write")


def test_failure_midway_leaves_no_output(tmp_path):
  # Valid start, invalid UTF-8 in the last of several files: the error
  # comes after the output files were opened.
  bad = tmp_path / "late_bad.txt"
  bad.write_bytes(b"fine .\n\n\xc3\x28 broken\n")
  out = tmp_path / "o.tfrecord"
  proc = _run_script(_common_args(str(out))[1:] +
                     ["--input_file=%s,%s" % (_inputs(), bad)])
  _assert_clean_failure(proc, tmp_path, "late_bad.txt", "line 3")


def test_importing_prints_nothing_and_defines_no_flags():
  code = ("import create_pretraining_data, sys; from absl import flags; "
          "sys.exit(1 if 'input_file' in flags.FLAGS else 0)")
  proc = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT),
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0
  assert proc.stdout == "" and proc.stderr == ""
