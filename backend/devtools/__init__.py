"""What developers run beside the app: `make run`, the benchmarks, throwaway databases."""
