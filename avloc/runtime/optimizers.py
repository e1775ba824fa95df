"""The optimizer of a recipe's ``[train]`` section.

``train.optimizer`` picks Adam or AdamW; ``train.weight_decay`` with ``train.weight_decay_mode``:

- ``"decoupled"`` (default): Keras' own ``weight_decay``, which shrinks every weight by
  ``lr * wd * w`` outside the gradient (AdamW style, for both names);
- ``"l2"`` (Adam only): ``wd * w`` is added to every gradient before the moment estimates, i.e.
  classic L2 regularisation coupled to Adam's scaling. This is what PyTorch's
  ``torch.optim.Adam(params, weight_decay=wd)`` does, and what FNAC trained with.

``train.lr_schedule``: ``"constant"`` (default) or ``"cosine"`` decay to 0 over the run.

On torch, Adam's step makes no tensor from host data (:class:`HostFreeAdam`): Keras' own makes
three per step (``beta_1`` and ``beta_2`` cast to tensors, the step counter's ``+ 1``), and each
is a blocking host-to-device copy on a GPU. The arithmetic is Keras', with Python scalars.
"""

from __future__ import annotations

import keras
from keras import ops

from avloc.errors import RecipeError
from avloc.runtime.scalars import TORCH

if TORCH:  # Keras swaps its own Adam for this class on torch, but not a subclass of it
    from keras.src.backend.torch.optimizers.torch_adam import Adam as _BackendAdam
else:
    _BackendAdam = keras.optimizers.Adam


@keras.saving.register_keras_serializable(package="avloc")
class HostFreeAdam(_BackendAdam):
    """``keras.optimizers.Adam`` whose torch step uses Python scalars where Keras makes tensors
    from host numbers (same formulas; other backends: Keras' step unchanged). On torch it is
    Keras' torch Adam (one ``torch._foreach`` update over all weights), which Keras picks for
    ``keras.optimizers.Adam`` itself but not for a subclass: before, :class:`L2Adam` fell back
    to one update per weight."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if TORCH:  # Keras' ``assign_add(1)`` makes a tensor of the 1 on the host
            counter = self._iterations
            object.__setattr__(counter, "assign_add", lambda value: counter.value.add_(value))

    #: ``"torch"``: Keras' torch Adam, ``m <- b1 m + (1 - b1) g``; ``"generic"``: Keras' generic
    #: Adam, ``m <- m + (1 - b1)(g - m)`` (the same in exact arithmetic, not in float32)
    moments = "torch"

    def _parallel_update_step(self, grads, variables, learning_rate):
        if not TORCH:
            return super()._parallel_update_step(grads, variables, learning_rate)
        import torch

        keras_variables, variables = variables, [v.value for v in variables]
        dtype = variables[0].dtype
        lr = ops.cast(learning_rate, dtype)
        local_step = (self.iterations.value + 1).to(dtype)
        beta_1_power = torch.pow(self.beta_1, local_step)
        beta_2_power = torch.pow(self.beta_2, local_step)
        alpha = lr * torch.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        index = self._get_variable_index
        m_list = [self._momentums[index(v)].value for v in keras_variables]
        v_list = [self._velocities[index(v)].value for v in keras_variables]
        squares = torch._foreach_mul(grads, grads)
        if self.moments == "generic":
            torch._foreach_add_(
                m_list, torch._foreach_mul(torch._foreach_sub(grads, m_list), 1 - self.beta_1)
            )
            torch._foreach_add_(
                v_list, torch._foreach_mul(torch._foreach_sub(squares, v_list), 1 - self.beta_2)
            )
        else:
            torch._foreach_mul_(m_list, self.beta_1)
            torch._foreach_add_(m_list, grads, alpha=1 - self.beta_1)
            torch._foreach_mul_(v_list, self.beta_2)
            torch._foreach_add_(v_list, squares, alpha=1 - self.beta_2)
        if self.amsgrad:
            v_hat_list = [self._velocity_hats[index(v)].value for v in keras_variables]
            torch._foreach_maximum_(v_hat_list, v_list)
            v_list = v_hat_list
        torch._foreach_add_(
            variables,
            torch._foreach_div(
                torch._foreach_mul(m_list, alpha),
                torch._foreach_add(torch._foreach_sqrt(v_list), self.epsilon),
            ),
            alpha=-1,
        )


@keras.saving.register_keras_serializable(package="avloc")
class L2Adam(HostFreeAdam):
    """Adam with coupled L2 decay, ``torch.optim.Adam(weight_decay=l2)``: ``g <- g + l2 * w``."""

    # the update its runs trained with before it became a torch Adam (one update per weight)
    moments = "generic"

    def __init__(self, *args, l2: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.l2 = float(l2)

    def _backend_apply_gradients(self, grads, trainable_variables):
        # Called with unscaled, non-empty gradients, before clipping and Keras' own decay.
        if self.l2 and TORCH:
            pairs = zip(grads, trainable_variables, strict=True)
            grads = [g + self.l2 * v.value.to(g.dtype) for g, v in pairs]
        elif self.l2:
            grads = [
                g + ops.cast(self.l2, g.dtype) * ops.cast(v, g.dtype)
                for g, v in zip(grads, trainable_variables, strict=True)
            ]
        return super()._backend_apply_gradients(grads, trainable_variables)

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}


def learning_rate(train_config, total_steps: int | None):
    """``train.learning_rate`` as a float, or a schedule over ``total_steps`` optimizer steps.

    ``train.lr_schedule = "cosine"``: ``lr * (1 + cos(pi * step / total_steps)) / 2``, from the
    full rate at step 0 to 0 at the last step (Keras' ``CosineDecay``, alpha 0). The step is
    the optimizer's own iteration count, saved in every backup, so a resumed run continues the
    schedule where it stopped.
    """
    t = train_config
    if t.lr_schedule == "constant":
        return t.learning_rate
    if not total_steps or total_steps < 1:
        raise RecipeError("train.lr_schedule: a cosine schedule needs the run's step count")
    return keras.optimizers.schedules.CosineDecay(t.learning_rate, decay_steps=int(total_steps))


def build_optimizer(train_config, total_steps: int | None = None) -> keras.optimizers.Optimizer:
    """``[train]`` -> a Keras optimizer (see the module docstring for the decay modes)."""
    t = train_config
    rate = learning_rate(t, total_steps)
    if t.weight_decay_mode == "l2":
        if t.optimizer != "adam":
            raise RecipeError(
                'train.weight_decay_mode: "l2" needs optimizer = "adam" '
                f"(AdamW's decay is decoupled by definition; got {t.optimizer!r})"
            )
        return L2Adam(rate, l2=t.weight_decay)
    cls = keras.optimizers.AdamW if t.optimizer == "adamw" else HostFreeAdam
    return cls(rate, weight_decay=t.weight_decay or None)
