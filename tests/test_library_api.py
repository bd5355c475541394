"""Code written against the original keeps running (issue 22).

* The original's own unit tests (tokenization, modeling, optimization), in
  TF1 graph mode, in their own process: tests/original_unit_tests.py.
* The official Colab's flow (tests/colab_flow.py) through `from bert import
  ...` in a freshly built wheel installed with `pip install --target`, and
  through the flat layout, in TF2 and in `tf.compat.v1` graph mode.
* One test per item of the issue's list of breakages.

The subprocesses are started together (module fixture) and awaited by the
tests that read them.
"""
import os
import runpy
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REFERENCE, ROOT, require

import create_pretraining_data
import extract_features
import modeling
import optimization
import run_classifier
import run_pretraining
import run_squad

TINY = REFERENCE / "model" / "pretrain_tiny"
CKPT = str(TINY / "model.ckpt-20")
CONFIG = str(TINY / "bert_config.json")


def _env(**extra):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  env.pop("PYTHONPATH", None)
  env.update(extra)
  return env


class _Run(object):
  """A started subprocess; `.result()` waits for it."""

  def __init__(self, args, cwd, env):
    self.args = args
    self._proc = subprocess.Popen(args, cwd=cwd, env=env, text=True,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
    self._out = None

  def result(self):
    if self._out is None:
      stdout, stderr = self._proc.communicate(timeout=300)
      self._out = (self._proc.returncode, stdout, stderr)
    return self._out


def _build_wheel(tmp):
  """Builds the wheel from a copy of the sources; (site_dir, None) or
  (None, reason)."""
  src = tmp / "src"
  src.mkdir()
  if not (ROOT / "pyproject.toml").exists():
    return None, "no pyproject.toml"
  for path in list(ROOT.glob("*.py")) + [ROOT / "pyproject.toml",
                                         ROOT / "README.md"]:
    shutil.copy(path, src / path.name)
  proc = subprocess.run(
      [sys.executable, "-m", "pip", "wheel", ".", "--no-deps",
       "--no-build-isolation", "-q", "-w", str(tmp / "dist")],
      cwd=str(src), env=_env(), capture_output=True, text=True, timeout=120)
  wheels = list((tmp / "dist").glob("*.whl"))
  if proc.returncode != 0 or len(wheels) != 1:
    return None, "pip wheel failed: %s" % proc.stderr[-2000:]
  site = tmp / "site"
  proc = subprocess.run(
      [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
       str(site), str(wheels[0])],
      env=_env(), capture_output=True, text=True, timeout=120)
  if proc.returncode != 0:
    return None, "pip install --target failed: %s" % proc.stderr[-2000:]
  return site, None


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  require(CKPT + ".index")
  tmp = tmp_path_factory.mktemp("library_api")
  work = tmp / "work"
  work.mkdir()
  py = sys.executable
  flow = str(ROOT / "tests" / "colab_flow.py")
  unit = str(ROOT / "tests" / "original_unit_tests.py")
  started = {
      "unit_flat": _Run([py, unit], str(work), _env()),
      "flow_graph_flat": _Run([py, flow, "graph", "flat", CKPT, CONFIG,
                               str(work)], str(work), _env()),
  }
  site, reason = _build_wheel(tmp)
  if site is not None:
    env = _env(PYTHONPATH=str(site))
    # From a directory without the clone: only the installed package.
    started["flow_eager_package"] = _Run(
        [py, flow, "eager", "package", CKPT, CONFIG, str(work)], str(work),
        env)
    started["command"] = _Run(
        [str(site / "bin" / "bert-run-classifier"), "--helpshort"],
        str(work), env)
  return dict(started=started, site=site, reason=reason, work=work)


def _ok(runs, name):
  if name not in runs["started"]:
    pytest.skip("the wheel could not be built or installed here: %s" %
                runs["reason"])
  code, stdout, stderr = runs["started"][name].result()
  assert code == 0, "%s failed:\n%s\n%s" % (name, stdout[-3000:],
                                            stderr[-6000:])
  return stdout, stderr


# ------------------------------------------------- the original's unit tests
def test_original_unit_tests_pass_in_tf1_graph_mode(runs):
  _, stderr = _ok(runs, "unit_flat")
  for name in ("TokenizationTest.test_full_tokenizer",
               "TokenizationTest.test_wordpiece_tokenizer",
               "BertModelTest.test_default",
               "BertModelTest.test_config_to_json_string",
               "OptimizationTest.test_adam"):
    assert "[       OK ] %s" % name in stderr, stderr[-3000:]
  assert "FAILED" not in stderr


# ------------------------------------------------------- the Colab's flow
def test_colab_flow_flat_layout_tf1_graph_mode(runs):
  stdout, _ = _ok(runs, "flow_graph_flat")
  assert "COLAB FLOW OK graph flat %s" % (ROOT / "modeling.py") in stdout


def test_colab_flow_flat_layout_tf2(runs, monkeypatch, capsys):
  # In this (TF2) process: the flat modules the tests import.
  monkeypatch.setattr(sys, "argv", [
      "colab_flow.py", "eager", "flat", CKPT, CONFIG, str(runs["work"])])
  runpy.run_path(str(ROOT / "tests" / "colab_flow.py"), run_name="__main__")
  assert ("COLAB FLOW OK eager flat %s" % (ROOT / "modeling.py") in
          capsys.readouterr().out)


def test_colab_flow_installed_wheel(runs):
  stdout, _ = _ok(runs, "flow_eager_package")
  # The installed copy, not the clone.
  assert ("COLAB FLOW OK eager package %s" %
          (runs["site"] / "bert" / "modeling.py")) in stdout


def test_console_command_has_the_scripts_flags(runs):
  if "command" not in runs["started"]:
    pytest.skip("the wheel could not be built or installed here: %s" %
                runs["reason"])
  code, stdout, stderr = runs["started"]["command"].result()
  assert code in (0, 1), stderr[-3000:]  # absl's --helpshort exits with 1
  text = stdout + stderr
  for flag in ("--task_name", "--bert_config_file", "--do_train",
               "--max_seq_length"):
    assert flag in text, text[-2000:]


def test_package_refuses_a_clashing_flat_module(runs):
  if runs["site"] is None:
    pytest.skip("the wheel could not be built or installed here: %s" %
                runs["reason"])
  code = ("import sys, types\n"
          "sys.modules['common'] = types.ModuleType('common')\n"
          "try:\n"
          "  import bert\n"
          "except ImportError as e:\n"
          "  print('REFUSED', e)\n")
  proc = subprocess.run([sys.executable, "-c", code], cwd=str(runs["work"]),
                        env=_env(PYTHONPATH=str(runs["site"])),
                        capture_output=True, text=True, timeout=60)
  assert "REFUSED" in proc.stdout and "'common'" in proc.stdout, (
      proc.stdout + proc.stderr)


# ------------------------------------------ the list, item by item
def _tiny_model(**kwargs):
  config = modeling.BertConfig.from_json_file(require(CONFIG))
  ids = tf.constant([[2, 10, 11, 3], [2, 20, 3, 0]])
  mask = tf.constant([[1, 1, 1, 1], [1, 1, 1, 0]])
  return modeling.BertModel(config, False, ids, mask, **kwargs)


def test_assignment_map_of_tf2_variables():
  model = _tiny_model()
  amap, initialized = modeling.get_assignment_map_from_checkpoint(
      model.trainable_variables, CKPT)
  assert sorted(amap) == sorted(model.named_variables())
  assert initialized["bert/encoder/layer_1/output/dense/kernel:0"] == 1
  other = _tiny_model(scope="other")
  with pytest.raises(ValueError, match="nothing would be loaded"):
    modeling.get_assignment_map_from_checkpoint(other.trainable_variables,
                                                CKPT)


def test_apply_gradients_takes_the_original_pairs_and_global_step():
  # The original test's problem, eagerly, in both call forms.
  target = tf.constant([0.4, 0.2, -0.5])
  w_pairs = tf.Variable([0.1, -0.2, -0.1], name="w")
  w_named = tf.Variable([0.1, -0.2, -0.1], name="w")
  step = tf.Variable(0, dtype=tf.int64)
  opt_pairs = optimization.AdamWeightDecayOptimizer(learning_rate=0.2)
  opt_named = optimization.AdamWeightDecayOptimizer(learning_rate=0.2)
  for _ in range(100):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.square(target - w_pairs))
    grads = tape.gradient(loss, [w_pairs])
    assert opt_pairs.apply_gradients(zip(grads, [w_pairs]), step) is None
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.square(target - w_named))
    opt_named.apply_gradients(tape.gradient(loss, [w_named]), {"w": w_named},
                              global_step=step)
  np.testing.assert_allclose(w_pairs.numpy(), [0.4, 0.2, -0.5], atol=1e-2)
  np.testing.assert_array_equal(w_pairs.numpy(), w_named.numpy())
  assert list(opt_pairs.named_slots()) == ["w/adam_m", "w/adam_v"]


def test_getters_return_values_of_the_current_weights():
  from checkpoints import init_from_checkpoint  # pylint: disable=g-import-not-at-top
  model = _tiny_model()
  random_pooled = model.get_pooled_output().numpy()
  init_from_checkpoint(model.named_variables(), CKPT, log=False)
  reader = tf.train.load_checkpoint(CKPT)
  sequence = model.get_sequence_output().numpy()
  expected = np.tanh(sequence[:, 0] @ reader.get_tensor(
      "bert/pooler/dense/kernel") + reader.get_tensor("bert/pooler/dense/bias"))
  pooled = model.get_pooled_output().numpy()
  np.testing.assert_allclose(pooled, expected, rtol=1e-5, atol=1e-5)
  assert not np.allclose(pooled, random_pooled, atol=1e-3)
  # The embedding output is the LayerNorm'd sum of the loaded tables.
  table = reader.get_tensor("bert/embeddings/word_embeddings")
  np.testing.assert_array_equal(model.get_embedding_table().numpy(), table)


def test_attention_layer_against_numpy():
  """The original's attention_layer (eager): its variables, captured as
  they are created, give the same result in numpy."""
  created = []

  def capture(next_creator, **kwargs):
    created.append(next_creator(**kwargs))
    return created[-1]

  rng = np.random.RandomState(0)
  from_tensor = rng.randn(2, 3, 8).astype(np.float32)
  to_tensor = rng.randn(2, 4, 6).astype(np.float32)
  mask = np.array([[[1, 1, 0, 0]] * 3, [[1, 1, 1, 1]] * 3], np.int32)
  with tf.variable_creator_scope(capture):
    out = modeling.attention_layer(
        tf.constant(from_tensor), tf.constant(to_tensor), tf.constant(mask),
        num_attention_heads=2, size_per_head=5).numpy()
  wq, bq, wk, bk, wv, bv = [v.numpy() for v in created]
  assert [v.name.split(":")[0] for v in created[::2]] == [
      "query__kernel", "key__kernel", "value__kernel"]

  def heads(x):
    return x.reshape(x.shape[0], x.shape[1], 2, 5).transpose(0, 2, 1, 3)

  q = heads(from_tensor @ wq + bq)
  k = heads(to_tensor @ wk + bk)
  v = heads(to_tensor @ wv + bv)
  scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(5.0)
  scores += (1.0 - mask[:, None].astype(np.float32)) * -10000.0
  probs = np.exp(scores - scores.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  expected = (probs @ v).transpose(0, 2, 1, 3).reshape(2, 3, 10)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_transformer_model_and_embeddings_in_eager_code():
  ids = tf.constant([[1, 2, 3], [4, 5, 0]])
  emb, table = modeling.embedding_lookup(ids, vocab_size=10,
                                         embedding_size=16)
  np.testing.assert_array_equal(emb.numpy()[1, 0], table.numpy()[4])
  out = modeling.embedding_postprocessor(
      emb, use_token_type=True, token_type_ids=tf.zeros_like(ids),
      token_type_vocab_size=2, max_position_embeddings=8, dropout_prob=0.0)
  layers = modeling.transformer_model(
      out, modeling.create_attention_mask_from_input_mask(ids, ids > 0),
      hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
      intermediate_size=20, do_return_all_layers=True)
  assert len(layers) == 2 and layers[-1].shape == (2, 3, 16)
  # Each layer ends with a LayerNorm (gamma 1, beta 0): zero mean rows.
  np.testing.assert_allclose(layers[-1].numpy().mean(-1), 0.0, atol=1e-5)
  with pytest.raises(ValueError, match="use_token_type"):
    modeling.embedding_postprocessor(emb, use_token_type=True)
  with pytest.raises(ValueError, match="not a multiple"):
    modeling.transformer_model(out, hidden_size=16, num_attention_heads=3)


def test_create_pretraining_data_feature_helpers():
  feature = create_pretraining_data.create_int_feature([3, 1, 4])
  assert list(feature.int64_list.value) == [3, 1, 4]
  feature = create_pretraining_data.create_float_feature([0.5, 1.0])
  assert list(feature.float_list.value) == [0.5, 1.0]


def test_model_fn_builders_give_the_loops_tasks():
  config = modeling.BertConfig.from_json_file(require(CONFIG))
  task = run_classifier.model_fn_builder(
      config, num_labels=3, init_checkpoint=CKPT, learning_rate=2e-5,
      num_train_steps=10, num_warmup_steps=1, use_tpu=False,
      use_one_hot_embeddings=True)
  assert isinstance(task, run_classifier.ClassifierTask)
  assert task.num_labels == 3 and task.options.use_one_hot_embeddings
  assert task.train_args == dict(init_checkpoint=CKPT, learning_rate=2e-5,
                                 num_train_steps=10, num_warmup_steps=1)
  for module, cls in ((run_squad, run_squad.SquadTask),
                      (run_pretraining, run_pretraining.PretrainingTask)):
    task = module.model_fn_builder(config, CKPT, 1e-4, 10, 1, False, False)
    assert isinstance(task, cls) and task.train_args["num_train_steps"] == 10
  import run_classifier_with_tfhub  # pylint: disable=g-import-not-at-top
  task = run_classifier_with_tfhub.model_fn_builder(2, 1e-4, 10, 1, False,
                                                    "/no/hub/module")
  assert task.num_labels == 2 and task.train_args["init_checkpoint"] is None
  task = extract_features.model_fn_builder(config, CKPT, [-1, -2], False,
                                           False)
  assert task.layer_indexes == [-1, -2] and task.init_checkpoint == CKPT


def test_every_script_has_its_console_command():
  tomllib = pytest.importorskip("tomllib")
  with open(ROOT / "pyproject.toml", "rb") as f:
    project = tomllib.load(f)
  assert project["tool"]["setuptools"]["package-dir"] == {"bert": "."}
  scripts = project["project"]["scripts"]
  import _cli  # pylint: disable=g-import-not-at-top
  mains = sorted(p.stem for p in ROOT.glob("[!_]*.py")
                 if 'if __name__ == "__main__":' in p.read_text())
  assert "run_classifier" in mains and "convert_checkpoint" in mains
  for name in mains:
    command = "bert-" + name.replace("_", "-")
    assert scripts.get(command) == "bert._cli:" + name, command
    assert callable(getattr(_cli, name))
  assert len(scripts) == len(mains)
