from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from mdserve.batching import MicroBatcher
from mdserve.runtimes.base import Array

pytestmark = pytest.mark.unit


def doubling(inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
    x = inputs["x"]
    if np.isnan(x).any():
        raise ValueError("NaN in input")
    return {"y": x * 2}


async def gather(batcher: MicroBatcher, batches: Sequence[Array]) -> list[object]:
    futures = [batcher.submit({"x": b}, ["y"]) for b in batches]
    return list(await asyncio.gather(*futures, return_exceptions=True))


def test_concurrent_requests_share_one_call_and_get_their_own_rows() -> None:
    batcher = MicroBatcher(doubling)
    batches = [np.full((n, 2), float(n)) for n in (1, 2, 3)]
    results = asyncio.run(gather(batcher, batches))
    assert batcher.calls == 1
    for batch, result in zip(batches, results, strict=True):
        assert isinstance(result, dict)
        assert np.array_equal(result["y"], batch * 2)


def test_a_bad_request_fails_alone() -> None:
    batcher = MicroBatcher(doubling)
    batches = [np.ones((1, 2)), np.array([[np.nan, 1.0]]), np.zeros((1, 2))]
    results = asyncio.run(gather(batcher, batches))
    assert isinstance(results[1], ValueError)
    assert isinstance(results[0], dict) and isinstance(results[2], dict)
    assert np.array_equal(results[0]["y"], batches[0] * 2)


def test_incompatible_shapes_and_row_limit_split_batches() -> None:
    batcher = MicroBatcher(doubling, max_rows=4)
    batches = [np.ones((3, 2)), np.ones((3, 2)), np.ones((1, 5))]
    results = asyncio.run(gather(batcher, batches))
    assert batcher.calls == 3
    assert all(isinstance(r, dict) for r in results)
