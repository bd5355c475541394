# coding=utf-8
"""Functions and classes related to optimization (weight updates).

A TensorFlow 2 rebuild of the original BERT `optimization.py`:

* `BertSchedule`: the original learning-rate schedule (linear warmup, then linear
  decay to zero measured from step 0, with the jump at the end of warmup), in exactly
  the float32 arithmetic the original graph executed.
* `AdamWeightDecayOptimizer`: the original update rule (no bias correction, epsilon
  outside the square root, decoupled weight decay scaled by the learning rate, decay
  exclusions by `re.search` on the original variable names, dense updates of every
  row of the embedding tables).
* `LAMBOptimizer`: the same moments with a layer-wise trust ratio (`--optimizer=lamb`).
* `create_optimizer`: the original entry point in a TF2 form, returning
  `(optimizer, schedule)`.
* `train_step`: the per-step math every training loop uses (forward, loss, gradients,
  clip by global norm 1.0, learning rate from the pre-increment step, update, step
  increment).

Optimizers are `tf.Module`s that keep their slots in an `OrderedDict` keyed by the
original checkpoint names `<variable>/adam_m` and `<variable>/adam_v`.
"""

import collections
import re

import numpy as np
import tensorflow as tf

import modeling


def _float32(x):
  """Rounds a Python number to float32 the way a TF1 constant did."""
  return np.float32(x)


class BertSchedule(object):
  """The original learning-rate schedule, callable as `schedule(step)`.

  Original behaviour (default):
    * decay: `init_lr * (1 - min(step, num_train_steps) / num_train_steps)`
      (polynomial decay, power 1, to 0, measured from step 0);
    * warmup (only if `num_warmup_steps` is truthy): `init_lr * step /
      num_warmup_steps` while `step < num_warmup_steps` (integer comparison).
    So lr is 0 at step 0, the peak `init_lr` is never reached, and the rate jumps
    down at the end of warmup. `step` is the global step read before this step's
    increment.

  The float32 arithmetic matches what the original TF1 graph executed after
  TensorFlow's graph optimiser folded its constants: the division by a constant
  became a multiplication by its float32 reciprocal, and `init_lr * (step / warmup)`
  became `(init_lr * (1 / warmup)) * step`. This makes every value bit-identical to
  the original's, not just close.

  `continuous_warmup=True` (opt-in fix): after warmup the decay is measured from the
  end of warmup, `init_lr * (1 - min(step - warmup, total - warmup) / (total -
  warmup))`, so the peak `init_lr` is reached at `step == num_warmup_steps` and there
  is no jump.
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

    one = _float32(1.0)
    self._init_lr = _float32(self.init_lr)
    if self.continuous_warmup and self.num_warmup_steps:
      self._decay_start = self.num_warmup_steps
      self._decay_steps = self.num_train_steps - self.num_warmup_steps
    else:
      self._decay_start = 0
      self._decay_steps = self.num_train_steps
    if self._decay_steps > 0:
      # The float32 reciprocal 1/decay_steps as an exact integer mantissa and a
      # power of two: recip == mantissa * 2**exponent.
      recip = one / _float32(self._decay_steps)
      frac, exp = np.frexp(recip)
      self._recip_mantissa = int(frac * 2**24)
      self._recip_scale = _float32(2.0**(int(exp) - 24))
      assert _float32(self._recip_mantissa) * self._recip_scale == recip
    else:
      self._recip_mantissa = None
    if self.num_warmup_steps:
      self._warmup_scale = self._init_lr * (one / _float32(self.num_warmup_steps))

  def __call__(self, step):
    """Returns the float32 learning rate used by the update at global step `step`."""
    with tf.name_scope("learning_rate"):
      step = tf.cast(tf.convert_to_tensor(step), tf.int64)
      if self._recip_mantissa is None:
        # continuous_warmup with warmup >= total: nothing left to decay over.
        decayed = tf.zeros_like(tf.cast(step, tf.float32))
      else:
        decay_step = tf.minimum(
            tf.maximum(step - self._decay_start, 0), self._decay_steps)
        # fraction = float32(decay_step) * float32(1 / decay_steps), rounded once
        # to float32. It is computed as an int64 product converted to float32
        # (the conversion rounds exactly like a float32 multiply) times a power
        # of two, so that no compiler (XLA/LLVM) can fuse it with the subtraction
        # below into an FMA, which would change the last bit.
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


def _in_replica_context_of_a_strategy():
  """True inside `strategy.run` of a real (non-default) strategy."""
  return (tf.distribute.has_strategy() and
          not tf.distribute.in_cross_replica_context())


class AdamWeightDecayOptimizer(tf.Module):
  """A basic Adam optimizer that includes "correct" L2 weight decay.

  The original update, per variable `p` with gradient `g` (all float32):

      m <- beta_1 * m + (1 - beta_1) * g
      v <- beta_2 * v + (1 - beta_2) * g^2
      u  = m / (sqrt(v) + epsilon)
      u += weight_decay_rate * p     (unless the name matches an exclusion)
      p <- p - lr * u

  with no bias correction and no step counter. Gradients given as
  `tf.IndexedSlices` are densified, so every row of an embedding table (and its
  m/v) is updated every step, exactly like the original.

  `bias_correction=True` (opt-in fix) divides m and v by `1 - beta^t`, where
  `t = global_step + 1` and `global_step` is the pre-increment step passed to
  `apply_gradients` (so the first update uses t = 1).
  """

  _SLOT_SUFFIXES = ("adam_m", "adam_v")

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
    """Constructs an AdamWeightDecayOptimizer.

    Args:
      learning_rate: a float, a scalar tensor, or a callable `schedule(step)` (such
        as `BertSchedule`) evaluated at the `global_step` given to
        `apply_gradients`.
      weight_decay_rate: decoupled weight decay, multiplied by the learning rate.
      beta_1: first-moment decay.
      beta_2: second-moment decay.
      epsilon: added outside the square root of v.
      exclude_from_weight_decay: list of regular expressions; a variable whose
        original name matches any of them (`re.search`) gets no weight decay.
      name: module name.
      bias_correction: opt-in Adam bias correction (needs `global_step`).
      jit_update: compile each variable's update with XLA into one fused kernel
        (about 4x faster on CPU when the surrounding step is not compiled). XLA
        may contract a multiply and an add into an FMA, so values can differ from
        the unfused update in the last bit (~1e-7 relative); off by default so
        that the update is bit-identical to the original's.
    """
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

  # ----------------------------------------------------------------- slots

  def build(self, named_variables):
    """Creates `<name>/adam_m` and `<name>/adam_v` (float32 zeros, non-trainable).

    Call under the distribution strategy's scope so that the slots are mirrored
    like the variables. Names already built are left alone.

    Args:
      named_variables: mapping original name -> `tf.Variable`.
    """
    for name, var in named_variables.items():
      name = self._get_variable_name(name)
      for suffix in self._SLOT_SUFFIXES:
        slot_name = "%s/%s" % (name, suffix)
        if slot_name in self._slots:
          continue
        self._slots[slot_name] = tf.Variable(
            tf.zeros(var.shape, tf.float32),
            trainable=False,
            name=slot_name,
            dtype=tf.float32)

  def named_slots(self):
    """OrderedDict `<name>/adam_m`, `<name>/adam_v` -> slot variable."""
    return collections.OrderedDict(self._slots)

  # ----------------------------------------------------------------- update

  def apply_gradients(self, grads, named_variables=None, learning_rate=None,
                      global_step=None, name=None):
    """Applies one update to every variable that has a gradient.

    Two call forms:

      apply_gradients(grads, named_variables, global_step=step)  # this project
      apply_gradients(zip(grads, tvars), global_step)            # the original

    In the original form the first argument holds `(gradient, variable)`
    pairs, the second (if any) is the global step, and the variables' original
    names are read from their `.name` (`modeling.original_variable_name`).

    Works eagerly, inside `tf.function` (also with `jit_compile=True`) and under a
    `tf.distribute` strategy, in cross-replica context (one
    `strategy.extended.update` per variable) or in replica context (a single
    `merge_call`, then the same updates). Gradients must already be aggregated
    across replicas and clipped by the caller. The global step is not incremented
    (the caller does that, like the original).

    Args:
      grads: a list of gradients aligned with `named_variables.values()`, or a
        mapping name -> gradient. `None` gradients are skipped.
      named_variables: mapping original name -> `tf.Variable`.
      learning_rate: overrides the constructor's learning rate for this update.
      global_step: the pre-increment global step (int tensor/variable); needed by
        a callable learning rate and by bias correction.

      name: accepted for the original signature; unused.

    Returns:
      The grouped update op in TF1 graph code (the original's train op); None
      in TF2 code, eager or inside `tf.function` (where the updates are
      ordered by automatic control dependencies).
    """
    del name
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
      named_variables = collections.OrderedDict()
      grads = []
      for grad, var in pairs:
        named_variables[_original_name(var)] = var
        grads.append(grad)
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
    step = None
    if self._needs_step():
      if global_step is None:
        raise ValueError(
            "%s: bias correction needs the global_step passed to apply_gradients." %
            self.name)
      step = tf.cast(tf.convert_to_tensor(global_step), tf.float32)

    def distributed_apply(strategy, grads, lr, step):
      return self._distributed_apply(strategy, targets, grads, lr, step)

    if _in_replica_context_of_a_strategy():
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
      fn = self._make_update_fn(name)
      updates.append(strategy.extended.update(
          var, fn, args=(grad, m, v, lr, step), group=True))
    if not modeling.in_tf1_graph():
      return None  # Eager, or inside tf.function (automatic control deps).
    return tf.group(*updates)

  def _make_update_fn(self, name):
    """fn(var, grad, m, v, lr, step) for `strategy.extended.update`."""
    decay = self._do_use_weight_decay(name)
    adapt = self._do_layer_adaptation(name)
    if self.jit_update:
      key = (decay, adapt)
      if key not in self._compiled:
        # Values in, values out (no variables inside the compiled function):
        # one fused XLA kernel per variable shape.
        self._compiled[key] = tf.function(
            lambda p, g, m, v, lr, step: self._next_values(
                p, g, m, v, lr, step, decay, adapt),
            jit_compile=True, autograph=False)
      next_values = self._compiled[key]
    else:
      next_values = lambda p, g, m, v, lr, step: self._next_values(
          p, g, m, v, lr, step, decay, adapt)

    def update_fn(var, grad, m, v, lr, step):
      if step is None:
        step = tf.zeros([], tf.float32)
      next_param, next_m, next_v = next_values(
          var.read_value(), _densify(grad, var.shape), m.read_value(),
          v.read_value(), tf.cast(lr, tf.float32), step)
      return tf.group(var.assign(next_param), m.assign(next_m),
                      v.assign(next_v))
    return update_fn

  def _next_values(self, param, grad, m, v, lr, step, decay, adapt):
    """The per-variable update math on values (all elementwise, float32).

    Returns:
      (next_param, next_m, next_v), all computed from the pre-update values.
    """
    next_m = self.beta_1 * m + (1.0 - self.beta_1) * grad
    next_v = self.beta_2 * v + (1.0 - self.beta_2) * tf.square(grad)
    if self.bias_correction:
      t = step + 1.0
      m_hat = next_m / (1.0 - tf.pow(_float32(self.beta_1), t))
      v_hat = next_v / (1.0 - tf.pow(_float32(self.beta_2), t))
    else:
      m_hat, v_hat = next_m, next_v
    update = m_hat / (tf.sqrt(v_hat) + self.epsilon)
    if decay:
      update += self.weight_decay_rate * param
    update = self._scale_update(param, update, adapt)
    next_param = param - lr * update
    return next_param, next_m, next_v

  def _scale_update(self, param, update, adapt):
    del param, adapt  # Adam has no layer-wise scaling.
    return update

  def _needs_step(self):
    return self.bias_correction

  def _learning_rate_tensor(self, learning_rate, global_step):
    lr = self.learning_rate if learning_rate is None else learning_rate
    if callable(lr):
      if global_step is None:
        raise ValueError(
            "%s: the learning rate is a schedule; pass global_step to "
            "apply_gradients." % self.name)
      lr = lr(global_step)
    return tf.cast(tf.convert_to_tensor(lr), tf.float32)

  # ----------------------------------------------------------------- names

  def _do_use_weight_decay(self, param_name):
    """Whether to use L2 weight decay for `param_name` (original rule)."""
    if not self.weight_decay_rate:
      return False
    if self.exclude_from_weight_decay:
      for r in self.exclude_from_weight_decay:
        if re.search(r, param_name) is not None:
          return False
    return True

  def _do_layer_adaptation(self, param_name):
    del param_name
    return False

  @staticmethod
  def _get_variable_name(param_name):
    """Strips a trailing `:N` from a variable name."""
    m = re.match("^(.*):\\d+$", param_name)
    if m is not None:
      param_name = m.group(1)
    return param_name


class LAMBOptimizer(AdamWeightDecayOptimizer):
  """LAMB (You et al., 2019): Adam moments with a layer-wise trust ratio.

  Per variable `p` (one "layer" = one variable):

      m, v as in Adam (bias-corrected unless bias_correction=False)
      u  = m / (sqrt(v) + epsilon) [+ weight_decay_rate * p]
      r  = ||p|| / ||u||   (r = 1 if either norm is 0)
      p <- p - lr * r * u

  Variables whose name matches `exclude_from_layer_adaptation` (default: the same
  list as `exclude_from_weight_decay`, i.e. LayerNorm parameters and biases) use
  r = 1, i.e. a plain Adam step. Slots have the same names as Adam's
  (`<name>/adam_m`, `<name>/adam_v`), so checkpoints keep the original layout.
  """

  def __init__(self,
               learning_rate,
               weight_decay_rate=0.0,
               beta_1=0.9,
               beta_2=0.999,
               epsilon=1e-6,
               exclude_from_weight_decay=None,
               name="LAMBOptimizer",
               bias_correction=True,
               exclude_from_layer_adaptation=None,
               jit_update=False):
    super().__init__(
        learning_rate,
        weight_decay_rate=weight_decay_rate,
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=epsilon,
        exclude_from_weight_decay=exclude_from_weight_decay,
        name=name,
        bias_correction=bias_correction,
        jit_update=jit_update)
    if exclude_from_layer_adaptation is None:
      exclude_from_layer_adaptation = exclude_from_weight_decay
    self.exclude_from_layer_adaptation = exclude_from_layer_adaptation

  def _do_layer_adaptation(self, param_name):
    if self.exclude_from_layer_adaptation:
      for r in self.exclude_from_layer_adaptation:
        if re.search(r, param_name) is not None:
          return False
    return True

  def _scale_update(self, param, update, adapt):
    if not adapt:
      return update
    w_norm = tf.norm(param)
    u_norm = tf.norm(update)
    ratio = tf.where(
        tf.logical_and(w_norm > 0.0, u_norm > 0.0),
        w_norm / tf.where(u_norm > 0.0, u_norm, 1.0), 1.0)
    return ratio * update


def _original_name(var):
  """A variable's original checkpoint name (`__` in TF2 names read as `/`)."""
  name = AdamWeightDecayOptimizer._get_variable_name(var.name)
  return name.replace("__", "/")


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
  """Creates the original optimizer and schedule, TF2 form.

  In TF1-style graph code (`tensorflow.compat.v1` with v2 behaviour disabled)
  and with a `loss` tensor, it returns the original's train op instead (the
  update of `tf.trainable_variables()` and the global step's increment).

  Args:
    loss: in graph code, the loss whose train op is returned; otherwise unused
      (gradients are computed by the training loop).
    init_lr: peak learning rate.
    num_train_steps: steps over which the rate decays linearly to 0.
    num_warmup_steps: linear warmup steps (0/None: no warmup).
    use_tpu: accepted for the original signature; the TPU-specific cross-shard
      summing is the distribution strategy's business in TF2.
    optimizer: "adamw" (the original) or "lamb".
    weight_decay_rate: 0.01 like the original.
    bias_correction: None keeps each optimizer's default (AdamW: off, as the
      original; LAMB: on, as the paper); True/False forces it.
    continuous_warmup: opt-in schedule fix (see `BertSchedule`).
    jit_update: fuse each variable's update with XLA (see
      `AdamWeightDecayOptimizer`).

  Returns:
    `(optimizer, schedule)`; the optimizer's learning rate is the schedule,
    evaluated at the `global_step` given to `apply_gradients`.
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
