"""Argfile batches: splitting, parallel lines, failures, interruption, resuming."""

import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO
from lottery_ticket.cli import argfiles
from lottery_ticket.cli import batch

TESTS = os.path.join(REPO, "tests")


@pytest.fixture(autouse=True)
def fake_runner_importable(monkeypatch):
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", TESTS + (os.pathsep + path if path else ""))


RUNNER = "lottery_ticket.mnist_fc.runners.argfile_runner"


def write_argfile(tmp_path, specs):
    """tmp_path/batch.args: one fake_runner line per (name, flags), output in out/NAME."""
    path = tmp_path / "batch.args"
    path.write_text("\n".join(shlex.join([f"--output_dir={tmp_path / 'out' / name}"]
                                         + flags) for name, flags in specs) + "\n")
    return path


def start_driver(argfile, *flags, env=None):
    """The argfile runner on fake_runner lines, as a process (output merged, text)."""
    return subprocess.Popen(
        [sys.executable, "-m", RUNNER, "--runner=fake_runner", f"--argfile={argfile}"]
        + list(flags), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def lines_for(tmp_path, specs):
    return "\n".join(shlex.join([f"--output_dir={tmp_path / name}"] + list(flags))
                     for name, flags in specs)


def test_lines_split_like_a_shell():
    lines = batch.parse_lines(
        "# a comment\n\n--output_dir='/a b/run' --label=\"two words\" --x=1\n")
    assert len(lines) == 1
    assert lines[0].args == ["--output_dir=/a b/run", "--label=two words", "--x=1"]
    assert lines[0].output_dir == "/a b/run" and lines[0].number == 3
    assert lines[0].log_path == "/a b/run.log"
    assert batch.parse_lines("--output_dir /x/y --z=2")[0].output_dir == "/x/y"


def test_population_lines_are_kept_under_their_first_trial():
    lines = batch.parse_lines("--output_dir=/r/trial{seed} --seed=1 --population=2\n"
                              "--output_dir /r/trial{seed} --seed 3 --population=2\n")
    assert [line.output_dir for line in lines] == ["/r/trial1", "/r/trial3"]
    assert lines[0].log_path == "/r/trial1.log"
    assert lines[0].args[0] == "--output_dir=/r/trial{seed}"  # passed on as written
    with pytest.raises(ValueError, match="line 1: .* no --seed"):
        batch.parse_lines("--output_dir=/r/trial{seed} --population=2\n")


def test_control_population_lines_are_kept_under_their_first_run():
    # A control line with --population=K names its first run ({control}{R}); the
    # runner trains {control}{R}..{control}{R+K-1}, so lines of one level stay apart.
    text = "\n".join(argfiles.control_lines("reinit", 1, 1, 1, 1, 5, "/r", "lottery",
                                            "/data", None, None, runs_per_process=3))
    lines = batch.parse_lines(text)
    assert [line.output_dir for line in lines] == ["/r/trial1/1/reinit1",
                                                   "/r/trial1/1/reinit4"]
    assert lines[0].log_path == "/r/trial1/1/reinit1.log"
    assert "--population=3" in lines[0].args and "--population=2" in lines[1].args


def test_bad_lines_are_errors_naming_the_line():
    with pytest.raises(ValueError, match="line 2 has no --output_dir"):
        batch.parse_lines("--output_dir=/a\n--seed=1\n")
    with pytest.raises(ValueError, match="lines 1 and 2 both write to /a"):
        batch.parse_lines("--output_dir=/a --seed=1\n--output_dir=/a --seed=2\n")
    with pytest.raises(ValueError, match="line 1 does not split"):
        batch.parse_lines("--output_dir='/a\n")


def test_failing_line_does_not_stop_the_others(tmp_path):
    text = lines_for(tmp_path, [("a", ["--label=first"]), ("b", ["--fail"]),
                                ("c", ["--label=with space"])])
    summary = batch.run_batch("fake_runner", batch.parse_lines(text), workers=2)
    assert summary.exit_code == 1
    assert [line.number for line in summary.failed] == [2]
    assert sorted(line.number for line in summary.done) == [1, 3]
    assert (tmp_path / "c" / "finished.txt").read_text() == "with space\n"
    log = (tmp_path / "b.log").read_text()
    assert "failing on purpose" in log and "exit status 3" in log
    report = batch.format_summary(summary)
    assert "2 done, 0 skipped (already done), 1 failed, of 3 lines" in report
    assert f"log: {tmp_path / 'b.log'}" in report
    # Rerunning skips what is done and retries only the failed line.
    again = batch.run_batch("fake_runner", batch.parse_lines(text), workers=2)
    assert len(again.skipped) == 2 and [line.number for line in again.failed] == [2]
    assert (tmp_path / "a" / "finished.txt").read_text() == "first\n"


def _argfile_runner(argfile, workers=1):
    return subprocess.Popen(
        [sys.executable, "-m", "lottery_ticket.mnist_fc.runners.argfile_runner",
         "--runner=fake_runner", f"--argfile={argfile}", f"--workers={workers}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_batch_killed_midway_and_rerun_finishes_each_run_once(tmp_path):
    names = [f"run{i}" for i in range(5)]
    argfile = tmp_path / "batch.args"
    argfile.write_text(lines_for(tmp_path, [(n, ["--sleep=0.6", f"--label={n}"])
                                            for n in names]))
    process = _argfile_runner(argfile)
    deadline = time.time() + 60

    def recorded_done(name):
        try:
            return json.loads((tmp_path / f"{name}.batch.json").read_text())["status"] == "done"
        except (OSError, ValueError, KeyError):
            return False  # not written yet, or being replaced

    # Until the batch has recorded run1 done (its done.json alone may come a moment
    # before its process exits, and a line stopped then is redone, not done).
    while not recorded_done("run1") and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "interrupted" in output
    # Finished as the batch recorded it (a line can end just as the signal arrives).
    finished = [n for n in names if (tmp_path / f"{n}.batch.json").exists() and json.loads(
        (tmp_path / f"{n}.batch.json").read_text())["status"] == "done"]
    assert 2 <= len(finished) < len(names)
    stamps = {n: os.stat(tmp_path / n / "finished.txt").st_mtime_ns for n in finished}

    rerun = _argfile_runner(argfile, workers=2)
    output, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, output
    assert f"{len(finished)} skipped" in output
    for n in names:
        assert (tmp_path / n / "finished.txt").read_text() == f"{n}\n"  # exactly once
    for n in finished:
        assert os.stat(tmp_path / n / "finished.txt").st_mtime_ns == stamps[n]


def test_workers_get_one_gpu_each_or_a_share_of_the_cores(tmp_path, monkeypatch):
    seen = {}
    real_popen = subprocess.Popen

    def recording_popen(command, **kwargs):
        seen[command[-1]] = kwargs["env"]
        return real_popen(command, **kwargs)

    monkeypatch.setattr(batch.subprocess, "Popen", recording_popen)
    text = lines_for(tmp_path, [("a", ["--label=a"]), ("b", ["--label=b"])])
    batch.run_batch("fake_runner", batch.parse_lines(text), workers=2, gpus=["3", "5"])
    assert {env["CUDA_VISIBLE_DEVICES"] for env in seen.values()} == {"3", "5"}
    seen.clear()
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    text = lines_for(tmp_path, [("c", ["--label=c"])])
    batch.run_batch("fake_runner", batch.parse_lines(text), workers=2, gpus=[])
    expected = str(max(1, (os.cpu_count() or 1) // 2))
    assert seen["--label=c"]["TF_NUM_INTRAOP_THREADS"] == expected


def test_argfiles_print_one_line_per_run(tmp_path):
    lottery = argfiles.lottery_lines(
        2, 1, 30, "/exp", "/data", "iterations:50000", location_flag="mnist_location")
    assert lottery[1] == ("--output_dir=/exp/trial2 --seed=2 --levels=30 "
                          "--mnist_location=/data --training_len=iterations:50000")
    lines = argfiles.control_lines(
        "reuse", trials=2, first_trial=1, first_level=1, last_level=3, runs_per_level=2,
        experiment_root="/exp dir", lottery_name="lottery", data_location="/data",
        training_len="iterations:100", presets_from="level", fixed=["--mode=reuse"])
    assert len(lines) == 2 * 3 * 2
    parsed = batch.parse_lines("\n".join(lines))
    first = parsed[0].args
    assert first[:3] == ["--output_dir=/exp dir/trial1/1/reuse1",
                         "--masks=/exp dir/trial1/1/lottery/masks",
                         "--presets=/exp dir/trial1/1/lottery/initial"]
    assert "--seed=1001" in first and "--mode=reuse" in first
    random_prune = argfiles.control_lines(
        "random_prune", 1, 1, 2, 2, 1, "/exp", "lottery", "/d", "iterations:1", "level0")
    assert "--presets=/exp/trial1/0/lottery/initial" in shlex.split(random_prune[0])


def test_a_line_another_process_runs_is_busy_not_failed(tmp_path, caplog):
    from lottery_ticket.foundations import runs
    text = lines_for(tmp_path, [("a", ["--label=a"]), ("b", ["--label=b"])])
    lines = batch.parse_lines(text)
    with runs.lock(str(tmp_path / "a")):  # as a worker running line 1 elsewhere would
        with caplog.at_level(logging.INFO, logger="lottery_ticket"):
            summary = batch.run_batch("fake_runner", lines, workers=1)
        # A duplicate on a cluster worker does not even start the runner.
        outcome = batch.run_line(lines[0], "fake_runner")
    assert [line.number for line in summary.busy] == [1] and not summary.failed
    # Progress counts the busy line as the summary does: busy, not failed.
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[")]
    assert progress[-1].startswith("[2/2] line 2 done | done 1, failed 0, busy 1, "), progress
    assert [line.number for line in summary.done] == [2]
    assert summary.exit_code == 1
    assert outcome.status == batch.BUSY and f"pid {os.getpid()}" in outcome.note
    assert "BUSY line 1" in batch.format_summary(summary)
    # The line's log and record belong to whoever runs it: the duplicate left them alone.
    assert not (tmp_path / "a.batch.json").exists() and not (tmp_path / "a.log").exists()
    again = batch.run_batch("fake_runner", lines, workers=1)
    assert [line.number for line in again.done] == [1] and again.exit_code == 0


def test_flags_of_another_backend_are_one_error(tmp_path):
    argfile = tmp_path / "batch.args"
    argfile.write_text(lines_for(tmp_path, [("a", ["--label=a"])]))
    for flags, message in [
            (["--ray_address=auto"], "error: --ray_address applies to --backend=ray only "
                                     "(this batch runs with --backend=local)."),
            (["--backend=spark"], "error: --backend=spark: choose one of local, ray, "
                                  "slurm.")]:
        result = subprocess.run(
            [sys.executable, "-m", "lottery_ticket.mnist_fc.runners.argfile_runner",
             "--runner=fake_runner", f"--argfile={argfile}"] + flags,
            capture_output=True, text=True, check=False)
        assert result.returncode == 2
        assert result.stderr.strip() == message
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("backend,module", [("ray", "ray"), ("slurm", "submitit")])
def test_a_backend_whose_extra_is_missing_is_one_error(tmp_path, backend, module):
    # A module that fails to import, first on the path: as if it were not installed.
    (tmp_path / "shadow" / module).mkdir(parents=True)
    (tmp_path / "shadow" / module / "__init__.py").write_text(
        f"raise ImportError(\"No module named '{module}'\")\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tmp_path / "shadow") + os.pathsep + env["PYTHONPATH"]
    process = start_driver(write_argfile(tmp_path, [("a", ["--label=a"])]),
                           f"--backend={backend}", env=env)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert output.strip().splitlines() == [
        f"error: --backend={backend} needs {module}, which is not installed (No module "
        f"named '{module}'): pip install \"lottery_ticket[{backend}]\" (or pip install "
        f"\".[{backend}]\" in a checkout)."]
    assert not (tmp_path / "out" / "a").exists()


def test_a_line_done_under_another_runner_runs(tmp_path, monkeypatch):
    # A second runner module: the same program under another name.
    (tmp_path / "other_runner.py").write_text(
        "from fake_runner import main\n\nif __name__ == \"__main__\":\n    main()\n")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ['PYTHONPATH']}")
    lines = batch.parse_lines(lines_for(tmp_path, [("a", ["--label=a"])]))
    assert batch.run_batch("fake_runner", lines).exit_code == 0
    assert len(batch.run_batch("fake_runner", lines).skipped) == 1
    other = batch.run_batch("other_runner", lines)
    assert [line.number for line in other.done] == [1] and not other.skipped
    assert (tmp_path / "a.log").read_text().count("-m other_runner") == 1
    assert json.loads((tmp_path / "a.batch.json").read_text())["runner"] == "other_runner"
    assert len(batch.run_batch("other_runner", lines).skipped) == 1


def test_bad_runner_argfile_or_folder_is_one_error_naming_it(tmp_path):
    argfile = write_argfile(tmp_path, [("a", ["--label=a"])])
    binary = tmp_path / "binary.args"
    binary.write_bytes(b"--output_dir=x \xff\xfe\n")
    pruning = "lottery_ticket.foundations.pruning"
    for flags, message in [
            ([f"--runner={pruning}", f"--argfile={argfile}"],
             f"error: --runner={pruning} is not a runner: give one of a family's runners "),
            (["--runner=fake_runner", f"--argfile={tmp_path}"],
             f"error: --argfile={tmp_path} is a directory; give a text file of flag lines"),
            (["--runner=fake_runner", f"--argfile={binary}"],
             f"error: --argfile={binary} is not a text file of flag lines (not UTF-8 "
             "text: byte 0xff at position 15)."),
            (["--runner=fake_runner", f"--argfile={argfile}", "--backend=slurm",
              "--slurm_folder=/proc/nope", "--dry_run"],
             "error: --slurm_folder=/proc/nope cannot be made (cannot write in /proc: No "
             "such file or directory); give --slurm_folder=DIR, a writable directory")]:
        result = subprocess.run([sys.executable, "-m", RUNNER] + flags, capture_output=True,
                                text=True, check=False)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(message), (
            result.stderr)
    assert not (tmp_path / "out" / "a").exists()


def test_dry_run_shows_a_line_whose_driver_was_killed_as_to_run(tmp_path):
    argfile = write_argfile(tmp_path, [("a", ["--label=a"]), ("b", ["--label=b"])])
    assert start_driver(argfile).wait(timeout=60) == 0
    gone = subprocess.Popen(["true"])
    gone.wait()
    # What a driver killed with SIGKILL leaves: a `running` record of a dead process.
    record = json.loads((tmp_path / "out" / "b.batch.json").read_text())
    record.update(status="running", pid=gone.pid)
    (tmp_path / "out" / "b.batch.json").write_text(json.dumps(record))
    (tmp_path / "out" / "b" / "done.json").unlink()
    dry, _ = start_driver(argfile, "--dry_run").communicate(timeout=60)
    assert f"[done] python -m fake_runner --output_dir={tmp_path / 'out' / 'a'}" in dry
    assert (f"[to run; stale running record: pid {gone.pid} is gone; the line runs again] "
            f"python -m fake_runner --output_dir={tmp_path / 'out' / 'b'}") in dry
    rerun, _ = start_driver(argfile).communicate(timeout=60)
    assert "1 done, 1 skipped (already done), 0 failed" in rerun
