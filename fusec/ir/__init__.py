"""The IR: the dataflow graph, dtypes, reserved words, and the registry of ops."""
