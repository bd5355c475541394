# coding=utf-8
"""Functions and classes related to optimization (weight updates).

The original BERT `optimization.py` on TensorFlow 2; the optimizers are
`tf.Module`s keeping their slots under the original checkpoint names
`<variable>/adam_m` and `<variable>/adam_v`.
"""

import collections
import re

import numpy as np
import tensorflow as tf

import modeling


class BertSchedule(object):
  """The original learning-rate schedule, callable as `schedule(step)`.

  Decay `init_lr * (1 - min(step, num_train_steps) / num_train_steps)` from
  step 0 and, while `step < num_warmup_steps`, warmup `init_lr * step /
  num_warmup_steps`: lr is 0 at step 0, the peak is never reached and the rate
  jumps down at the end of warmup. `step` is the global step before this
  step's increment. The float32 arithmetic is what the original graph ran
  after TensorFlow folded its constants (a division by a constant became a
  multiplication by its float32 reciprocal, `init_lr * (step / warmup)` became
  `(init_lr * (1 / warmup)) * step`): every value is bit-identical.

  `continuous_warmup=True` (opt-in fix) measures the decay from the end of
  warmup, so lr peaks at `init_lr` at `step == num_warmup_steps`, no jump.
  """

  def __init__(self, init_lr, num_train_steps, num_warmup_steps,
               continuous_warmup=False):
    if num_train_steps is None or int(num_train_steps) <= 0:
      raise ValueError(
          "num_train_steps must be a positive integer, got %r (the learning rate "
          "decays to 0 over num_train_steps)." % (num_train_steps,))
    if num_warmup_steps is not None and int(num_warmup_steps) < 0:
      raise ValueError("num_warmup_steps must be >= 0, got %r." %
                       (num_warmup_steps,))
    self.init_lr = float(init_lr)
    self.num_train_steps = int(num_train_steps)
    self.num_warmup_steps = int(num_warmup_steps or 0)
    self.continuous_warmup = bool(continuous_warmup)

    self._init_lr = np.float32(self.init_lr)
    self._decay_start = 0
    self._decay_steps = self.num_train_steps
    if self.continuous_warmup and self.num_warmup_steps:
      self._decay_start = self.num_warmup_steps
      self._decay_steps = self.num_train_steps - self.num_warmup_steps
    self._recip_mantissa = None
    if self._decay_steps > 0:
      # The float32 reciprocal 1/decay_steps as an exact integer mantissa
      # times a power of two.
      recip = np.float32(1.0) / np.float32(self._decay_steps)
      frac, exp = np.frexp(recip)
      self._recip_mantissa = int(frac * 2**24)
      self._recip_scale = np.float32(2.0**(int(exp) - 24))
      assert np.float32(self._recip_mantissa) * self._recip_scale == recip
    if self.num_warmup_steps:
      self._warmup_scale = self._init_lr * (
          np.float32(1.0) / np.float32(self.num_warmup_steps))

  def __call__(self, step):
    """The float32 learning rate of the update at global step `step`."""
    with tf.name_scope("learning_rate"):
      step = tf.cast(tf.convert_to_tensor(step), tf.int64)
      if self._recip_mantissa is None:
        # continuous_warmup with warmup >= total: nothing left to decay over.
        decayed = tf.zeros_like(tf.cast(step, tf.float32))
      else:
        decay_step = tf.minimum(
            tf.maximum(step - self._decay_start, 0), self._decay_steps)
        # float32(decay_step) * float32(1 / decay_steps) rounded once, as an
        # int64 product converted to float32 times a power of two, so that no
        # compiler (XLA/LLVM) can fuse it with the subtraction below into an
        # FMA, which would change the last bit.
        steps_f32 = tf.cast(tf.cast(decay_step, tf.float32), tf.int64)
        fraction = (tf.cast(steps_f32 * self._recip_mantissa, tf.float32) *
                    self._recip_scale)
        decayed = self._init_lr * (1.0 - fraction)
      if not self.num_warmup_steps:
        return decayed
      warmup = self._warmup_scale * tf.cast(step, tf.float32)
      return tf.where(step < self.num_warmup_steps, warmup, decayed)

  def get_config(self):
    return {
        "init_lr": self.init_lr,
        "num_train_steps": self.num_train_steps,
        "num_warmup_steps": self.num_warmup_steps,
        "continuous_warmup": self.continuous_warmup,
    }


def _densify(grad, shape):
  """Dense float32 gradient; IndexedSlices rows are summed (as the original did)."""
  if isinstance(grad, tf.IndexedSlices):
    dense = tf.math.unsorted_segment_sum(
        grad.values, grad.indices, num_segments=shape[0])
    grad = tf.reshape(dense, shape)
  return tf.cast(grad, tf.float32)


class AdamWeightDecayOptimizer(tf.Module):
  """A basic Adam optimizer that includes "correct" L2 weight decay.

  The original update, per variable `p` with gradient `g` (all float32):

      m <- beta_1 * m + (1 - beta_1) * g
      v <- beta_2 * v + (1 - beta_2) * g^2
      u  = m / (sqrt(v) + epsilon)
      u += weight_decay_rate * p     (unless the name matches an exclusion)
      p <- p - lr * u

  with no bias correction and no step counter; `exclude_from_weight_decay`
  holds regular expressions searched in the original variable names.
  `tf.IndexedSlices` gradients are densified, so every row of an embedding
  table (and its m/v) is updated every step, like the original.

  `learning_rate` may be a callable `schedule(step)` evaluated at the
  `global_step` given to `apply_gradients`. `bias_correction=True` (opt-in
  fix) divides m and v by `1 - beta^t`, `t = global_step + 1`. `jit_update`
  compiles each variable's update with XLA (about 4x faster on CPU, see
  bench/bench_optimizer.py); XLA may form FMAs, so values can differ in the
  last bit: off by default.
  """

  def __init__(self,
               learning_rate,
               weight_decay_rate=0.0,
               beta_1=0.9,
               beta_2=0.999,
               epsilon=1e-6,
               exclude_from_weight_decay=None,
               name="AdamWeightDecayOptimizer",
               bias_correction=False,
               jit_update=False):
    super().__init__(name=name)
    self.learning_rate = learning_rate
    self.weight_decay_rate = weight_decay_rate
    self.beta_1 = beta_1
    self.beta_2 = beta_2
    self.epsilon = epsilon
    self.exclude_from_weight_decay = exclude_from_weight_decay
    self.bias_correction = bool(bias_correction)
    self.jit_update = bool(jit_update)
    self._compiled = {}
    self._slots = collections.OrderedDict()

  def build(self, named_variables):
    """Creates the float32 zero slots `<name>/adam_m` and `<name>/adam_v` of
    a mapping name -> variable (names already built are left alone). Call
    under the distribution strategy's scope to mirror them like the
    variables."""
    for name, var in named_variables.items():
      name = self._get_variable_name(name)
      for suffix in ("adam_m", "adam_v"):
        slot_name = "%s/%s" % (name, suffix)
        if slot_name not in self._slots:
          self._slots[slot_name] = tf.Variable(
              tf.zeros(var.shape, tf.float32), trainable=False,
              name=slot_name, dtype=tf.float32)

  def named_slots(self):
    """OrderedDict `<name>/adam_m`, `<name>/adam_v` -> slot variable."""
    return collections.OrderedDict(self._slots)

  def apply_gradients(self, grads, named_variables=None, learning_rate=None,
                      global_step=None, name=None):
    """Applies one update to every variable that has a gradient.

      apply_gradients(grads, named_variables, global_step=step)  # this project
      apply_gradients(zip(grads, tvars), global_step)            # the original

    `grads`: a list aligned with `named_variables` or a mapping name ->
    gradient (None gradients are skipped). `global_step`: the pre-increment
    step (the caller aggregates and clips the gradients and increments it).
    Eager, in `tf.function` and under any `tf.distribute` context. Returns the
    grouped update op in TF1 graph code (the original's train op), else None.
    """
    del name  # The original signature's; unused.
    if not isinstance(named_variables, collections.abc.Mapping):
      # The original form: (grad, var) pairs [, global_step].
      if named_variables is not None:
        if global_step is not None:
          raise ValueError("global_step given twice to apply_gradients.")
        global_step = named_variables
      pairs = list(grads)
      if not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs):
        raise TypeError(
            "apply_gradients takes (grads, named_variables) or an iterable of "
            "(gradient, variable) pairs such as zip(grads, tvars).")
      named_variables = collections.OrderedDict(
          (modeling.original_variable_name(var), var) for _, var in pairs)
      grads = [grad for grad, _ in pairs]
    names = list(named_variables.keys())
    if isinstance(grads, collections.abc.Mapping):
      grads = [grads.get(n) for n in names]
    else:
      grads = list(grads)
      if len(grads) != len(names):
        raise ValueError("Got %d gradients for %d variables." %
                         (len(grads), len(names)))
    keep = [i for i, g in enumerate(grads) if g is not None]
    if not keep:
      raise ValueError("No gradients provided for any variable: %s" % names)
    targets = [(self._get_variable_name(names[i]), named_variables[names[i]])
               for i in keep]
    grads = [grads[i] for i in keep]
    missing = collections.OrderedDict(
        (n, v) for n, v in targets if n + "/adam_m" not in self._slots)
    if missing:
      with tf.init_scope():
        self.build(missing)

    lr = self._learning_rate_tensor(learning_rate, global_step)
    step = tf.zeros([], tf.float32)  # Only bias correction reads it.
    if self.bias_correction:
      if global_step is None:
        raise ValueError(
            "%s: bias correction needs the global_step passed to apply_gradients." %
            self.name)
      step = tf.cast(tf.convert_to_tensor(global_step), tf.float32)

    def distributed_apply(strategy, grads, lr, step):
      return self._distributed_apply(strategy, targets, grads, lr, step)

    if (tf.distribute.has_strategy() and
        not tf.distribute.in_cross_replica_context()):
      return tf.distribute.get_replica_context().merge_call(
          distributed_apply, args=(grads, lr, step))
    # Distributed variables used outside their strategy's scope: enter it.
    var_strategy = getattr(targets[0][1], "distribute_strategy", None)
    if var_strategy is not None and not tf.distribute.has_strategy():
      with var_strategy.scope():
        return distributed_apply(var_strategy, grads, lr, step)
    return distributed_apply(tf.distribute.get_strategy(), grads, lr, step)

  def _distributed_apply(self, strategy, targets, grads, lr, step):
    """One `strategy.extended.update` per variable (cross-replica context)."""
    updates = []
    for (name, var), grad in zip(targets, grads):
      m = self._slots[name + "/adam_m"]
      v = self._slots[name + "/adam_v"]
      updates.append(strategy.extended.update(
          var, self._make_update_fn(name), args=(grad, m, v, lr, step),
          group=True))
    if not modeling.in_tf1_graph():
      return None  # Eager, or inside tf.function (automatic control deps).
    return tf.group(*updates)

  def _make_update_fn(self, name):
    """fn(var, grad, m, v, lr, step) for `strategy.extended.update`."""
    decay = self._do_use_weight_decay(name)
    adapt = self._do_layer_adaptation(name)
    next_values = lambda p, g, m, v, lr, step: self._next_values(
        p, g, m, v, lr, step, decay, adapt)
    if self.jit_update:
      if (decay, adapt) not in self._compiled:
        # Values in, values out: one fused XLA kernel per variable shape.
        self._compiled[decay, adapt] = tf.function(
            next_values, jit_compile=True, autograph=False)
      next_values = self._compiled[decay, adapt]

    def update_fn(var, grad, m, v, lr, step):
      next_param, next_m, next_v = next_values(
          var.read_value(), _densify(grad, var.shape), m.read_value(),
          v.read_value(), tf.cast(lr, tf.float32), step)
      return tf.group(var.assign(next_param), m.assign(next_m),
                      v.assign(next_v))
    return update_fn

  def _next_values(self, param, grad, m, v, lr, step, decay, adapt):
    """(next_param, next_m, next_v) from the pre-update values (float32)."""
    next_m = self.beta_1 * m + (1.0 - self.beta_1) * grad
    next_v = self.beta_2 * v + (1.0 - self.beta_2) * tf.square(grad)
    m_hat, v_hat = next_m, next_v
    if self.bias_correction:
      t = step + 1.0
      m_hat = next_m / (1.0 - tf.pow(np.float32(self.beta_1), t))
      v_hat = next_v / (1.0 - tf.pow(np.float32(self.beta_2), t))
    update = m_hat / (tf.sqrt(v_hat) + self.epsilon)
    if decay:
      update += self.weight_decay_rate * param
    if adapt:
      update = _trust_ratio(param, update) * update
    next_param = param - lr * update
    return next_param, next_m, next_v

  def _learning_rate_tensor(self, learning_rate, global_step):
    lr = self.learning_rate if learning_rate is None else learning_rate
    if callable(lr):
      if global_step is None:
        raise ValueError(
            "%s: the learning rate is a schedule; pass global_step to "
            "apply_gradients." % self.name)
      lr = lr(global_step)
    return tf.cast(tf.convert_to_tensor(lr), tf.float32)

  def _do_use_weight_decay(self, param_name):
    """Whether to use L2 weight decay for `param_name` (original rule)."""
    if not self.weight_decay_rate:
      return False
    return not _matches_any(self.exclude_from_weight_decay, param_name)

  def _do_layer_adaptation(self, param_name):
    del param_name  # Adam has no layer-wise scaling.
    return False

  @staticmethod
  def _get_variable_name(param_name):
    """Strips a trailing `:N` from a variable name."""
    return re.sub(r":\d+$", "", param_name)


class LAMBOptimizer(AdamWeightDecayOptimizer):
  """LAMB (You et al., 2019): Adam moments with a layer-wise trust ratio.

  Per variable `p` (one "layer" = one variable):

      m, v as in Adam (bias-corrected unless bias_correction=False)
      u  = m / (sqrt(v) + epsilon) [+ weight_decay_rate * p]
      r  = ||p|| / ||u||   (r = 1 if either norm is 0)
      p <- p - lr * r * u

  Variables matching `exclude_from_layer_adaptation` (default: the weight
  decay exclusions, i.e. LayerNorm parameters and biases) use r = 1. The
  slots have Adam's names, so checkpoints keep the original layout.
  """

  def __init__(self, learning_rate, name="LAMBOptimizer", bias_correction=True,
               exclude_from_layer_adaptation=None, **kwargs):
    """Takes AdamWeightDecayOptimizer's arguments (by keyword)."""
    super().__init__(learning_rate, name=name,
                     bias_correction=bias_correction, **kwargs)
    if exclude_from_layer_adaptation is None:
      exclude_from_layer_adaptation = self.exclude_from_weight_decay
    self.exclude_from_layer_adaptation = exclude_from_layer_adaptation

  def _do_layer_adaptation(self, param_name):
    return not _matches_any(self.exclude_from_layer_adaptation, param_name)


def _matches_any(patterns, name):
  return any(re.search(r, name) is not None for r in patterns or ())


def _trust_ratio(param, update):
  """||param|| / ||update||, or 1 when either norm is 0."""
  w_norm = tf.norm(param)
  u_norm = tf.norm(update)
  return tf.where(tf.logical_and(w_norm > 0.0, u_norm > 0.0),
                  w_norm / tf.where(u_norm > 0.0, u_norm, 1.0), 1.0)


def _graph_train_op(loss, optimizer):
  """The original TF1 train op: gradients of all trainable variables, clipped
  by global norm 1.0, the update at the pre-increment step, step + 1."""
  global_step = tf.compat.v1.train.get_or_create_global_step()
  tvars = tf.compat.v1.trainable_variables()
  grads = tf.gradients(loss, tvars)
  (grads, _) = tf.clip_by_global_norm(grads, clip_norm=1.0)
  train_op = optimizer.apply_gradients(zip(grads, tvars), global_step)
  new_global_step = global_step + 1
  return tf.group(train_op, [global_step.assign(new_global_step)])


def create_optimizer(loss, init_lr, num_train_steps, num_warmup_steps, use_tpu,
                     optimizer="adamw", weight_decay_rate=0.01,
                     bias_correction=None, continuous_warmup=False,
                     jit_update=False):
  """Creates the original optimizer and schedule: `(optimizer, schedule)`,
  or in TF1-style graph code with a `loss` tensor the original's train op.

  `optimizer` is "adamw" (the original) or "lamb"; `bias_correction` None
  keeps each one's default (AdamW off, as the original; LAMB on).
  """
  del use_tpu
  schedule = BertSchedule(init_lr, num_train_steps, num_warmup_steps,
                          continuous_warmup=continuous_warmup)
  kwargs = dict(
      learning_rate=schedule,
      weight_decay_rate=weight_decay_rate,
      beta_1=0.9,
      beta_2=0.999,
      epsilon=1e-6,
      exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"],
      jit_update=jit_update)
  if bias_correction is not None:
    kwargs["bias_correction"] = bool(bias_correction)
  name = (optimizer or "adamw").lower()
  if name == "adamw":
    opt = AdamWeightDecayOptimizer(**kwargs)
  elif name == "lamb":
    opt = LAMBOptimizer(**kwargs)
  else:
    raise ValueError("Unknown optimizer %r: use 'adamw' (the original) or 'lamb'." %
                     (optimizer,))
  if loss is not None and modeling.in_tf1_graph():
    return _graph_train_op(loss, opt)
  return opt, schedule
