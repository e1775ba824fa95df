"""Threads, devices and kernels of a benchmark and of its children, set before any framework
is imported (the frameworks read them at import).

The kernel policy has one home, avloc: :func:`set_device` calls :func:`avloc.runtime.configure`
as ``avloc train`` does, and :func:`child_onednn_env` hands a child process
:func:`avloc.runtime.configure.child_environment`.
"""

from __future__ import annotations

import os


def set_threads(threads: int) -> None:
    """Intra-op threads of torch, TensorFlow and (for 1) JAX/XLA; 0 leaves the defaults."""
    if threads <= 0:
        return
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ[name] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        extra = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        if extra not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {extra}".strip()


#: The kernel variables the user exported (kept everywhere); avloc's rule sets the others.
EXPORTED_KERNEL_VARIABLES = tuple(
    name for name in ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS") if name in os.environ
)


def child_onednn_env(env: dict[str, str], backend: str, width: int) -> dict[str, str]:
    """``env`` for a child process of ``backend`` whose networks are ``width`` wide, with the
    kernels ``avloc train`` chooses (:func:`avloc.runtime.configure.child_environment`)."""
    from avloc.runtime.configure import child_environment

    return child_environment(env, backend, width, EXPORTED_KERNEL_VARIABLES)


def set_device(device: str, width: int | None = None) -> None:
    """``cpu`` hides every GPU from every framework; ``cuda`` keeps them, memory on demand.

    ``width`` (the networks' narrowest first-stage width) configures the runtime now, as
    ``avloc train`` does before it builds anything (:func:`avloc.runtime.configure`), so plain
    torch measured before any avloc network is built runs the same kernels.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if width is not None:
        from avloc.runtime import configure

        configure(widths=[width])
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        os.environ["JAX_PLATFORMS"] = "cpu"
    else:  # several frameworks share one GPU: none may grab all of its memory at start
        os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
