"""What a worker counts about the responses it sends, for the status page and the metrics.

One `ResponseStats` per worker, updated on the Reactor thread once per response (a few
additions and one bisect), published with the heartbeat through the scoreboard.
"""

from __future__ import annotations

from bisect import bisect_left

# Upper bounds (seconds) of the request-duration histogram's buckets; one more bucket is +Inf.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ResponseStats:
    __slots__ = ("by_class", "bytes_sent", "duration_sum", "durations")

    def __init__(self):
        self.by_class = [0] * 6  # index: status // 100 (1..5 used)
        self.bytes_sent = 0
        self.duration_sum = 0.0
        self.durations = [0] * (len(DURATION_BUCKETS) + 1)  # not cumulative: one bucket each

    def count(self, status: int, sent: int, duration: float) -> None:
        # Once per response: no bisect for the common sub-millisecond answer.
        self.by_class[status // 100 if 100 <= status < 600 else 5] += 1
        self.bytes_sent += sent
        self.duration_sum += duration
        self.durations[0 if duration <= 0.001 else bisect_left(DURATION_BUCKETS, duration)] += 1
