"""Writers of tiny files in the exact published layouts, for tests and benchmarks."""
