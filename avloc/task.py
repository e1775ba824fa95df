"""The training task: network + composite loss as a ``keras.Model`` (one code path, any backend).

``LocalizationTask(net, terms, silence_spectrogram)`` wraps an
:class:`~avloc.models.avnet.AudioVisualNet`. Its ``call`` takes the loader's batch

- ``image`` ``(B, H, W, 3)``, ``audio`` ``(B, F, T, 1)`` and, when a term needs it,
  ``noise`` ``(B, F, T, 1)`` (one noise spectrogram per image); or, with
  ``data.preprocess_on_device``, the stored uint8 frames with their crop draws, int16 PCM and
  noise seeds, turned into the same inputs inside the step by ``preprocess``
  (:class:`avloc.inputs.training.DevicePreprocessing`); which form a task takes is fixed when
  it is built (``preprocess`` given or not), never guessed from a batch,

runs the audio encoder once on ``[audio; noise; silence]`` and returns the network outputs
``v_map``, ``a_emb`` plus ``a_noise`` ``(B, D)`` and ``a_silence`` ``(1, D)`` when needed.

``compute_loss`` reads ``y_pred`` (never a second forward pass), sums the weighted terms, and
updates one ``keras.metrics.Mean`` per term, so the progress bar, CSV and TensorBoard logs show
``loss_<term>`` next to the total ``loss``. On torch, ``train_step`` is
:func:`avloc.runtime.torch_step.train_step`: the trackers are updated in place on the device and
the step's logs reach the host every ``log_every`` steps (the recipe's
``train.log_every_steps``); the other backends keep Keras' step.

Warm-up: the task holds a non-trainable ``epoch`` variable (the 0-based index of the running
epoch), set by the :class:`EpochCounter` callback that ``avloc.jobs.train`` installs. A term whose
``start_epoch`` is later than ``epoch`` is multiplied by 0 (a factor computed with ``keras.ops``
inside the step, so compiled steps see the change); its ``loss_<term>`` then logs 0, and the
logged ``loss`` is always the weighted sum of the logged terms. Without the callback (a bare
``fit``) ``epoch`` stays 0.

Batch norm sees real, noise and silence spectrograms in one batch **[choice]**: one forward pass
of the audio encoder per step.

Data parallel (the ``placement`` the task is built with, :mod:`avloc.runtime.distribute`; on one
device they change nothing): ``batch`` (given to every term: where global negatives are
gathered from), ``loss_scale`` (the
factor an engine that sums per-device gradients needs: 1/devices under ``tf.distribute``; the
logged terms stay unscaled), ``loss_groups`` (JAX with per-device negatives: the one global
program evaluates every term on each device's rows and averages) and ``outputs_engine`` (torch:
the training forward pass runs through ``DistributedDataParallel``).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from avloc.inputs.geometry import (
    FLIP_KEY,
    MATRICES_KEY,
    SCALE_KEY,
    VIEW_KEY,
    apply_transform_ops,
)
from avloc.inputs.training import DevicePreprocessing
from avloc.losses import LossTerm
from avloc.losses.equivariance import TRANSFORMED_MAP_KEY
from avloc.runtime.placement import Placement
from avloc.runtime.scalars import TORCH

if TORCH:
    from avloc.runtime import torch_step

#: The extra inputs a loss term may ``need`` that the task makes (besides ``v_map``, ``a_emb``).
FEEDS = frozenset({"silence", "noise", "equivariance"})
#: The draw's arrays a batch carries to the equivariance term, passed on as outputs
DRAW_KEYS = (MATRICES_KEY, FLIP_KEY, SCALE_KEY)


class LocalizationTask(keras.Model):
    def __init__(
        self,
        net: keras.Model,
        terms: dict[str, LossTerm],
        silence_spectrogram: np.ndarray | None = None,
        placement: Placement | None = None,
        preprocess: DevicePreprocessing | None = None,
        log_every: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.net = net
        #: Turns a batch of the loader's on-device form into the inputs (None: never given one).
        self.preprocess = preprocess
        self.terms = dict(terms)
        placement = placement if placement is not None else Placement()
        batch = placement.batch_view()
        for term in self.terms.values():
            term.batch = batch
        #: Multiplies the returned total (not the logged terms): see the module docstring.
        self.loss_scale = placement.loss_scale
        #: Equal row groups each term is evaluated on separately, then averaged (1 = the batch).
        self.loss_groups = placement.loss_groups
        #: ``f(inputs, training) -> outputs`` that replaces the training forward pass, or None
        #: (set by a placement's ``attach`` after a resume: torch's DDP).
        self.outputs_engine = None
        needs = set().union(*(term.needs for term in self.terms.values()))
        self.needs_silence = "silence" in needs
        self.needs_noise = "noise" in needs
        self.needs_equivariance = "equivariance" in needs
        #: scale -> static ``(h, w)`` of the transformed images' map (filled when traced)
        self.transformed_map_sizes: dict[float, tuple[int, int]] = {}
        if self.needs_silence and silence_spectrogram is None:
            raise ValueError("a loss term needs silence but no silence spectrogram was given")
        self._silence = (
            None
            if silence_spectrogram is None
            else np.asarray(silence_spectrogram, "float32")[None, ..., None]
        )
        self.term_trackers = [keras.metrics.Mean(name=f"loss_{name}") for name in self.terms]
        #: torch: the step's logs as host floats, pulled every ``log_every`` steps
        self.host_logs = torch_step.HostLogs(log_every) if TORCH else None
        self._silence_on_device = None  # torch: the silence input, made once per device
        #: torch: the recorded step (:meth:`record_steps`), or None: the step runs eagerly
        self.step_graph = None
        #: 0-based index of the running epoch (see EpochCounter); saved with the task's weights.
        self.epoch = keras.Variable(0.0, dtype="float32", trainable=False, name="epoch")
        self.built = net.built  # the task's only own variable is the epoch counter

    def call(self, inputs, training=False):
        if training and self.outputs_engine is not None:
            return self.outputs_engine(inputs, training)
        return self.compute_outputs(inputs, training)

    def compute_outputs(self, inputs, training=False):
        """The forward pass itself (``call`` may route it through a data-parallel engine)."""
        if self.preprocess is not None:
            inputs = self.preprocess(inputs)
        image, audio = inputs["image"], inputs["audio"]
        batch = ops.shape(audio)[0]
        parts = [audio]
        if self.needs_noise:
            parts.append(inputs["noise"])
        if self.needs_silence:
            parts.append(self.silence_input(audio))
        spectrograms = ops.concatenate(parts, axis=0) if len(parts) > 1 else audio
        a_all = self.net.encode_audio(spectrograms, training=training)
        outputs = {
            "v_map": self.net.encode_image(image, training=training),
            "a_emb": a_all[:batch],
        }
        offset = batch
        if self.needs_noise:
            outputs["a_noise"] = a_all[offset : offset + batch]
            offset = offset + batch
        if self.needs_silence:
            outputs["a_silence"] = a_all[offset : offset + 1]
        if self.needs_equivariance:
            outputs[TRANSFORMED_MAP_KEY] = self.transformed_map(image, inputs, training)
            outputs.update({key: inputs[key] for key in DRAW_KEYS})
        return outputs

    def silence_input(self, audio):
        """The silence spectrogram ``(1, F, T, 1)`` in ``audio``'s dtype; on torch made once per
        device and dtype (a tensor from host data each step is a host-to-device copy on a GPU)."""
        if not TORCH:
            return ops.cast(ops.convert_to_tensor(self._silence), audio.dtype)
        held = self._silence_on_device
        if held is None or held.device != audio.device or held.dtype != audio.dtype:
            held = self._silence_on_device = ops.cast(
                ops.convert_to_tensor(self._silence), audio.dtype
            ).to(audio.device)
        return held

    if TORCH:  # Keras' own step on the other backends (JAX's takes the state as well)

        def train_step(self, data):
            return torch_step.train_step(self, data)

    def record_steps(self) -> None:
        """Torch: record the training step once per batch signature and replay it
        (:mod:`avloc.runtime.step_graph`; ``train.step_graph``)."""
        from avloc.runtime.step_graph import StepGraph

        self.step_graph = StepGraph(
            lambda batch: torch_step.optimizer_step(self, batch),
            lambda: self.zero_grad(set_to_none=True),
            lambda: [
                v.value
                for v in (*self.variables, *self.optimizer.variables, *self.metrics_variables)
            ],
        )

    def train_on_batch(self, *args, **kwargs):
        if self.host_logs is not None:  # its caller reads this step's logs
            self.host_logs.pull_next()
        return super().train_on_batch(*args, **kwargs)

    def transformed_map(self, image, inputs, training=False):
        """``v(T(x))``: the visual map of the batch's images under its draw of SSL-TIE's ``T``
        (:func:`avloc.inputs.geometry.apply_transform_ops`; the images shrink to
        ``int(size * scale)`` px). The side comes from the shape of the batch's ``VIEW_KEY``
        array, a host value: one size per batch, no branch. Where that shape is not fixed (a
        compiled TensorFlow step, after its second shape) the batch's scale picks one of the
        two static sizes (``keras.ops.cond``): the step holds both, so its map's spatial size is
        static only within each branch (:attr:`transformed_map_sizes` records it)."""
        size = int(image.shape[1])

        def view(scale: float):
            side = int(size * scale)
            moved = apply_transform_ops(
                image, inputs[MATRICES_KEY], inputs[FLIP_KEY], (side, side), input_size=size
            )
            v_map = self.net.encode_image(ops.cast(moved, image.dtype), training=training)
            self.transformed_map_sizes[scale] = (int(v_map.shape[1]), int(v_map.shape[2]))
            return v_map

        side = inputs[VIEW_KEY].shape[1] if VIEW_KEY in inputs else None
        if side is not None:
            return view(0.5 if int(side) < size else 1.0)  # SSL-TIE's two scales
        half = inputs[SCALE_KEY][0] < 0.75
        return ops.cond(half, lambda: view(0.5), lambda: view(1.0))

    def loss_terms(self, y_pred) -> dict:
        """Unweighted value of every term, by name."""
        if self.loss_groups == 1:
            return self.term_values(y_pred)
        groups = [row_group(y_pred, g, self.loss_groups) for g in range(self.loss_groups)]
        values = [self.term_values(group) for group in groups]
        return {name: ops.mean(ops.stack([v[name] for v in values])) for name in self.terms}

    def term_values(self, outputs) -> dict:
        """Every term on ``outputs``; with SSL-TIE's transformed view, every term but the
        equivariance term is the mean over both views, ``0.5 * (L(x) + L(T(x)))`` (SSL-TIE's
        ``L_cl`` on both; the SSL-SaN terms follow the contrastive term there, avloc's choice)."""
        if TRANSFORMED_MAP_KEY not in outputs:
            return {name: term(outputs) for name, term in self.terms.items()}
        transformed = outputs[TRANSFORMED_MAP_KEY]
        if None not in tuple(transformed.shape[1:3]):  # eager: the map's own shape
            return self.two_view_values(outputs, transformed)
        # a compiled step: each branch sees the transformed map at its static size
        names = list(self.terms)

        def branch(scale: float):
            h, w = self.transformed_map_sizes[scale]
            v_map_t = ops.reshape(transformed, (-1, h, w, int(transformed.shape[-1])))
            values = self.two_view_values(outputs, v_map_t)
            return [values[name] for name in names]

        half = outputs[SCALE_KEY][0] < 0.75
        return dict(
            zip(names, ops.cond(half, lambda: branch(0.5), lambda: branch(1.0)), strict=True)
        )

    def two_view_values(self, outputs, v_map_t) -> dict:
        outputs = {**outputs, TRANSFORMED_MAP_KEY: v_map_t}
        second = {**outputs, "v_map": v_map_t}
        return {
            name: term(outputs) if "equivariance" in term.needs
            else 0.5 * (term(outputs) + term(second))
            for name, term in self.terms.items()
        }  # fmt: skip

    def active(self, term: LossTerm, dtype="float32"):
        """1 once ``term.start_epoch`` is reached, else 0 (``None`` for always-on terms)."""
        if term.start_epoch <= 0:
            return None
        return ops.cast(ops.greater_equal(self.epoch, float(term.start_epoch)), dtype)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total = 0.0
        for tracker, (name, value) in zip(
            self.term_trackers, self.loss_terms(y_pred).items(), strict=True
        ):
            term = self.terms[name]
            gate = self.active(term, value.dtype)
            if gate is not None:
                value = value * gate
            if TORCH:
                torch_step.add_to_mean(tracker, value)
            else:
                tracker.update_state(value)
            total = total + term.weight * value
        if self.loss_scale != 1.0:
            total = total * self.loss_scale
        return total


def row_group(outputs: dict, index: int, groups: int) -> dict:
    """Rows ``index``-th of ``groups`` equal parts of every per-row output (``a_silence`` kept;
    SSL-TIE's draw splits by rows too)."""
    rows = ops.shape(outputs["a_emb"])[0] // groups
    return {
        key: value if key == "a_silence" else value[index * rows : (index + 1) * rows]
        for key, value in outputs.items()
    }


class EpochCounter(keras.callbacks.Callback):
    """Keeps ``task.epoch`` equal to the 0-based index of the epoch being trained.

    ``fit(initial_epoch=e)`` (a resumed run) starts at ``e``, so warm-ups resume correctly.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.model.epoch.assign(float(epoch))
