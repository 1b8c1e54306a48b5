"""The whole program under fuzzing, bounded for `make test`: `make fuzz` runs the same cases by the thousand."""

from __future__ import annotations

from tests.fuzz.program import Result, fuzz

# Each case renders the program once (about half a second): 40 keep `make test` under a minute here.
CASES = 40


def test_any_mutated_stack_file_renders_valid_yaml_or_is_refused_clearly_and_never_leaks_a_canary() -> None:
    outcomes: dict[str, int] = {}
    failures: list[tuple[str, str, bytes]] = []

    def record(result: Result, stack_bytes: bytes) -> None:
        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
        if result.outcome not in ("rendered", "refused"):
            failures.append((result.outcome, result.detail, stack_bytes[:600]))

    fuzz(CASES, record)
    assert failures == [], failures[0]
    assert sum(outcomes.values()) >= CASES // 2, outcomes
    # Both oracles ran: some cases rendered (the YAML checks), some were refused (the message checks).
    assert outcomes.get("rendered", 0) > 0 and outcomes.get("refused", 0) > 0, outcomes
