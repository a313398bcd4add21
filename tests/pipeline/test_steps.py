"""The pipeline's step list: references, one signature, every step in one phase."""

import inspect

import pytest

from pipeline import runs, steps


def test_every_step_is_a_function_of_the_run_and_belongs_to_one_phase():
    for step in steps.STEPS:
        params = list(inspect.signature(step.fn).parameters)
        assert params == ["run"], (step.name, params)
    assert steps.BEFORE_FANOUT + steps.SCORE + steps.AFTER_SCORE == steps.STEP_NAMES
    assert len(set(steps.STEP_NAMES)) == len(steps.STEP_NAMES)


def test_an_unknown_step_name_is_an_error_not_a_skip():
    with pytest.raises(ValueError, match="unknown pipeline steps"):
        runs.run_steps(None, ("features", "no_such_step"))  # type: ignore[arg-type]
