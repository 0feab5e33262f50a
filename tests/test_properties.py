"""Property-based tests: any sequence of operations keeps the count valid and the log in step."""
import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from Repository import Repository
from thebutton.store import InvalidValue, NothingToUndo

operations = st.lists(
    st.one_of(
        st.just(("press",)),
        st.just(("undo",)),
        st.tuples(st.just("set"), st.one_of(st.none(), st.integers(-5, 60)),
                  st.one_of(st.none(), st.integers(-5, 60))),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(goal=st.integers(1, 30), ops=operations)
def test_repository_matches_a_simple_model(goal, ops):
    """The Repository behaves like a plain Python model of count, goal and undo stack."""
    with tempfile.TemporaryDirectory() as tmp, Repository(os.path.join(tmp, "c.db"), goal=goal) as repo:
        count, model_goal, stack = goal, goal, []
        for op in ops:
            if op[0] == "press":
                stack.append(count)
                count = model_goal if count == 0 else count - 1
                assert repo.press().count == count
            elif op[0] == "undo":
                if not stack:
                    try:
                        repo.undo()
                    except NothingToUndo:
                        pass
                    else:
                        raise AssertionError("undo with nothing to undo succeeded")
                else:
                    count = min(stack.pop(), model_goal)
                    assert repo.undo().count == count
            else:
                _, new_count, new_goal = op
                g = model_goal if new_goal is None else new_goal
                valid = 1 <= g <= 1_000_000 and (new_count is None or 0 <= new_count <= g)
                try:
                    state = repo.set(count=new_count, goal=new_goal)
                except InvalidValue:
                    assert not valid
                else:
                    assert valid
                    new = min(count, g) if new_count is None else new_count
                    if (new, g) != (count, model_goal):
                        stack = []  # undo stops at a set that changed something
                    model_goal, count = g, new
                    assert (state.count, state.goal) == (count, model_goal)
            state = repo.state()
            assert 0 <= state.count <= state.goal
            assert (state.count, state.goal) == (count, model_goal)
