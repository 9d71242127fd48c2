"""Exact booking limits of many small (branch, class) problems at once, compiled with numba.

For fixed ladder steps, the best accepts of one (branch, class) are a linear programme: maximise Σ gain·accept
with 0 ≤ accept ≤ demand per start day and, on every day, the rentals started on the L days up to it within the
cars there. Its matrix has consecutive ones, so it is a min-cost circulation on the timeline (nodes 0…n): an arc
d → d+1 per day carrying the cars out on day d (capped by the cars there, cost 0) and an arc per start s from its
return day back to s (capped by the demand, paying the gain).

Each problem has at most a few dozen arcs, and the optimiser solves hundreds of thousands of them, so the solver
is a plain successive-shortest-path one compiled per problem, not a general min-cost-flow library called on a big
graph of many components: every rental is first taken (its return arc saturated), which leaves each start day with
cars to send forward and each return day waiting for them; the cheapest way to send them is then found by Dijkstra
with node potentials, one augmenting path at a time. Sending a start's cars back along its own arc instead of
through the days means turning those rentals away, at their gain. All in integers (1/10,000 of a rental, cents):
the answer is exact and the same on every machine.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_INF = np.int64(1) << np.int64(62)


# Signatures given: compiled when first imported (about 2 s, once: numba caches it beside the module, then loading
# takes well under a second), not inside an optimiser run's time limit.
_ROW = "int64[::1]"
_ROWS = "int64[:, ::1]"


@njit(f"void(int64, {_ROW}, {_ROW}, {_ROW}, {_ROW}, {_ROW})", cache=True)
def _solve(length: int, cars: np.ndarray, demand: np.ndarray, gain: np.ndarray, out: np.ndarray,
           price: np.ndarray) -> None:  # pragma: no cover - compiled; tested through solve_many
    n = cars.shape[0]
    # no day short of cars even if every rental is taken: take them all (a third of the problems, typically)
    short = False
    for d in range(n):
        out_that_day = 0
        for s in range(max(0, d - length + 1), d + 1):
            if demand[s] > 0 and gain[s] > 0:
                out_that_day += demand[s]
        if out_that_day > cars[d]:
            short = True
            break
    if not short:
        for s in range(n):
            out[s] = demand[s] if demand[s] > 0 and gain[s] > 0 else 0
            price[s] = 0
        return
    source, sink = n + 1, n + 2
    nodes = n + 3
    arcs = 2 * (n + n + (n + 1))  # pairs (arc, its reverse): the days, the starts, the source's or sink's
    head = np.empty(arcs, dtype=np.int64)
    tail = np.empty(arcs, dtype=np.int64)
    cap = np.zeros(arcs, dtype=np.int64)
    cost = np.zeros(arcs, dtype=np.int64)
    undo = np.full(n, -1, dtype=np.int64)
    excess = np.zeros(nodes, dtype=np.int64)
    m = 0
    for d in range(n):  # the cars out on day d
        tail[m], head[m], cap[m], cost[m] = d, d + 1, cars[d], 0
        tail[m + 1], head[m + 1], cap[m + 1], cost[m + 1] = d + 1, d, 0, 0
        m += 2
    for s in range(n):
        if demand[s] <= 0 or gain[s] <= 0:
            continue
        e = min(s + length, n)
        # every rental taken: turning some away sends them from s to e along this arc, at their gain
        undo[s] = m
        tail[m], head[m], cap[m], cost[m] = s, e, demand[s], gain[s]
        tail[m + 1], head[m + 1], cap[m + 1], cost[m + 1] = e, s, 0, -gain[s]
        m += 2
        excess[s] += demand[s]
        excess[e] -= demand[s]
    for v in range(n + 1):
        if excess[v] > 0:
            tail[m], head[m], cap[m], cost[m] = source, v, excess[v], 0
            tail[m + 1], head[m + 1], cap[m + 1], cost[m + 1] = v, source, 0, 0
            m += 2
        elif excess[v] < 0:
            tail[m], head[m], cap[m], cost[m] = v, sink, -excess[v], 0
            tail[m + 1], head[m + 1], cap[m + 1], cost[m + 1] = sink, v, 0, 0
            m += 2
    # arcs by tail (a compact adjacency)
    degree = np.zeros(nodes + 1, dtype=np.int64)
    for a in range(m):
        degree[tail[a] + 1] += 1
    for v in range(nodes):
        degree[v + 1] += degree[v]
    order = np.empty(m, dtype=np.int64)
    fill = degree[:nodes].copy()
    for a in range(m):
        order[fill[tail[a]]] = a
        fill[tail[a]] += 1
    potential = np.zeros(nodes, dtype=np.int64)  # every arc with room costs ≥ 0 at the start: zero potentials do
    dist = np.empty(nodes, dtype=np.int64)
    done = np.empty(nodes, dtype=np.bool_)
    via = np.empty(nodes, dtype=np.int64)
    stack = np.empty(nodes, dtype=np.int64)  # a node is pushed at most once a search
    while True:
        for v in range(nodes):
            dist[v] = _INF
            done[v] = False
            via[v] = -1
        dist[source] = 0
        for _ in range(nodes):
            u = -1
            best = _INF
            for v in range(nodes):
                if not done[v] and dist[v] < best:
                    best = dist[v]
                    u = v
            if u < 0 or u == sink:  # the sink is settled: the rest cannot lie on a shorter path to it
                break
            done[u] = True
            for i in range(degree[u], degree[u + 1]):
                a = order[i]
                if cap[a] > 0:
                    v = head[a]
                    step = dist[u] + cost[a] + potential[u] - potential[v]
                    if step < dist[v]:
                        dist[v] = step
                        via[v] = a
        if dist[sink] >= _INF:
            break
        for v in range(nodes):  # nodes not settled get the sink's distance: reduced costs stay ≥ 0
            potential[v] += min(dist[v], dist[sink])
        # every path the new potentials make free (reduced cost 0) is a shortest one: use them all up before the
        # next search (the primal-dual method; far fewer searches than one path each)
        while True:
            for v in range(nodes):
                done[v] = False
                via[v] = -1
            done[source] = True
            stack[0] = source
            top = 1
            found = False
            while top > 0:
                top -= 1
                u = stack[top]
                if u == sink:
                    found = True
                    break
                for i in range(degree[u], degree[u + 1]):
                    a = order[i]
                    v = head[a]
                    if cap[a] > 0 and not done[v] and cost[a] + potential[u] - potential[v] == 0:
                        done[v] = True
                        via[v] = a
                        stack[top] = v
                        top += 1
            if not found:
                break
            push = _INF
            v = sink
            while v != source:
                a = via[v]
                push = min(push, cap[a])
                v = tail[a]
            v = sink
            while v != source:
                a = via[v]
                cap[a] -= push
                cap[a ^ 1] += push
                v = tail[a]
    for s in range(n):
        out[s] = cap[undo[s]] if undo[s] >= 0 else 0
    for d in range(n):  # the potentials are optimal duals: what one more car on day d would earn
        price[d] = max(0, potential[d + 1] - potential[d])


@njit(f"void({_ROW}, {_ROWS}, {_ROWS}, {_ROWS}, {_ROWS}, {_ROWS})", cache=True)
def _solve_all(length: np.ndarray, cars: np.ndarray, demand: np.ndarray, gain: np.ndarray, out: np.ndarray,
               price: np.ndarray) -> None:  # pragma: no cover - compiled; tested through solve_many
    for i in range(length.shape[0]):
        _solve(length[i], cars[i], demand[i], gain[i], out[i], price[i])


def solve_many(length: np.ndarray, cars: np.ndarray, demand: np.ndarray,
               gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The best accepts of each problem i (rows): rental length length[i] days, cars[i, d] cars on day d,
    demand[i, s] rentals asked for on start day s, gain[i, s] earned by each. Integers. Returns the accepts [i, s]
    and an optimal dual price of each day's cars [i, d] (in gain units per rental): the problem's optimum is
    Σ cars·price + Σ demand·max(0, gain − the prices of the days a rental occupies)."""
    length = np.ascontiguousarray(length, dtype=np.int64)
    cars = np.ascontiguousarray(cars, dtype=np.int64)
    demand = np.ascontiguousarray(demand, dtype=np.int64)
    gain = np.ascontiguousarray(gain, dtype=np.int64)
    out = np.zeros(demand.shape, dtype=np.int64)
    price = np.zeros(cars.shape, dtype=np.int64)
    if len(length):
        _solve_all(length, cars, demand, gain, out, price)
    return out, price
