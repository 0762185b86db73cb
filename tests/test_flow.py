"""Min-cost assignment: hand-checked optima, capacity, and OR-Tools vs networkx."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_mz.network.flow import FlowError, assign

ENGINES = ("ortools", "networkx")


@pytest.mark.parametrize("engine", ENGINES)
def test_known_optimum(engine: str) -> None:
    # Two villages (10 and 5 people), two shelters (8 and 20 places).
    # Costs: v0->s0 1, v0->s1 4, v1->s0 2, v1->s1 3.
    # Greedy "nearest first" would put 8 of v0 in s0 (8) + 2 in s1 (8) + 5 of v1 in s1 (15) = 31;
    # the optimum is the same here, but sending v1 to s0 instead costs more: check the value.
    res = assign([10, 5], [8, 20], [0, 0, 1, 1], [0, 1, 0, 1], [1, 4, 2, 3], engine=engine)
    assert res.total_cost == pytest.approx(31.0)
    assert res.unassigned.tolist() == [0, 0]
    assert res.load.tolist() == [8, 7]


@pytest.mark.parametrize("engine", ENGINES)
def test_capacity_short_leaves_people_unassigned(engine: str) -> None:
    # 12 people, 2 reachable places for village 0, village 1 has no pair at all.
    res = assign([12, 3], [2, 100], [0], [0], [5.0], engine=engine)
    assert res.unassigned.tolist() == [10, 3]
    assert res.load.tolist() == [2, 0]
    assert res.total_cost == pytest.approx(10.0)


@pytest.mark.parametrize("engine", ENGINES)
def test_max_flow_beats_cheapness(engine: str) -> None:
    # v0 can use s0 (cheap) or s1 (dear); v1 only s0. With s0 of 1 place and s1 of 1 place,
    # the max assignment puts v1 in s0 and v0 in s1, although v0 -> s0 is cheaper.
    res = assign([1, 1], [1, 1], [0, 0, 1], [0, 1, 0], [0.0, 50.0, 10.0], engine=engine)
    assert res.unassigned.tolist() == [0, 0]
    assert res.total_cost == pytest.approx(60.0)


def test_bad_input_is_named() -> None:
    with pytest.raises(FlowError, match="negative"):
        assign([-1], [1], [0], [0], [1.0])
    with pytest.raises(FlowError, match="target index"):
        assign([1], [1], [0], [3], [1.0])
    with pytest.raises(FlowError, match="unknown engine"):
        assign([1], [1], [0], [0], [1.0], engine="glpk")  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 7),
    st.integers(1, 5),
    st.integers(0, 2**31 - 1),
)
def test_engines_agree(ni: int, nj: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    supply = rng.integers(0, 30, ni)
    capacity = rng.integers(0, 40, nj)
    mask = rng.random((ni, nj)) < 0.6
    pi, pj = np.nonzero(mask)
    cost = rng.integers(0, 500, len(pi)) / 10
    a = assign(supply, capacity, pi, pj, cost, engine="ortools")
    b = assign(supply, capacity, pi, pj, cost, engine="networkx")
    assert a.unassigned.sum() == b.unassigned.sum()
    assert a.total_cost == pytest.approx(b.total_cost)
    for r in (a, b):
        assert np.all(r.load <= capacity)
        assert np.all(r.unassigned >= 0)
        assert r.unassigned.sum() + r.load.sum() == supply.sum()
