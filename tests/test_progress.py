"""Progress display: Keras's bar on a terminal, plain lines in logs and pipes."""

import io

from pixel_models import progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_string_buffer_is_not_a_terminal_and_a_tty_is():
    assert not progress.is_terminal(io.StringIO())
    assert progress.is_terminal(_Terminal())


def test_an_imported_ipykernel_outside_a_kernel_is_not_a_notebook(monkeypatch):
    """Looking up Jupyter kernels imports ipykernel into the test process: its
    output is still not a notebook's."""
    import types

    monkeypatch.setitem(progress.sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    fake_ipython = types.ModuleType("IPython")
    fake_ipython.get_ipython = lambda: None
    monkeypatch.setitem(progress.sys.modules, "IPython", fake_ipython)
    assert not progress.is_terminal(io.StringIO())
    kernel_shell = types.SimpleNamespace(kernel=object())
    fake_ipython.get_ipython = lambda: kernel_shell
    assert progress.is_terminal(io.StringIO())


def test_plain_lines_are_spaced_by_the_interval_and_end_with_the_target(monkeypatch):
    clock = iter([0.0, 0.0, 1.0, 2.0, 11.5, 12.0, 30.0])
    monkeypatch.setattr(progress.time, "time", lambda: next(clock))
    out = io.StringIO()
    bar = progress.PlainProgress(10, unit_name="step", interval=10.0, stream=out)  # t=0
    bar.update(0)  # t=0: nothing to say yet
    bar.update(1, [("nll", 41.234)])  # t=1: too soon
    bar.update(2)  # t=2: too soon
    bar.update(5, [("nll", 30.0)])  # t=11.5: a line
    bar.update(6)  # t=12: too soon
    bar.add(4, [("nll", 20.0), ("test_nll", 21.0)])  # t=30: the target
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 2
    assert lines == [
        "step 5/10 (50%) - nll=30 - 11.5 s, about 13 s left",
        "step 10/10 (100%) - nll=20 - test_nll=21 - 30.0 s",
    ]


def test_the_time_left_counts_from_the_first_unit_after_the_first_count(monkeypatch):
    # A run resumed at step 100 of 1000: its first step (which compiles) and
    # the steps before it do not count; then 100 steps in 60 s leave 799
    # steps, 8.0 minutes; at a slower rate, hours.
    clock = iter([0.0, 5.0, 20.0, 80.0, 7280.0])
    monkeypatch.setattr(progress.time, "time", lambda: next(clock))
    out = io.StringIO()
    bar = progress.PlainProgress(1000, interval=10.0, stream=out)  # t=0
    bar.update(100)  # t=5: the resumed count, shown at once
    bar.update(101)  # t=20: the first step, slow: no rate yet
    bar.update(201)  # t=80: 100 steps in 60 s
    bar.update(301)  # t=7280: 200 steps in 7260 s, 699 left
    assert out.getvalue().splitlines() == [
        "step 100/1000 (10%) - 5.0 s",
        "step 101/1000 (10%) - 20.0 s",
        "step 201/1000 (20%) - 80.0 s, about 8.0 min left",
        f"step 301/1000 (30%) - 7280.0 s, about {699 * 7260 / 200 / 3600:.1f} h left",
    ]


def test_the_time_left_is_at_most_the_time_to_the_limit(monkeypatch):
    clock = iter([0.0, 0.0, 10.0, 20.0])
    monkeypatch.setattr(progress.time, "time", lambda: next(clock))
    out = io.StringIO()
    bar = progress.PlainProgress(10**6, interval=1.0, stream=out, seconds_limit=120.0)
    bar.update(0)
    bar.update(1)  # t=10
    bar.update(2)  # t=20: a million steps at 10 s each, but the loop stops at 120 s
    assert out.getvalue().splitlines()[-1].endswith(" - 20.0 s, about 1.7 min left")


def test_progress_chooses_by_the_output(monkeypatch):
    monkeypatch.setattr(progress.sys, "stdout", io.StringIO())
    assert isinstance(progress.progress(3), progress.PlainProgress)
    monkeypatch.setattr(progress.sys, "stdout", _Terminal())
    assert not isinstance(progress.progress(3), progress.PlainProgress)


def test_a_resumed_count_is_shown_at_once():
    out = io.StringIO()
    bar = progress.PlainProgress(200, interval=10.0, stream=out)
    bar.update(60)
    assert out.getvalue().startswith("step 60/200 (30%) - ")
