"""extraArgs is read as Celery's own click command reads it: our table is Celery's, and both parsers agree.

Celery is a dev dependency (the runtime tier runs it), not a runtime one: the package parses with click
on a table of Celery's worker options, and these tests hold that table to ``celery.bin.worker.worker``.
"""

from __future__ import annotations

import itertools

import click
import pytest
from celery.bin.worker import worker as celery_worker
from hypothesis import given, settings
from hypothesis import strategies as st

from celery_platform.config.worker_args import (
    HELP,
    OWNED_WORKER_OPTIONS,
    WORKER_OPTIONS,
    WorkerArgsError,
    check_worker_args,
    options_set,
    worker_command,
)


def _kind(param: click.Parameter) -> str | tuple[str, ...]:
    assert isinstance(param, click.Option)
    if param.is_flag:
        return "flag"
    if isinstance(param.type, click.Choice):
        return tuple(str(c) for c in param.type.choices)
    if isinstance(param.type, click.types.IntParamType):
        return "int"
    if isinstance(param.type, click.types.FloatParamType):
        return "float"
    return "text"


def test_our_table_is_celerys_worker_command_option_by_option() -> None:
    celery = [(p.name, tuple(p.opts), _kind(p)) for p in celery_worker.params]
    assert celery == list(WORKER_OPTIONS)
    for param in celery_worker.params:
        assert isinstance(param, click.Option)
        assert not param.multiple and not param.count and param.nargs == 1, param.name
        if isinstance(param.type, click.Choice):
            assert param.type.case_sensitive, param.name
    # Celery keeps click's --help and lets extra (positional) arguments through, as ours does.
    ctx = click.Context(celery_worker)
    assert [p.opts for p in celery_worker.get_params(ctx) if p not in celery_worker.params] == [["--help"]]
    assert celery_worker.context_settings.get("allow_extra_args") is True
    assert not celery_worker.context_settings.get("ignore_unknown_options")
    assert celery_worker.context_settings.get("token_normalize_func") is None  # no abbreviations, no case folding


def test_every_owned_option_is_a_celery_option() -> None:
    names = {name for name, _, _ in WORKER_OPTIONS} | {HELP}
    assert set(OWNED_WORKER_OPTIONS) <= names


SHORT = [opt for _, opts, _ in WORKER_OPTIONS for opt in opts if len(opt) == 2]
LONG = [opt for _, opts, _ in WORKER_OPTIONS for opt in opts if opt.startswith("--")]
VALUES = st.sampled_from(["solo", "4", "fair", "x", "", "-E", "1.5", "default", "fork", "=", "a,b"])


def _token() -> st.SearchStrategy[str]:
    clustered = st.lists(st.sampled_from([o[1] for o in SHORT]), min_size=1, max_size=4).flatmap(
        lambda letters: st.builds(lambda v: "-" + "".join(letters) + v, st.sampled_from(["", "foo", "16", "solo"]))
    )
    abbreviated = st.sampled_from(LONG).flatmap(lambda o: st.integers(3, len(o) - 1).map(lambda n: o[:n]))
    return st.one_of(
        clustered,
        st.sampled_from(SHORT + LONG),
        st.builds(lambda o, v: f"{o}={v}", st.sampled_from(LONG), VALUES),
        abbreviated,
        VALUES,
        st.sampled_from(["--", "-", "-A", "--app=x", "--HELP", "--Beat", "key=value"]),
    )


def _verdict(args: list[str], command: click.Command) -> tuple[set[str], list[str]] | str:
    """The options set (resilient: Celery's callbacks need an app, which is beside the point), or the refusal."""
    try:
        given, positional = options_set(args, command, resilient=True)
    except WorkerArgsError as err:
        return f"refused: {err}"
    return {HELP if name == "_click_default_help" else name for name in given}, positional


@settings(max_examples=600, deadline=None)
@given(args=st.lists(_token(), max_size=5))
def test_our_command_and_celerys_set_the_same_options_for_any_arguments(args: list[str]) -> None:
    assert _verdict(args, worker_command()) == _verdict(args, celery_worker)


OWNED_FLAGS = ["B", "D"]
OWNED_WITH_VALUE = ["Q", "c", "P", "n", "I", "l", "X", "s", "f"]


@settings(max_examples=300, deadline=None)
@given(
    flags=st.lists(st.sampled_from(["E", "B", "D"]), max_size=4),
    last=st.sampled_from(["", *OWNED_WITH_VALUE]),
    value=st.sampled_from(["foo", "16", "solo", "INFO"]),
    split=st.booleans(),
)
def test_any_clustering_of_an_owned_short_option_is_refused(
    flags: list[str], last: str, value: str, split: bool
) -> None:
    if not set(flags) & set(OWNED_FLAGS) and not last:
        flags = [*flags, "B"]
    cluster = "-" + "".join(flags) + last
    args = [cluster, value] if last and split else [cluster + (value if last else "")]
    problems = check_worker_args("pools[0].extraArgs", args)
    assert problems, args
    assert any("which is the platform's" in p.problem for p in problems), problems
    assert problems[0].field == "pools[0].extraArgs[0]"


@pytest.mark.parametrize(
    "args",
    [
        ["-EB"],
        ["-EQfoo"],
        ["-Ec16"],
        ["-EP", "solo"],
        ["-EDB"],
        ["-BE"],
        ["-Ecn"],  # -c with the value "n"
        ["--beat"],
        ["-s/tmp/x"],
        ["--purge"],
        ["--help"],
    ],
)
def test_fails_when_extra_args_set_an_owned_option_however_spelled(args: list[str]) -> None:
    problems = check_worker_args("pools[0].extraArgs", args)
    assert problems and all("which is the platform's" in p.problem for p in problems), problems
    assert problems[0].field == "pools[0].extraArgs[0]"


@pytest.mark.parametrize(
    "args",
    [["--queue=x"], ["--concurr=4"], ["-A", "proj"], ["-P"], ["--time-limit=abc"], ["-O", "unfair"], ["-Z"]],
)
def test_fails_when_celery_worker_would_refuse_the_arguments(args: list[str]) -> None:
    [problem] = check_worker_args("pools[0].extraArgs", args)
    assert problem.problem.startswith("celery worker would refuse it")


def test_fails_when_extra_args_hold_positional_arguments_which_celery_reads_as_configuration() -> None:
    [problem] = check_worker_args("e", ["worker_prefetch_multiplier=4"])
    assert "positional" in problem.problem
    assert check_worker_args("e", ["--", "-B"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                ["-E"],
                ["--task-events"],
                ["--time-limit=300"],
                ["--soft-time-limit", "250.5"],
                ["--max-tasks-per-child=100"],
                ["-O", "fair"],
                ["-Ofair"],
                ["--without-heartbeat"],
                ["--heartbeat-interval=10"],
                ["--pool-start-method=spawn"],
                ["-S", "/tmp/state"],
            ]
        ),
        max_size=5,
    )
)
def test_benign_options_pass_in_any_order(groups: list[list[str]]) -> None:
    args = list(itertools.chain.from_iterable(groups))
    assert check_worker_args("e", args) == []


def test_the_element_that_sets_an_owned_option_is_named() -> None:
    problems = check_worker_args("e", ["-E", "--time-limit", "30", "-P", "solo", "-EB"])
    assert [p.field for p in problems] == ["e[3]", "e[5]"]
