import itertools
import random

import pytest

from autocompress.core.pareto import dominates, front_numbers, hypervolume, pareto_front

OBJ = ["accuracy", "latency_ms"]


def test_front_respects_senses_and_skips_incomplete_points():
    points = [
        {"accuracy": 0.90, "latency_ms": 2.0},
        {"accuracy": 0.80, "latency_ms": 1.0},
        {"accuracy": 0.70, "latency_ms": 3.0},  # dominated by both
        {"latency_ms": 0.1},  # not trained: no accuracy
    ]
    assert pareto_front(points, OBJ) == [0, 1]


def test_hypervolume_two_objectives_by_hand():
    points = [{"accuracy": 0.9, "latency_ms": 2.0}, {"accuracy": 0.8, "latency_ms": 1.0}]
    # union of [0.9 x 2] and [0.8 x 3] rectangles minus their 0.8 x 2 overlap
    assert hypervolume(points, OBJ, {"accuracy": 0.0, "latency_ms": 4.0}) == pytest.approx(2.6)


def test_hypervolume_three_objectives_matches_grid_count():
    rng = random.Random(0)
    objectives = ["latency_ms", "energy_mj", "peak_memory_kb"]
    points = [{k: rng.randint(0, 9) for k in objectives} for _ in range(12)]
    ref = {k: 10 for k in objectives}
    # Unit cells [x, x+1) dominated by some point, counted one by one.
    count = sum(
        any(all(p[k] <= c for k, c in zip(objectives, cell, strict=True)) for p in points)
        for cell in itertools.product(range(10), repeat=3)
    )
    assert hypervolume(points, objectives, ref) == pytest.approx(count)


def test_dominates_is_strict():
    assert dominates((1, 1), (1, 2))
    assert not dominates((1, 2), (1, 2))


def test_front_numbers_keys_the_front_by_trial_number():
    points = {
        7: {"accuracy": 0.9, "latency_ms": 5.0},
        3: {"accuracy": 0.8, "latency_ms": 2.0},
        5: {"accuracy": 0.7, "latency_ms": 3.0},  # dominated by 3
        9: {"accuracy": 0.9, "latency_ms": 5.0},  # a duplicate of 7: both kept
        4: {"latency_ms": 1.0},  # no accuracy: never on the front
    }
    assert front_numbers(points, ["accuracy", "latency_ms"]) == [3, 7, 9]
    assert front_numbers({}, ["accuracy"]) == []
