"""The peers `bench_runtime.py` compares: one module per stack, each with a server and a client."""
