import numpy as np
import pytest

from tinyvec import Index


def test_search_returns_the_closest_first() -> None:
    index = Index(dim=3)
    index.add("x", np.array([1.0, 0.0, 0.0]))
    index.add("y", np.array([0.0, 1.0, 0.0]))
    assert index.search(np.array([0.9, 0.1, 0.0]), k=1)[0][0] == "x"


def test_adding_twice_is_a_no_op() -> None:
    index = Index(dim=2)
    index.add("a", np.array([1.0, 1.0]))
    index.add("a", np.array([1.0, 1.0]))
    assert len(index) == 1


def test_wrong_dimension_is_refused() -> None:
    with pytest.raises(ValueError, match="3 dimensions"):
        Index(dim=3).add("a", np.array([1.0, 0.0]))
