"""tabresnet.tuning.progress: the live display."""

from __future__ import annotations

import io

import optuna
from optuna.trial import TrialState

from tabresnet.tuning.progress import TrialLog, TuneProgress


def test_progress_display_shows_trials_best_and_failures(capsys):
    study = optuna.create_study()
    for value in (2.5, 1.25):
        study.add_trial(optuna.trial.create_trial(value=value))
    study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED))
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
    with TuneProgress(study, planned=5, enabled=True):
        pass  # leaving draws the last state
    err = capsys.readouterr().err
    assert "3/5" in err and "best 1.25" in err and "1 failed" in err
    with TuneProgress(study, planned=5, enabled=False):
        pass
    assert capsys.readouterr().err == ""  # off: nothing drawn


# -- the log: one line per finished trial when stderr is not a terminal -----------------
def _add(study, value=None, state=TrialState.COMPLETE, steps=None, attrs=None):
    study.add_trial(optuna.trial.create_trial(
        value=value, state=state, intermediate_values=steps or {}, user_attrs=attrs or {},
        distributions={}, params={}))


def test_trial_log_lines_name_trial_state_value_best_and_time_left():
    study = optuna.create_study()
    _add(study, 9.0)  # from an earlier run: counted, not listed, but it is the best so far
    now = [1000.0]
    out = io.StringIO()
    log = TrialLog(study, planned=5, clock=lambda: now[0], out=out)
    log.start()
    assert log.poll() == []
    _add(study, 2.5)
    now[0] = 1020.0
    first = log.poll()
    assert first == ["tune 20s: trial 1 complete, value 2.5; best 2.5 (trial 1); "
                     "2/5 done, about 1m00s left"]
    _add(study, state=TrialState.PRUNED, steps={0: 4.0, 1: 3.5})
    _add(study, state=TrialState.FAIL, attrs={"fail_reason": "interrupted (SIGINT)"})
    _add(study, 3.0)
    now[0] = 1060.0
    lines = log.poll()
    assert [line.split(": ", 1)[1].split(";")[0] for line in lines] == [
        "trial 2 pruned at epoch 2 (value 3.5)", "trial 3 failed: interrupted (SIGINT)",
        "trial 4 complete, value 3"]
    # Each line as things stood when its trial finished; a failed trial is not a
    # finished one, nor does it set the pace; the best stays trial 1's. The pace:
    # 60 s over the 2, 2, 3 trials that ran through since the start, times the 2,
    # 2, 1 trials still to go.
    assert [line.split("; ", 2)[2] for line in lines] == [
        "3/5 done, about 1m00s left", "3/5 done, about 1m00s left", "4/5 done, about 20s left"]
    assert all("best 2.5 (trial 1)" in line for line in lines)
    assert out.getvalue().splitlines() == first + lines


def test_trial_log_time_left_is_capped_by_the_deadline():
    study = optuna.create_study()
    now = [0.0]
    log = TrialLog(study, planned=100, deadline=50.0, clock=lambda: now[0], out=io.StringIO())
    log.start()
    _add(study, state=TrialState.PRUNED, attrs={"stopped": "time limit"})
    now[0] = 10.0
    (line,) = log.poll()
    # By pace: 99 more trials of 10 s; the deadline is 40 s away.
    assert "trial 0 stopped at the time limit" in line
    assert "no complete trial yet" in line and line.endswith("1/100 done, about 40s left")


def test_tune_logs_each_trial_when_stderr_is_not_a_terminal(regression_frame, tmp_path, capsys):
    from tabresnet.cli import main

    data = tmp_path / "d.csv"
    regression_frame.to_csv(data, index=False)
    assert main(["tune", str(data), "-t", "y", "--trials", "2", "--cv", "0",
                 "--out", str(tmp_path / "run"), "--no-report", "--max-epochs", "2",
                 "--num-blocks", "1", "--c-hidden", "8", "--space",
                 str(_tiny_space(tmp_path))]) == 0
    err = capsys.readouterr().err  # captured: not a terminal, so "auto" logs
    lines = [line for line in err.splitlines() if line.startswith("tune ")]
    assert len(lines) == 2, err
    assert "trial 0 " in lines[0] and "1/2 done" in lines[0]
    assert "trial 1 " in lines[1] and lines[1].endswith("2/2 done") and "best " in lines[1]
    assert "retraining" in err or "saving the network" in err


def _tiny_space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("lr: {type: float, low: 0.001, high: 0.01, log: true}\n")
    return path
