"""The optimizer of a recipe's ``[train]`` section.

``train.optimizer`` picks Adam or AdamW; ``train.weight_decay`` with ``train.weight_decay_mode``:

- ``"decoupled"`` (default): Keras' own ``weight_decay``, which shrinks every weight by
  ``lr * wd * w`` outside the gradient (AdamW style, for both names);
- ``"l2"`` (Adam only): ``wd * w`` is added to every gradient before the moment estimates, i.e.
  classic L2 regularisation coupled to Adam's scaling. This is what PyTorch's
  ``torch.optim.Adam(params, weight_decay=wd)`` does, and what FNAC trained with.

``train.lr_schedule``: ``"constant"`` (default) or ``"cosine"`` decay to 0 over the run.
"""

from __future__ import annotations

import keras
from keras import ops

from avloc.errors import RecipeError


@keras.saving.register_keras_serializable(package="avloc")
class L2Adam(keras.optimizers.Adam):
    """Adam with coupled L2 decay, ``torch.optim.Adam(weight_decay=l2)``: ``g <- g + l2 * w``."""

    def __init__(self, *args, l2: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.l2 = float(l2)

    def _backend_apply_gradients(self, grads, trainable_variables):
        # Called with unscaled, non-empty gradients, before clipping and Keras' own decay.
        if self.l2:
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
    cls = keras.optimizers.AdamW if t.optimizer == "adamw" else keras.optimizers.Adam
    return cls(rate, weight_decay=t.weight_decay or None)
