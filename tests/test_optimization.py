"""Tests for optimization.py against the original's outputs and numpy.

Oracles: ../shared/reference/model/optimizer/ (produced by running the original
optimization.py) and independent float64 numpy re-computations of the update rules.
The MirroredStrategy checks run this file as a subprocess (`--mirrored`), because two
logical CPU devices must be configured before TensorFlow initialises.
"""
import collections
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REFERENCE, require
import optimization
import runner

OPT_DIR = REFERENCE / "model" / "optimizer"
EXCLUDE = ["LayerNorm", "layer_norm", "bias"]


def _load(name):
  return json.loads(require(OPT_DIR / name).read_text())


# --------------------------------------------------------------------- schedule


def test_lr_schedule_bit_identical_to_original_eager():
  ref = _load("lr_schedule.json")
  s = ref["settings"]
  sched = optimization.BertSchedule(s["init_lr"], s["num_train_steps"],
                                    s["num_warmup_steps"])
  for e in ref["schedule"]:
    got = sched(e["global_step"]).numpy()
    assert got.dtype == np.float32
    assert got == np.float32(e["learning_rate"]), e


@pytest.mark.parametrize("jit", [False, True])
def test_lr_schedule_bit_identical_in_tf_function(jit):
  ref = _load("lr_schedule.json")
  s = ref["settings"]
  sched = optimization.BertSchedule(s["init_lr"], s["num_train_steps"],
                                    s["num_warmup_steps"])
  fn = tf.function(sched, jit_compile=jit)
  steps = tf.constant([e["global_step"] for e in ref["schedule"]], tf.int64)
  got = fn(steps).numpy()
  want = np.array([e["learning_rate"] for e in ref["schedule"]], np.float32)
  np.testing.assert_array_equal(got, want)
  # A variable step (how the training loop reads global_step).
  var = tf.Variable(0, dtype=tf.int64)
  read = tf.function(lambda: sched(var), jit_compile=jit)
  for e in ref["schedule"][::7]:
    var.assign(e["global_step"])
    assert read().numpy() == np.float32(e["learning_rate"])


def test_lr_schedule_spec_probe_values():
  # Spec §14: init_lr 1e-4, 100 steps, warmup 10.
  sched = optimization.BertSchedule(1e-4, 100, 10)
  probes = {0: 0.0, 1: 1e-5, 5: 5e-5, 9: 9e-5, 10: 9e-5, 11: 8.9e-5, 50: 5e-5,
            99: 1e-6, 100: 0.0, 150: 0.0}
  for step, want in probes.items():
    np.testing.assert_allclose(sched(step).numpy(), want, rtol=1e-5, atol=1e-12)
  # No warmup: decay from init_lr at step 0.
  flat = optimization.BertSchedule(1e-4, 100, 0)
  assert flat(0).numpy() == np.float32(1e-4)
  np.testing.assert_allclose(flat(25).numpy(), 7.5e-5, rtol=1e-6)


def _numpy_schedule(init_lr, total, warmup, step, continuous):
  if warmup and step < warmup:
    return init_lr * step / warmup
  start = warmup if (continuous and warmup) else 0
  span = total - start
  if span <= 0:
    return 0.0
  return init_lr * (1.0 - min(step - start, span) / span)


@pytest.mark.parametrize("init_lr,total,warmup", [(1e-4, 100, 10),
                                                  (2e-5, 1000, 137),
                                                  (5e-5, 30, 0)])
def test_continuous_warmup_against_numpy(init_lr, total, warmup):
  sched = optimization.BertSchedule(init_lr, total, warmup,
                                    continuous_warmup=True)
  steps = list(range(0, total + 20))
  got = tf.function(sched)(tf.constant(steps, tf.int64)).numpy()
  want = [_numpy_schedule(init_lr, total, warmup, s, True) for s in steps]
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=init_lr * 1e-6)
  if warmup:
    # The peak is reached exactly at the end of warmup and there is no jump.
    assert got[warmup] == np.float32(init_lr)
    assert np.max(np.abs(np.diff(got))) <= init_lr / min(warmup, total - warmup) * 1.0001


def test_schedule_rejects_bad_arguments():
  with pytest.raises(ValueError, match="num_train_steps"):
    optimization.BertSchedule(1e-4, 0, 0)
  with pytest.raises(ValueError, match="num_warmup_steps"):
    optimization.BertSchedule(1e-4, 10, -1)


# --------------------------------------------------------------------- adam


def _run_trajectory(run, mode):
  s = run["settings"]
  w = tf.Variable(s["w0"], dtype=tf.float32)
  x = tf.constant(s["x"], tf.float32)
  opt = optimization.AdamWeightDecayOptimizer(
      s["learning_rate"], weight_decay_rate=s["weight_decay_rate"],
      exclude_from_weight_decay=s["exclude_from_weight_decay"],
      jit_update=(mode == "jit_update"))
  named = collections.OrderedDict(w=w)
  opt.build(named)

  def step():
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.square(x - w))
    opt.apply_gradients([tape.gradient(loss, w)], named)
    return loss

  if mode in ("function", "jit"):
    step = tf.function(step, jit_compile=(mode == "jit"))
  slots = opt.named_slots()
  assert list(slots) == ["w/adam_m", "w/adam_v"]
  states = []
  for _ in range(s["steps"]):
    states.append((w.numpy(), slots["w/adam_m"].numpy(),
                   slots["w/adam_v"].numpy()))
    step()
  states.append((w.numpy(), slots["w/adam_m"].numpy(), slots["w/adam_v"].numpy()))
  return states


@pytest.mark.parametrize("key,mode", [
    ("adam_test", "eager"), ("adam_wd0.1", "eager"),
    ("adam_wd0.1_excluded", "eager"), ("adam_wd0.1", "function"),
    ("adam_wd0.1", "jit"), ("adam_wd0.1", "jit_update")])
def test_adam_trajectories_match_original(key, mode):
  ref = _load("adam_trajectories.json")
  assert set(ref) == {"adam_test", "adam_wd0.1", "adam_wd0.1_excluded"}
  run = ref[key]
  states = _run_trajectory(run, mode)
  assert len(states) == len(run["w"]) == 101
  for i, (w, m, v) in enumerate(states):
    np.testing.assert_allclose(w, run["w"][i], rtol=0, atol=1e-6,
                               err_msg="%s w[%d]" % (key, i))
    np.testing.assert_allclose(m, run["adam_m"][i], rtol=0, atol=1e-6,
                               err_msg="%s m[%d]" % (key, i))
    np.testing.assert_allclose(v, run["adam_v"][i], rtol=0, atol=1e-6,
                               err_msg="%s v[%d]" % (key, i))
  # Spec §14 probe: final w of the no-decay run.
  np.testing.assert_allclose(ref["adam_test"]["w"][100],
                             [0.40165, 0.19782, -0.49782], atol=1e-5)


def test_weight_decay_exclusion_identical_to_original():
  ref = _load("weight_decay_exclusion.json")
  hp = _load("lr_schedule.json")["hyperparameters"]
  opt, _ = optimization.create_optimizer(None, 1e-4, 100, 10, False)
  assert opt.exclude_from_weight_decay == ref["exclude_from_weight_decay"]
  assert opt.weight_decay_rate == hp["weight_decay_rate"]
  assert (opt.beta_1, opt.beta_2, opt.epsilon) == (hp["beta_1"], hp["beta_2"],
                                                   hp["epsilon"])
  got = {name: opt._do_use_weight_decay(name) for name in ref["gets_weight_decay"]}
  assert got == ref["gets_weight_decay"]
  # No decay at all when the rate is 0.
  plain = optimization.AdamWeightDecayOptimizer(1e-3, exclude_from_weight_decay=EXCLUDE)
  assert not any(plain._do_use_weight_decay(n) for n in ref["gets_weight_decay"])


def _numpy_adam_steps(params, grads_per_step, lrs, wd, names, bias_correction,
                      lamb=False, exclude=EXCLUDE, eps=1e-6, b1=0.9, b2=0.999):
  """Independent float64 re-computation of the update rules."""
  import re
  p = {n: np.array(v, np.float64) for n, v in params.items()}
  m = {n: np.zeros_like(v) for n, v in p.items()}
  v_ = {n: np.zeros_like(v) for n, v in p.items()}
  for t, (grads, lr) in enumerate(zip(grads_per_step, lrs)):
    for n in names:
      g = np.asarray(grads[n], np.float64)
      m[n] = b1 * m[n] + (1 - b1) * g
      v_[n] = b2 * v_[n] + (1 - b2) * g * g
      mh, vh = m[n], v_[n]
      if bias_correction:
        mh = mh / (1 - b1 ** (t + 1))
        vh = vh / (1 - b2 ** (t + 1))
      u = mh / (np.sqrt(vh) + eps)
      excluded = any(re.search(r, n) for r in exclude)
      if wd and not excluded:
        u = u + wd * p[n]
      if lamb and not excluded:
        wn, un = np.linalg.norm(p[n]), np.linalg.norm(u)
        u = u * (wn / un if wn > 0 and un > 0 else 1.0)
      p[n] = p[n] - lr * u
  return p, m, v_


def _random_problem(seed=0, steps=6):
  rng = np.random.RandomState(seed)
  shapes = collections.OrderedDict([
      ("layer/dense/kernel", (5, 3)),
      ("layer/dense/bias", (3,)),
      ("layer/LayerNorm/gamma", (3,)),
      ("zero/kernel", (4,)),          # all-zero weights: LAMB ratio 1
  ])
  params = collections.OrderedDict(
      (n, rng.normal(size=s).astype(np.float32)) for n, s in shapes.items())
  params["zero/kernel"][:] = 0.0
  grads = [collections.OrderedDict((n, (rng.normal(size=s) * 0.3).astype(np.float32))
                                   for n, s in shapes.items())
           for _ in range(steps)]
  return params, grads


@pytest.mark.parametrize("cls,bias_correction,jit_update", [
    (optimization.AdamWeightDecayOptimizer, False, False),
    (optimization.AdamWeightDecayOptimizer, True, False),
    (optimization.AdamWeightDecayOptimizer, False, True),
    (optimization.LAMBOptimizer, True, False),
    (optimization.LAMBOptimizer, False, False),
    (optimization.LAMBOptimizer, True, True),
])
def test_update_rules_against_numpy(cls, bias_correction, jit_update):
  params, grads = _random_problem()
  lrs = [0.0, 0.01, 0.02, 0.015, 0.01, 0.005]
  named = collections.OrderedDict((n, tf.Variable(v)) for n, v in params.items())
  opt = cls(0.0, weight_decay_rate=0.01, exclude_from_weight_decay=EXCLUDE,
            bias_correction=bias_correction, jit_update=jit_update)
  opt.build(named)
  step = tf.Variable(0, dtype=tf.int64)

  @tf.function
  def apply(g, lr):
    opt.apply_gradients(g, named, learning_rate=lr, global_step=step)
    step.assign_add(1)

  for g, lr in zip(grads, lrs):
    apply([tf.constant(g[n]) for n in named], tf.constant(lr, tf.float32))
  lamb = cls is optimization.LAMBOptimizer
  want_p, want_m, want_v = _numpy_adam_steps(params, grads, lrs, 0.01, list(named),
                                             bias_correction, lamb=lamb)
  slots = opt.named_slots()
  assert list(slots) == [n + s for n in named for s in ("/adam_m", "/adam_v")]
  for n, var in named.items():
    np.testing.assert_allclose(var.numpy(), want_p[n], rtol=1e-5, atol=1e-6,
                               err_msg=n)
    np.testing.assert_allclose(slots[n + "/adam_m"].numpy(), want_m[n], rtol=1e-5,
                               atol=1e-7, err_msg=n)
    np.testing.assert_allclose(slots[n + "/adam_v"].numpy(), want_v[n], rtol=1e-5,
                               atol=1e-9, err_msg=n)
  if lamb:
    # The all-zero variable took a plain (ratio 1) step, not a zero step.
    assert np.abs(named["zero/kernel"].numpy()).max() > 0


def test_bias_correction_needs_global_step():
  v = collections.OrderedDict(w=tf.Variable([1.0, 2.0]))
  opt = optimization.AdamWeightDecayOptimizer(0.1, bias_correction=True)
  with pytest.raises(ValueError, match="global_step"):
    opt.apply_gradients([tf.constant([0.1, 0.2])], v)
  sched_opt = optimization.AdamWeightDecayOptimizer(
      optimization.BertSchedule(1e-3, 10, 2))
  with pytest.raises(ValueError, match="global_step"):
    sched_opt.apply_gradients([tf.constant([0.1, 0.2])], v)


def test_indexed_slices_are_applied_densely():
  """Every row's m/v decays and every row is weight-decayed, like the original."""
  rng = np.random.RandomState(3)
  table = rng.normal(size=(6, 4)).astype(np.float32)
  rows = np.array([1, 4, 1], np.int32)          # duplicate row 1: summed
  vals = rng.normal(size=(3, 4)).astype(np.float32)
  dense = np.zeros_like(table)
  np.add.at(dense, rows, vals)

  results = []
  for grad in (tf.IndexedSlices(tf.constant(vals), tf.constant(rows),
                                tf.constant([6, 4])), tf.constant(dense)):
    named = collections.OrderedDict(
        [("bert/embeddings/word_embeddings", tf.Variable(table))])
    opt = optimization.AdamWeightDecayOptimizer(
        0.01, weight_decay_rate=0.01, exclude_from_weight_decay=EXCLUDE)
    opt.build(named)
    # A previous step so that m/v are non-zero on every row.
    opt.apply_gradients([tf.ones_like(table)], named)
    tf.function(lambda g: opt.apply_gradients([g], named))(grad)
    slots = opt.named_slots()
    results.append([named["bert/embeddings/word_embeddings"].numpy(),
                    slots["bert/embeddings/word_embeddings/adam_m"].numpy(),
                    slots["bert/embeddings/word_embeddings/adam_v"].numpy()])
  for a, b in zip(*results):
    np.testing.assert_array_equal(a, b)
  want_p, want_m, _ = _numpy_adam_steps(
      {"e": table}, [{"e": np.ones_like(table)}, {"e": dense}], [0.01, 0.01], 0.01,
      ["e"], False)
  np.testing.assert_allclose(results[0][0], want_p["e"], rtol=1e-6, atol=1e-7)
  # Rows without a gradient this step still moved (decay of m and weight decay).
  np.testing.assert_allclose(results[0][1][0], 0.09 * np.ones(4), rtol=1e-6)


def test_create_optimizer_variants():
  opt, sched = optimization.create_optimizer(None, 2e-5, 1000, 100, False)
  assert isinstance(opt, optimization.AdamWeightDecayOptimizer)
  assert not isinstance(opt, optimization.LAMBOptimizer)
  assert opt.learning_rate is sched and not opt.bias_correction
  assert sched.get_config() == {"init_lr": 2e-5, "num_train_steps": 1000,
                                "num_warmup_steps": 100,
                                "continuous_warmup": False}
  lamb, _ = optimization.create_optimizer(None, 1e-3, 10, 1, False,
                                          optimizer="lamb")
  assert isinstance(lamb, optimization.LAMBOptimizer) and lamb.bias_correction
  assert lamb.exclude_from_layer_adaptation == EXCLUDE
  fixed, s2 = optimization.create_optimizer(None, 1e-3, 10, 2, False,
                                            bias_correction=True,
                                            continuous_warmup=True)
  assert fixed.bias_correction and s2(2).numpy() == np.float32(1e-3)
  with pytest.raises(ValueError, match="sgd"):
    optimization.create_optimizer(None, 1e-3, 10, 1, False, optimizer="sgd")


# --------------------------------------------------------------------- train step


class ToyTask(object):
  """A tiny task with a gathered embedding table, a dense layer and a bias."""

  def create_model(self):
    rng = np.random.RandomState(11)
    model = tf.Module()
    model.vars = collections.OrderedDict([
        ("emb/word_embeddings", tf.Variable(rng.normal(size=(10, 4)).astype("f"))),
        ("dense/kernel", tf.Variable(rng.normal(size=(4, 3)).astype("f"))),
        ("dense/bias", tf.Variable(np.zeros(3, "f"))),
    ])
    model.named_variables = lambda: model.vars
    return model

  def compute_loss(self, model, features, training):
    v = model.named_variables()
    x = tf.gather(v["emb/word_embeddings"], features["ids"])
    y = tf.matmul(x, v["dense/kernel"]) + v["dense/bias"]
    loss = tf.reduce_mean(tf.square(y - features["target"]))
    return loss, {"mse": loss}


def _toy_batch(n=8):
  rng = np.random.RandomState(5)
  return {"ids": rng.randint(0, 10, size=(n,)).astype(np.int32),
          "target": (rng.normal(size=(n, 3)) * 3).astype(np.float32)}


def _numpy_toy_run(task, batch, sched, steps):
  """float64 forward/backward/clip/update of ToyTask, pre-increment lr."""
  v = {n: var.numpy().astype(np.float64)
       for n, var in task.create_model().named_variables().items()}
  grads_list, lrs = [], []
  p = dict(v)
  for s in range(steps):
    e, k, b = p["emb/word_embeddings"], p["dense/kernel"], p["dense/bias"]
    x = e[batch["ids"]]
    y = x @ k + b
    d = 2.0 * (y - batch["target"]) / y.size
    g = {"dense/bias": d.sum(0), "dense/kernel": x.T @ d}
    rows = d @ k.T          # IndexedSlices values, one row per occurrence
    ge = np.zeros_like(e)
    np.add.at(ge, batch["ids"], rows)
    g["emb/word_embeddings"] = ge
    # tf.clip_by_global_norm (like the original) counts IndexedSlices by their
    # values, i.e. duplicate ids are not summed before the norm.
    norm = np.sqrt((g["dense/bias"] ** 2).sum() + (g["dense/kernel"] ** 2).sum() +
                   (rows ** 2).sum())
    g = {n: x_ / max(norm, 1.0) for n, x_ in g.items()}
    lr = float(sched(s).numpy())
    grads_list.append(g)
    lrs.append(lr)
    p, _, _ = _numpy_adam_steps(v, grads_list, lrs, 0.01, list(v), False)
  return p, lrs


def _toy_trainer(batch, cfg=None):
  """The runner's training step (what runner.train runs) on the toy task."""
  task = ToyTask()
  trainer = runner.build_trainer(cfg or runner.RunConfig(None), task, 0.05, 6,
                                 2, train_batch_size=len(batch["ids"]))
  return task, trainer


def _toy_input_fn(batch):
  return lambda params: tf.data.Dataset.from_tensor_slices(batch).batch(
      params["batch_size"]).repeat()


@pytest.mark.parametrize("use_xla", [False, True])
def test_train_step_against_numpy(use_xla):
  batch = _toy_batch()
  task, trainer = _toy_trainer(batch, runner.RunConfig(None, use_xla=use_xla))
  iterator = trainer.make_iterator(_toy_input_fn(batch))
  logs = [trainer.run_steps(iterator, 1) for _ in range(4)]
  sched = trainer.state.schedule
  assert int(trainer.state.global_step.numpy()) == 4
  assert [float(l["learning_rate"]) for l in logs] == [
      float(sched(s).numpy()) for s in range(4)]
  assert float(logs[0]["learning_rate"]) == 0.0  # pre-increment step 0
  assert set(logs[0]) == {"loss", "mse", "learning_rate", "global_norm"}
  want, _ = _numpy_toy_run(task, batch, sched, 4)
  for n, var in trainer.model.named_variables().items():
    np.testing.assert_allclose(var.numpy(), want[n], rtol=1e-5, atol=1e-6,
                               err_msg=n)


# --------------------------------------------------------------------- mirrored


def test_mirrored_strategy_equals_single_device():
  """2 logical CPUs: cross-replica and replica-context updates = one device."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--mirrored"],
                        capture_output=True, text=True, env=env, timeout=300,
                        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
  result = json.loads(line[len("RESULT "):])
  assert result["num_replicas"] == 2
  for key, err in result["max_abs_diff"].items():
    assert err <= 1e-6, (key, err)
  assert set(result["max_abs_diff"]) == {
      "adamw/cross_replica", "adamw/replica", "lamb/cross_replica",
      "lamb/replica", "adamw_jit_update/cross_replica",
      "adamw_jit_update/replica", "train_step/replica",
      "train_step/global_step"}


def _mirrored_main():
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  params, grads = _random_problem(seed=1, steps=4)
  # An embedding-style variable with IndexedSlices gradients, per replica.
  rng = np.random.RandomState(2)
  params["emb/word_embeddings"] = rng.normal(size=(6, 3)).astype(np.float32)
  rows = [np.array([0, 2, 2], np.int32), np.array([5, 2], np.int32)]
  for g in grads:
    g["emb/word_embeddings"] = [rng.normal(size=(len(r), 3)).astype(np.float32)
                                for r in rows]
  names = list(params)
  dense_names = [n for n in names if n != "emb/word_embeddings"]
  lrs = [0.01, 0.02, 0.015, 0.005]
  # Per-replica dense gradients: replica r gets g + (r - 0.5) * delta, so the mean
  # over replicas is g.
  deltas = {n: rng.normal(size=params[n].shape).astype(np.float32)
            for n in dense_names}

  def replica_grads(g, r):
    out = [tf.constant(g[n] + (r - 0.5) * deltas[n]) for n in dense_names]
    out.append(tf.IndexedSlices(tf.constant(g["emb/word_embeddings"][r]),
                                tf.constant(rows[r]), tf.constant([6, 3])))
    return out

  def mean_grads(g):
    dense = np.zeros((6, 3), np.float32)
    for r in range(2):
      np.add.at(dense, rows[r], g["emb/word_embeddings"][r] / 2.0)
    return [tf.constant(g[n]) for n in dense_names] + [tf.constant(dense)]

  order = dense_names + ["emb/word_embeddings"]

  def make(cls, jit_update=False):
    return cls(0.0, weight_decay_rate=0.01, exclude_from_weight_decay=EXCLUDE,
               bias_correction=True, jit_update=jit_update)

  diffs = {}
  for label, cls, jit in (
      ("adamw", optimization.AdamWeightDecayOptimizer, False),
      ("lamb", optimization.LAMBOptimizer, False),
      ("adamw_jit_update", optimization.AdamWeightDecayOptimizer, True)):
    # Single device reference (plain ops).
    ref = collections.OrderedDict((n, tf.Variable(params[n])) for n in order)
    ref_opt = make(cls)
    ref_opt.build(ref)
    for s, (g, lr) in enumerate(zip(grads, lrs)):
      ref_opt.apply_gradients(mean_grads(g), ref, learning_rate=lr,
                              global_step=tf.constant(s, tf.int64))
    want = {**{n: v.numpy() for n, v in ref.items()},
            **{n: v.numpy() for n, v in ref_opt.named_slots().items()}}

    # Cross-replica context: aggregated gradients, extended.update per variable.
    with strategy.scope():
      cv = collections.OrderedDict((n, tf.Variable(params[n])) for n in order)
      c_opt = make(cls, jit)
      c_opt.build(cv)
    cross = tf.function(lambda gr, lr, s: c_opt.apply_gradients(
        gr, cv, learning_rate=lr, global_step=s))
    for s, (g, lr) in enumerate(zip(grads, lrs)):
      if s % 2:
        with strategy.scope():
          cross(mean_grads(g), tf.constant(lr, tf.float32),
                tf.constant(s, tf.int64))
      else:
        # Also outside the scope: the variables' own strategy is used.
        c_opt.apply_gradients(mean_grads(g), cv, learning_rate=lr,
                              global_step=tf.constant(s, tf.int64))

    # Replica context: per-replica grads, all-reduce mean, one merge_call.
    with strategy.scope():
      rv = collections.OrderedDict((n, tf.Variable(params[n])) for n in order)
      r_opt = make(cls, jit)
      r_opt.build(rv)

    @tf.function
    def run(pr, lr, s):
      def fn(gr):
        ctx = tf.distribute.get_replica_context()
        summed = ctx.all_reduce(tf.distribute.ReduceOp.SUM, gr)
        mean = [x / 2.0 if not isinstance(x, tf.IndexedSlices) else
                tf.IndexedSlices(x.values / 2.0, x.indices, x.dense_shape)
                for x in summed]
        r_opt.apply_gradients(mean, rv, learning_rate=lr, global_step=s)
      strategy.run(fn, args=(pr,))

    for s, (g, lr) in enumerate(zip(grads, lrs)):
      per_replica = strategy.experimental_distribute_values_from_function(
          lambda ctx, g=g: replica_grads(g, ctx.replica_id_in_sync_group))
      run(per_replica, tf.constant(lr, tf.float32), tf.constant(s, tf.int64))

    for tag, vs, o in (("cross_replica", cv, c_opt), ("replica", rv, r_opt)):
      got = {}
      for n, v in list(vs.items()) + list(o.named_slots().items()):
        comps = [c.numpy() for c in v.values]
        assert np.array_equal(comps[0], comps[1]), (tag, n)
        got[n] = comps[0]
      assert set(got) == set(want)
      diffs["%s/%s" % (label, tag)] = max(
          float(np.abs(got[n] - want[n]).max()) for n in want)

  # The runner's step on a global batch split over the replicas == one device.
  # Distinct ids: summing replicas densifies the embedding gradient, whose
  # norm equals the IndexedSlices norm only without repeated ids.
  batch = _toy_batch(8)
  batch["ids"] = np.random.RandomState(3).permutation(10)[:8].astype(np.int32)
  _, single = _toy_trainer(batch)
  single.run_steps(single.make_iterator(_toy_input_fn(batch)), 3)
  _, mirrored = _toy_trainer(batch, runner.RunConfig(None, strategy=strategy))
  mirrored.run_steps(mirrored.make_iterator(_toy_input_fn(batch)), 3)
  diffs["train_step/replica"] = max(
      float(np.abs(mirrored.model.named_variables()[n].values[r].numpy() -
                   v.numpy()).max())
      for n, v in single.model.named_variables().items() for r in range(2))
  m_step, s_step = mirrored.state.global_step, single.state.global_step
  diffs["train_step/global_step"] = float(
      abs(int(m_step.values[0].numpy()) - int(s_step.numpy())) +
      abs(int(m_step.values[1].numpy()) - 3))
  print("RESULT " + json.dumps({"num_replicas": strategy.num_replicas_in_sync,
                                "max_abs_diff": diffs}))


if __name__ == "__main__":
  if "--mirrored" in sys.argv:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    _mirrored_main()
