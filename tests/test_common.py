"""experiments.common: how the binaries stop."""

import os
import signal
import time

import pytest

from experiments import common


def test_sigterm_stops_a_run_as_ctrl_c_does(capsys):
    previous = signal.getsignal(signal.SIGTERM)
    closed = []

    def train(config, workdir):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)  # interrupted long before this ends
        finally:
            closed.append((config, workdir))  # what a run's `with` blocks do on the way out

    with pytest.raises(SystemExit) as exit_info:
        common.run_resumable(train, "config", "workdir")
    assert exit_info.value.code == 130 and closed == [("config", "workdir")]
    assert "interrupted; rerun the same command to resume" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) is previous  # restored after the run


def test_a_run_that_ends_returns_its_result_and_restores_sigterm():
    previous = signal.getsignal(signal.SIGTERM)
    assert common.run_resumable(lambda c, w: (c, w), 1, "w") == (1, "w")
    assert signal.getsignal(signal.SIGTERM) is previous
