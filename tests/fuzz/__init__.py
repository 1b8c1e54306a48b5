"""Fuzzing the whole program: stack file bytes in, exit code, message and YAML out, checked by oracles."""
