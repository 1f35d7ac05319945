"""Large buffers of every kind, in awkward layouts, and the check that they came back exact
(tests/bridge/test_shm_*.py)."""

import os

import numpy as np

MB = 1 << 20


def values():
    """Every kind of large buffer, in awkward layouts (all >= 1 MiB)."""
    rng = np.random.default_rng(7)
    return {
        "f8": rng.random((512, 300)),
        "fortran": np.asfortranarray(rng.random((700, 300))),
        "strided": rng.random(600_000)[::3],
        "transposed": rng.integers(-9, 9, (700, 800), dtype=np.int16).T,
        "bool": rng.random(3 * MB) > 0.5,
        "complex": (rng.random(80_000) + 1j * rng.random(80_000)).astype(np.complex128),
        "u1_3d": rng.integers(0, 255, (128, 128, 80), dtype=np.uint8),
        "datetime": np.arange(200_000).astype("M8[s]"),
        "bytes": os.urandom(2 * MB),
        "bytearray": bytearray(os.urandom(MB + 3)),
        "memoryview": memoryview(os.urandom(3 * MB)),
        "strided_view": memoryview(os.urandom(4 * MB))[::2],
        "small": np.arange(5),
        "zero_d": np.array(2.5),
    }


def assert_same(out, sent):
    for key, value in sent.items():
        if isinstance(value, np.ndarray):
            assert out[key].dtype == value.dtype and out[key].shape == value.shape, key
            assert np.array_equal(out[key], value), key
        else:
            assert out[key] == bytes(value), key
