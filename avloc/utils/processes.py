"""Worker processes that do not outlive the process that started them.

A pool's workers normally learn of their parent's end from the pool itself; after ``kill -9`` of
the parent nobody tells them, and a worker blocked on a pipe waits for ever (parent 1). Pools
started by avloc pass :func:`exit_with_parent` as their initializer: a daemon thread in the
worker checks every :data:`POLL_SECONDS` whether the parent is still its parent and ends the
worker at once (``os._exit``) when it is not.
"""

from __future__ import annotations

import os
import threading
import time

#: How often a worker looks for its parent, seconds.
POLL_SECONDS = 0.5


def exit_with_parent(parent_pid: int) -> None:
    """Pool initializer: end this worker when process ``parent_pid`` is gone."""

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(POLL_SECONDS)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
