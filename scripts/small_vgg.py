"""small_vgg.py - a small self-describing VGG11 safetensors file for tests and benchmarks of
the model repository (tests/test_repository.py, tests/test_grpc.py, bench/repository_util.py):
VGG11's convolutions full size (37 MB), a dense head of any number of classes on small inputs.
numpy and scripts/safetensors_write.py only."""
import os

import numpy as np

from safetensors_write import write_safetensors

# VGG11's convolutions as torchvision numbers them (features.N): index, in, out channels.
VGG11_CONVS = [(0, 3, 64), (3, 64, 128), (6, 128, 256), (8, 256, 256), (11, 256, 512),
               (13, 512, 512), (16, 512, 512), (18, 512, 512)]


def small_model(path, seed, classes, labels=None, input_size=32, head_scale=0.05):
    """A self-describing VGG11 (its convolutions full size, 37 MB of weights) with an
    average-pooled dense head of `classes` units on input_size x input_size inputs: seeded
    He-normal convolutions, a head of N(0, head_scale^2) weights (small enough that the
    probabilities are not saturated, so two seeds' answers tell apart on every photo), labels
    embedded when given. Loads and warms up in about a second."""
    rng = np.random.default_rng(seed)
    tensors = []
    for idx, cin, cout in VGG11_CONVS:
        tensors.append(("features.%d.weight" % idx,
                        rng.standard_normal((cout, cin, 3, 3)) * (2.0 / (cin * 9)) ** 0.5))
        tensors.append(("features.%d.bias" % idx, rng.uniform(-0.05, 0.05, cout)))
    tensors.append(("classifier.0.weight", rng.standard_normal((classes, 512)) * head_scale))
    tensors.append(("classifier.0.bias", rng.uniform(-0.1, 0.1, classes)))
    meta = {"model": "vgg11", "head_dense": str(classes), "head_pool": "avg",
            "input_size": str(input_size)}
    if labels:
        meta["labels"] = "\n".join(labels) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_safetensors(path, tensors, meta)
