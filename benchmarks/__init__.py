"""avloc's benchmarks: each script generates its inputs, prints a table and the machine it ran on.

Run from the repository root as modules, ``python3 -m benchmarks.NAME [--help]``:

- ``train_step``: training-step samples/s of the EZ-VSL ResNet-18 pair, avloc's Keras task on
  torch, TensorFlow and JAX vs plain PyTorch; ratios, achieved GFLOP/s and % of a peak estimate.
- ``profile_step``: where a training step's time goes, torch operators of the Keras task vs
  plain PyTorch (on a GPU also wall vs kernel time per step).
- ``profile_tf_step``: TensorFlow's training step by operator type, with its own kernels and
  with oneDNN.
- ``loader``: ``TrainBatches`` samples/s per worker count, threads or processes, noise off/on,
  preprocessing in the loader or on the device; ms per sample of each piece.
- ``train_loop``: ``avloc train`` end to end, samples/s under settings compared in interleaved runs.
- ``evaluation``: negative-audio evaluation samples/s, shared visual features vs one network
  pass per audio condition.
- ``localize``: ``avloc localize`` cold and warm latency and batch pairs/s, both engines.
- ``video``: heatmap videos (``avloc localize VIDEO -o heat.mp4``), frames/s against real time.
- ``prepare``: ``avloc prepare`` samples/s per worker on generated MP4s.
- ``gpu``: one GPU run of minutes (train step, data, loader, video, ``avloc train`` end to end);
  ``--dry-run`` runs the same pipeline tiny on the CPU.
- ``plain_torch``: the plain-PyTorch EZ-VSL ``train_step`` compares with; run alone, it checks
  the analytic FLOP count against ``torch.utils.flop_counter``.

Shared modules (none imports a deep-learning framework at module level, so a script can import
them before it sets the thread and device variables the frameworks read at import):
``machine`` (machine info, peak estimates), ``timing`` (interleaved rounds, medians, paired
ratios), ``report`` (tables, JSON), ``flops`` (analytic FLOPs), ``environment`` (threads,
devices; the kernel policy comes from :mod:`avloc.runtime.configure`), ``processes`` (the
repository root, child commands, persistent workers).

``train_step``, ``loader`` and ``gpu`` keep their pieces in modules named after them
(``train_step_build``, ``train_step_groups``, ``train_step_report``; ``loader_runs``,
``loader_pieces``; ``gpu_parts``, ``gpu_run``, ``gpu_markdown``).
"""
