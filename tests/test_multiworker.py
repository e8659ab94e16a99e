"""Training on several machines stays on ``tf.distribute``: two local worker processes train one
model with ``MultiWorkerMirroredStrategy`` through :func:`cxrexplain.training.fit` (issue 17).

Each worker gets the same ``TF_CONFIG`` cluster (two localhost ports) with its own task index,
builds the same seeded ``cam_cnn`` on the same synthetic phantoms, and trains two epochs on
its shard of the data; the gradients are all-reduced across the workers, so both must finish
with the same trainable weights, different from the initial ones (batch normalisation's moving
statistics are each worker's own, as Keras 3 keeps them). On CPU, as two machines without GPUs.

Keras 3 (3.15.1 here) breaks ``model.fit`` under this strategy with more than one worker
(keras-team/keras#20585): it reduces a nested first batch with ``strategy.reduce`` and scalar
logs with ``axis=0``. :func:`cxrexplain.training.fit` works around both while it trains
(``cxrexplain/training/_multi_worker.py``); this test runs the library path unpatched.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

WORKER = r"""
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf

# the strategy first: it sets up the collective ops before TensorFlow runs anything
strategy = tf.distribute.MultiWorkerMirroredStrategy()

import keras
import numpy as np
import cxrexplain as cx

out = sys.argv[1]
data = cx.synthetic.generate(64, size=32, classes=("NORMAL", "PNEUMONIA"), seed=0)
keras.utils.set_random_seed(0)
model = cx.models.build("cam_cnn", input_shape=(32, 32, 1), num_classes=2, filters=(4, 8))
np.savez(out + ".initial.npz", *[w.numpy() for w in model.trainable_weights])
history = cx.training.fit(model, (data.images, data.labels), epochs=2, strategy=strategy,
                          seed=0, verbose=0, early_stopping_patience=None,
                          reduce_lr_patience=None)
np.savez(out + ".npz", *[w.numpy() for w in model.trainable_weights])
with open(out + ".json", "w") as handle:
    json.dump({"replicas": strategy.num_replicas_in_sync,
               "loss": [float(v) for v in history.history["loss"]]}, handle)
"""


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _weights(path: Path) -> list[np.ndarray]:
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def _train_two_workers(tmp_path: Path, variant: str) -> None:
    """Run the worker script in two processes of one ``TF_CONFIG`` cluster; check the weights."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": workers},
                                       "task": {"type": "worker", "index": index}})
        env["CUDA_VISIBLE_DEVICES"] = ""  # CPU, whatever the machine has
        log = (tmp_path / f"worker{index}.log").open("w")
        processes.append((subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / f"worker{index}"), variant],
            env=env, stdout=log, stderr=subprocess.STDOUT), log))
    deadline = time.monotonic() + 240
    try:
        for process, _ in processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for process, log in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    for index, (process, _) in enumerate(processes):
        lines = (tmp_path / f"worker{index}.log").read_text().splitlines()
        last = "\n".join(line[:300] for line in lines[-15:])
        assert process.returncode == 0, f"worker {index} failed:\n{last}"
    summaries = [json.loads((tmp_path / f"worker{i}.json").read_text()) for i in range(2)]
    assert [s["replicas"] for s in summaries] == [2, 2]
    assert summaries[0]["loss"] == pytest.approx(summaries[1]["loss"], abs=1e-6)
    first, second = (_weights(tmp_path / f"worker{i}.npz") for i in range(2))
    initial = _weights(tmp_path / "worker0.initial.npz")
    assert len(first) == len(second) == len(initial) > 0
    for a, b in zip(first, second, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(first, initial, strict=True))


def test_two_workers_train_one_model_through_fit(tmp_path: Path) -> None:
    _train_two_workers(tmp_path, "plain")
