"""One training run for tests/test_distribute.py, in its own process (torchrun starts one each).

    python tests/distribute_worker.py --shards DIR --run-dir DIR [--devices N]
        [--negatives global|local] [--frozen-batch-norm] [--stop-after-backup] [--set K=V ...]

Trains the quickstart recipe shrunk to a tiny network with ``avloc.jobs.train.train`` (the real
path: engine set-up, loader, ``fit``, backups, logs), for the steps the ``--set`` options give.
``--frozen-batch-norm`` builds every batch-norm layer non-trainable, i.e. in inference mode, so
that a run's numbers do not depend on how the batch is split over devices.
``--stop-after-backup`` ends the process (exit status 3, no clean-up) right after the writer's
first backup, as a kill would.
TensorFlow: set ``AVLOC_TEST_CPU_DEVICES=N`` to split the CPU into N logical devices before
TensorFlow starts.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TINY = [
    "model.embed_dim=8",
    "model.visual.width=4",
    'model.visual.pretrained=""',  # random init: no trunk file in tests
    "model.visual.blocks=[1, 1, 1, 1]",
    "model.audio.width=4",
    "model.audio.blocks=[1, 1, 1, 1]",
    "data.image_size=32",
    "data.train_resize=36",
    "data.clip_seconds=1.0",
    "data.workers=1",
    "train.batch_size=8",
    "train.epochs=1",
    "train.steps_per_epoch=1",
    "train.learning_rate=0.001",
    "train.tensorboard=false",
    "eval.calibration_samples=4",
]


def split_cpu_for_tensorflow() -> None:
    count = int(os.environ.get("AVLOC_TEST_CPU_DEVICES", "0") or 0)
    if count > 1:
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )


def freeze_batch_norm(build_network):
    def build(model_config, data_config):
        import keras

        net = build_network(model_config, data_config)
        for layer in net._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        return net

    return build


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--negatives", default="global")
    parser.add_argument("--frozen-batch-norm", action="store_true")
    parser.add_argument("--stop-after-backup", action="store_true")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()

    if os.environ.get("KERAS_BACKEND") == "tensorflow":
        split_cpu_for_tensorflow()
    import avloc.training.build as building
    from avloc.config import load_recipe
    from avloc.training.callbacks import ResumableCheckpoint

    if args.frozen_batch_norm:
        building.build_network = freeze_batch_norm(building.build_network)
    if args.stop_after_backup:
        save_backup = ResumableCheckpoint.save_backup

        def save_then_stop(self, epoch, step):
            save_backup(self, epoch, step)
            os._exit(3)

        ResumableCheckpoint.save_backup = save_then_stop

    sets = [
        f"data.train={args.shards}",
        *TINY,
        f"distribute.devices={args.devices}",
        f'distribute.negatives="{args.negatives}"',
        *args.sets,
    ]
    recipe = load_recipe(ROOT / "recipes" / "quickstart.toml", sets)
    from avloc.jobs.train import train

    train(recipe, args.run_dir, verbose=0)


if __name__ == "__main__":
    main()
