"""kretry's benchmarks: `make bench` (python -m bench.run). Every speed figure is a ratio to a bare loop."""
