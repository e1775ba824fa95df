"""``avloc.runtime.seeding.set_random_seed`` draws what ``keras.utils.set_random_seed`` draws, and
a torch job does not import TensorFlow for it (Keras' function imports it whenever installed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras

BACKEND = keras.backend.backend()

PROBE = """
import json, random, sys
import numpy as np

def draws():
    import keras
    out = {"python": random.random(), "numpy": np.random.rand(3).tolist(),
           "keras": keras.ops.convert_to_numpy(keras.random.normal((4,))).tolist()}
    if keras.backend.backend() == "torch":
        import torch
        out["torch"] = torch.rand(2).tolist()
    return out

from avloc.runtime.seeding import set_random_seed
set_random_seed(5)
ours = draws()
tensorflow_imported = "tensorflow" in sys.modules
import keras
keras.utils.set_random_seed(5)
print(json.dumps({"ours": ours, "keras": draws(), "tensorflow_imported": tensorflow_imported}))
"""


def test_the_same_draws_as_keras_and_no_tensorflow_import_unless_it_is_the_backend():
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ours"] == result["keras"]
    assert result["tensorflow_imported"] == (BACKEND == "tensorflow")
