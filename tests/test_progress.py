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
        "step 5/10 (50%) - nll=30 - 11.5 s, about 12 s left",
        "step 10/10 (100%) - nll=20 - test_nll=21 - 30.0 s",
    ]


def test_the_time_left_counts_from_the_first_update_and_reads_in_minutes(monkeypatch):
    # A run resumed at step 100 of 1000: 100 more steps in 60 s leave
    # 800 steps, 8 minutes; the first 100 steps do not count.
    clock = iter([0.0, 5.0, 65.0, 7265.0])
    monkeypatch.setattr(progress.time, "time", lambda: next(clock))
    out = io.StringIO()
    bar = progress.PlainProgress(1000, interval=10.0, stream=out)  # t=0
    bar.update(100)  # t=5: the resumed count, nothing counted yet
    bar.update(200)  # t=65: 100 steps in 60 s
    bar.update(300)  # t=7265: 200 steps in 7260 s, 700 left
    lines = out.getvalue().splitlines()
    assert lines[0] == "step 100/1000 (10%) - 5.0 s"
    assert lines[1] == "step 200/1000 (20%) - 65.0 s, about 8.0 min left"
    assert lines[2] == "step 300/1000 (30%) - 7265.0 s, about 7.1 h left"


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
