"""Groups of items linked by pairs (e.g. near-duplicate images): connected components."""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def connected_groups(n: int, left: np.ndarray, right: np.ndarray) -> list[np.ndarray]:
    """Positions 0..n-1 grouped by the undirected links (left[i], right[i]); only groups of two
    or more are returned, largest first, then by their smallest position."""
    if n == 0 or len(left) == 0:
        return []
    graph = coo_matrix((np.ones(len(left), np.int8), (left, right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    groups = [g for g in np.split(order, bounds) if len(g) > 1]
    return sorted(groups, key=lambda g: (-len(g), int(g[0])))
