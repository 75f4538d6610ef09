"""Slow readers cannot drive the server's memory up or its latency for others.

Many connections each pipeline 5,000 getData requests for a 100 KB node and never
read a reply, while one well-behaved session keeps writing and reading (the attack
of ``slow_readers.py``). Every byte the server holds for a connection counts against
that connection's bound and a server-wide one, so resident memory stays bounded, the
well-behaved session keeps its latency, and the memory is given back once the
hostile clients are gone. Ferrokeeper's own bounds: Apache ZooKeeper buffers replies
without a bound (416-600 MB in the same run, docs/performance.md), so this test runs
against Ferrokeeper only.
"""

from __future__ import annotations

import pytest

import slow_readers

MB = 1_000_000
PEAK_ABOVE_IDLE_MAX = 256 * MB
AFTER_CLOSE_ABOVE_IDLE_MAX = 32 * MB
CONTROL_P99_MAX_MS = 50.0


@pytest.mark.parametrize("readers", [60, 200])
def test_slow_readers_of_a_large_node_are_bounded(server_factory, readers):
    server = server_factory("ferrokeeper")
    result = slow_readers.run_attack(
        server.port, server.proc.pid, readers=readers, node_bytes=100_000, duration_s=6.0
    )
    summary = (
        f"{readers} slow readers: idle {result.idle_rss / MB:.0f} MB, peak "
        f"+{result.peak_above_idle / MB:.0f} MB, after close "
        f"{(result.after_close_rss - result.idle_rss) / MB:+.0f} MB, control p99 "
        f"{result.control_percentile_ms(0.99):.2f} ms over {len(result.control_latencies_s)} ops"
    )
    print(summary)
    assert server.alive(), summary
    assert result.control_errors == 0, summary
    assert len(result.control_latencies_s) > 100, f"the control session barely ran: {summary}"
    assert result.peak_above_idle < PEAK_ABOVE_IDLE_MAX, summary
    assert result.control_percentile_ms(0.99) < CONTROL_P99_MAX_MS, summary
    assert result.after_close_rss - result.idle_rss < AFTER_CLOSE_ABOVE_IDLE_MAX, summary
