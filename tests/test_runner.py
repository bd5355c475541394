"""runner.py: the shared train/eval/predict loop (on a tiny regression task).

The pretraining task through the same loop is tested in test_run_pretraining.py.
"""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import runner
import runner_toy

HERE = os.path.dirname(os.path.abspath(__file__))


def _train(output_dir, steps, data=None, **cfg_kwargs):
  kwargs = dict(iterations_per_loop=4, save_checkpoints_steps=5, log_steps=4,
                seed=3, deterministic=True)
  kwargs.update(cfg_kwargs)
  cfg = runner.RunConfig(str(output_dir), **kwargs)
  data = runner_toy.make_data() if data is None else data
  return runner.train(cfg, runner_toy.ToyTask(),
                      runner_toy.input_fn_builder(data, True), steps, 3, 0.1,
                      train_batch_size=8)


def _read(prefix):
  reader = tf.train.load_checkpoint(prefix)
  return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}


def test_train_writes_original_format_checkpoints(tmp_path):
  assert _train(tmp_path, 12) == 12
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith("model.ckpt-12")
  keys = dict(checkpoints.list_variables(str(tmp_path / "model.ckpt-12")))
  assert sorted(keys) == sorted([
      "global_step", "toy/dense/bias", "toy/dense/bias/adam_m",
      "toy/dense/bias/adam_v", "toy/dense/kernel", "toy/dense/kernel/adam_m",
      "toy/dense/kernel/adam_v"])
  values = _read(str(tmp_path / "model.ckpt-12"))
  assert values["global_step"].dtype == np.int64 and values["global_step"] == 12
  # Saved at 0 (start), every 5 steps and at the end; keep_checkpoint_max 5.
  state = tf.train.get_checkpoint_state(str(tmp_path))
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
      "model.ckpt-0", "model.ckpt-5", "model.ckpt-10", "model.ckpt-12"]
  # TensorBoard event file with the scalars.
  assert tf.io.gfile.glob(str(tmp_path / "events.out.tfevents.*"))


class _Crash(Exception):
  pass


def test_resume_equals_uninterrupted_run_bitwise(tmp_path):
  """Deterministic ops on: a run interrupted after a checkpoint and resumed ends
  bitwise equal to an uninterrupted one (weights, Adam slots, step, data order)."""
  _train(tmp_path / "full", 12)

  def crash(step, prefix):
    if step == 5:
      raise _Crash(prefix)

  cfg = runner.RunConfig(str(tmp_path / "split"), iterations_per_loop=4,
                         save_checkpoints_steps=5, log_steps=4, seed=3,
                         deterministic=True)
  with pytest.raises(_Crash):
    runner.train(cfg, runner_toy.ToyTask(),
                 runner_toy.input_fn_builder(runner_toy.make_data(), True), 12, 3,
                 0.1, train_batch_size=8, on_checkpoint=crash)
  assert _train(tmp_path / "split", 12) == 12
  full = _read(str(tmp_path / "full" / "model.ckpt-12"))
  split = _read(str(tmp_path / "split" / "model.ckpt-12"))
  for name in full:
    np.testing.assert_array_equal(full[name], split[name], err_msg=name)


def test_nothing_to_train_when_step_reached(tmp_path, monkeypatch):
  _train(tmp_path, 5)
  mtime = os.path.getmtime(tmp_path / "model.ckpt-5.index")
  messages = []
  monkeypatch.setattr(runner.logging, "info",
                      lambda msg, *args: messages.append(msg % args))
  assert _train(tmp_path, 5) == 5
  assert any("nothing to train" in m for m in messages)
  assert os.path.getmtime(tmp_path / "model.ckpt-5.index") == mtime


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  data = runner_toy.make_data()
  data["y"][60] = np.nan  # batch 7 (0-based) holds example 60
  with pytest.raises(runner.UserError, match="NaN/Inf at step 7.*model.ckpt-5"):
    _train(tmp_path, 12, data=data)
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith("model.ckpt-5")


def test_gradient_accumulation_matches_full_batch(tmp_path):
  _train(tmp_path / "one", 6)
  _train(tmp_path / "two", 6, gradient_accumulation_steps=2)
  one = _read(str(tmp_path / "one" / "model.ckpt-6"))
  two = _read(str(tmp_path / "two" / "model.ckpt-6"))
  for name in one:
    np.testing.assert_allclose(one[name], two[name], rtol=1e-5, atol=1e-6,
                               err_msg=name)
  with pytest.raises(runner.UserError, match="gradient_accumulation_steps=3"):
    _train(tmp_path / "three", 6, gradient_accumulation_steps=3)


def test_output_dir_of_another_model_is_refused(tmp_path):
  _train(tmp_path, 5)
  cfg = runner.RunConfig(str(tmp_path), save_checkpoints_steps=5)
  with pytest.raises(runner.UserError, match="another model"):
    runner.train(cfg, runner_toy.ToyTask(width=6),
                 runner_toy.input_fn_builder(runner_toy.make_data(width=6), True),
                 10, 0, 0.1, train_batch_size=8)


def test_evaluate_and_predict_follow_the_data(tmp_path):
  _train(tmp_path, 10)
  cfg = runner.RunConfig(str(tmp_path))
  data = runner_toy.make_data()
  task = runner_toy.ToyTask()
  results = runner.evaluate(cfg, task, runner_toy.input_fn_builder(data, False,
                                                                   False), 7)
  preds = list(runner.predict(cfg, task, runner_toy.input_fn_builder(
      data, False, False), 7))
  assert [int(p["id"]) for p in preds] == list(range(64))
  values = _read(str(tmp_path / "model.ckpt-10"))
  y_hat = data["x"] @ values["toy/dense/kernel"][:, 0] + values["toy/dense/bias"][0]
  np.testing.assert_allclose([p["y_hat"] for p in preds], y_hat, rtol=1e-5,
                             atol=1e-5)
  assert results["global_step"] == 10
  np.testing.assert_allclose(results["sq_err"], np.mean((y_hat - data["y"])**2),
                             rtol=1e-5)
  path = str(tmp_path / "eval_results.txt")
  runner.write_eval_results(path, results)
  lines = open(path).read().splitlines()
  assert lines == sorted(lines) and lines[0].startswith("global_step = 10")


def test_tpu_flags_reach_the_real_resolver_and_fail_clearly():
  cfg = runner.RunConfig("/tmp/unused", use_tpu=True, tpu_name="no-such-tpu",
                         tpu_zone="us-central1-b", gcp_project="proj")
  with pytest.raises(runner.UserError) as e:
    runner.get_strategy(cfg)
  message = str(e.value)
  assert "no-such-tpu" in message and "TPU" in message and "\n" not in message


def _run_check(mode, output_dir, env=None):
  proc = subprocess.run(
      [sys.executable, os.path.join(HERE, "distributed_check.py"), mode,
       str(output_dir)], capture_output=True, text=True, env=env, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("LOSSES ")][0]
  return json.loads(line[len("LOSSES "):])


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_mirrored_and_multi_worker_match_one_device(tmp_path):
  """Same global batch, same trajectory: |Δloss| ≤ 1e-5 relative.

  The replicas' mean gradients differ from the one-device gradient only by the
  float32 summation order, so the trajectories agree to ~1e-7.
  """
  single = _run_check("single", tmp_path / "single")
  mirrored = _run_check("mirrored", tmp_path / "mirrored")
  np.testing.assert_allclose(mirrored, single, rtol=1e-5)

  ports = [_free_port(), _free_port()]
  procs = []
  for index in range(2):
    env = dict(os.environ)
    env["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"localhost:{p}" for p in ports]},
        "task": {"type": "worker", "index": index}})
    procs.append(subprocess.Popen(
        [sys.executable, os.path.join(HERE, "distributed_check.py"), "worker",
         str(tmp_path / f"worker{index}")], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env))
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  worker_losses = [json.loads([l for l in out.splitlines()
                               if l.startswith("LOSSES ")][0][7:])
                   for out, _ in outs]
  np.testing.assert_allclose(worker_losses[0], single, rtol=1e-5)
  np.testing.assert_allclose(worker_losses[1], single, rtol=1e-5)
  # Only the chief writes checkpoints.
  assert os.path.exists(tmp_path / "worker0" / "checkpoint")
  assert not os.path.exists(tmp_path / "worker1" / "checkpoint")


@pytest.mark.parametrize("setting,expected", [(None, "true"),
                                              ("false", "false")])
def test_scripts_use_the_bfc_cpu_allocator_unless_told_not_to(setting,
                                                              expected):
  """Importing a script (after TensorFlow, as the scripts do, and before any
  op, when TF reads the variable) sets TF_CPU_ALLOCATOR_USE_BFC=true; a value
  the user set wins. (What TensorFlow's allocator then does is TF's own
  business and differs between CPU kinds: not tested here.)"""
  env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
  if setting is not None:
    env["TF_CPU_ALLOCATOR_USE_BFC"] = setting
  code = ("import os\n"
          "import tensorflow as tf\n"
          "import run_classifier\n"
          "print(os.environ.get('TF_CPU_ALLOCATOR_USE_BFC'))\n")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                        text=True, env=env, cwd=os.path.dirname(HERE),
                        check=True)
  assert proc.stdout.strip() == expected
