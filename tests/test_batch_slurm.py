"""Argfile batches as Slurm job arrays: on a real single-node cluster
(tests/cluster/start_slurm.sh), and through submitit's local executor."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO
from test_batch import RUNNER, start_driver, write_argfile

submitit = pytest.importorskip("submitit",
                               reason='submitit is not installed: pip install ".[slurm]"')

from lottery_ticket.cli import batch  # noqa: E402
from lottery_ticket.cli import batch_slurm  # noqa: E402

TESTS = os.path.join(REPO, "tests")


@pytest.fixture(autouse=True)
def fake_runner_importable(monkeypatch):
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", TESTS + (os.pathsep + path if path else ""))


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running single-node Slurm cluster, or a skip saying why there is none."""
    result = subprocess.run(["bash", os.path.join(TESTS, "cluster", "start_slurm.sh")],
                            capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        said = (result.stderr.strip().splitlines() or ["no message"])[-1]
        print(f"Slurm tests skipped: {said}", file=sys.stderr)
        pytest.skip(f"no Slurm cluster: {said}")


def _driver(argfile, *flags):
    return start_driver(argfile, "--backend=slurm", "--slurm_time=5", *flags)


def _jobs(tmp_path):
    state = json.loads((tmp_path / "out.slurm" / "batch_state.json").read_text())
    return {os.path.basename(key): entry["jobs"] for key, entry in state["lines"].items()}


def _wait_for(condition, process=None, seconds=120):
    deadline = time.time() + seconds
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(process.communicate()[0])
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


def test_killed_driver_is_reattached_and_nothing_is_submitted_twice(slurm_cluster,
                                                                    tmp_path):
    hold = tmp_path / "hold"
    hold.write_text("")
    held = [f"--hold={hold}"]
    argfile = write_argfile(tmp_path, [("a", ["--label=a"] + held), ("b", ["--fail"] + held),
                                  ("c", ["--label=c"] + held), ("d", ["--label=d"] + held)])
    dry = subprocess.run(
        [sys.executable, "-m", RUNNER, "--runner=fake_runner", f"--argfile={argfile}",
         "--backend=slurm", "--slurm_time=5", "--workers=1", "--dry_run"],
        capture_output=True, text=True, check=False)
    assert dry.returncode == 0, dry.stderr
    assert ("slurm: would submit 1 job array of 4 task(s) (lines 1, 2, 3, 4): sbatch "
            "--array=0-3%1 --job-name=lottery_ticket_batch --time=5 --cpus-per-task=1"
            in dry.stdout)
    assert not (tmp_path / "out.slurm").exists()

    # One array task at a time: line 1 runs (held), lines 2-4 stay queued.
    first = _driver(argfile, "--workers=1")
    _wait_for(lambda: (tmp_path / "out.slurm" / "batch_state.json").exists()
              and (tmp_path / "out" / "a" / "started").exists(), first)
    first.kill()  # SIGKILL: the driver cannot cancel anything
    first.communicate()
    submitted = _jobs(tmp_path)
    assert sorted(submitted) == ["a", "b", "c", "d"]
    assert all(len(jobs) == 1 for jobs in submitted.values())
    array = submitted["a"][0].split("_")[0]
    assert sorted(jobs[0] for jobs in submitted.values()) == [f"{array}_{i}" for i in range(4)]
    assert batch_slurm.squeue_states([f"{array}_{i}" for i in range(4)]).get(
        f"{array}_1") == "PENDING"

    dry = subprocess.run(
        [sys.executable, "-m", RUNNER, "--runner=fake_runner", f"--argfile={argfile}",
         "--backend=slurm", "--dry_run"], capture_output=True, text=True, check=False)
    assert f"slurm: line 2 re-attaches to job {array}_1 (PENDING)" in dry.stdout

    rerun = _driver(argfile)
    # Released once the rerun has re-attached (it says so before waiting).
    output = []
    reader = threading.Thread(target=lambda: output.extend(rerun.stdout), daemon=True)
    reader.start()
    _wait_for(lambda: any("re-attached to 4 job(s)" in row for row in output), rerun)
    hold.unlink()
    rerun.wait(timeout=180)
    reader.join(timeout=10)
    text = "".join(output)
    assert rerun.returncode == 1, text
    assert "3 done, 0 skipped (already done), 1 failed, of 4 lines" in text
    assert "submitted" not in text
    assert _jobs(tmp_path) == submitted  # nothing submitted twice
    for name in "acd":
        assert (tmp_path / "out" / name / "finished.txt").read_text() == f"{name}\n"
    record = json.loads((tmp_path / "out" / "b.batch.json").read_text())
    assert record["status"] == "failed" and record["attempt"] == f"job {array}_1"

    # A third run submits only the failed line, as a new job.
    again = _driver(argfile)
    text, _ = again.communicate(timeout=180)
    assert again.returncode == 1, text
    assert "0 done, 3 skipped (already done), 1 failed, of 4 lines" in text
    jobs = _jobs(tmp_path)
    assert len(jobs["b"]) == 2 and jobs["b"][1].split("_")[0] != array
    assert {name: jobs[name] for name in "acd"} == {name: submitted[name] for name in "acd"}


def test_sigterm_cancels_the_jobs_and_a_rerun_finishes_them(slurm_cluster, tmp_path):
    hold = tmp_path / "hold"
    hold.write_text("")
    argfile = write_argfile(tmp_path, [("a", ["--label=a", f"--hold={hold}"])])
    folder = f"--slurm_folder={tmp_path / 'out.slurm'}"
    first = _driver(argfile, folder)
    _wait_for(lambda: (tmp_path / "out" / "a" / "started").exists(), first)
    job = _jobs(tmp_path)["a"][0]
    first.send_signal(signal.SIGTERM)
    text, _ = first.communicate(timeout=120)
    assert first.returncode == 130, text
    assert job not in batch_slurm.squeue_states([job])
    assert json.loads((tmp_path / "out" / "a.batch.json").read_text())["status"] == "stopped"
    hold.unlink()
    rerun = _driver(argfile, folder)
    text, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, text
    assert (tmp_path / "out" / "a" / "finished.txt").read_text() == "a\n"
    assert len(_jobs(tmp_path)["a"]) == 2


def test_local_executor_reattaches_through_the_batch_state(tmp_path):
    # The same submission and bookkeeping through submitit's local executor, so that
    # the code path is covered where no Slurm cluster can be started.
    hold = tmp_path / "hold"
    hold.write_text("")
    lines = batch.parse_lines(write_argfile(tmp_path, [
        ("a", ["--label=a", f"--hold={hold}"]), ("b", ["--fail", f"--hold={hold}"]),
        ("c", ["--label=c"])]).read_text())
    options = batch_slurm.SlurmOptions(folder=str(tmp_path / "out.slurm"), time_minutes=5,
                                       cluster="local")
    first = batch_slurm.SlurmEngine("fake_runner", options, poll_seconds=0.2)
    first.start(lines)
    submitted = _jobs(tmp_path)
    first.close()  # a driver gone: its jobs run on
    _wait_for(lambda: (tmp_path / "out" / "c" / "done.json").exists())

    second = batch_slurm.SlurmEngine("fake_runner", options, poll_seconds=0.2)
    threading.Timer(2.0, hold.unlink).start()
    summary = batch.drive(second, lines)
    assert sorted(second.queue.jobs) == []  # re-attached; submitted nothing
    assert _jobs(tmp_path) == submitted
    assert [line.number for line in summary.failed] == [2]
    assert sorted(line.number for line in summary.done + summary.skipped) == [1, 3]
    assert (tmp_path / "out" / "a" / "finished.txt").read_text() == "a\n"
    assert summary.exit_code == 1



def test_a_line_gets_its_whole_time_limit_and_a_timeout_says_so(slurm_cluster, tmp_path):
    # Slurm checks time limits every 30 s: line 1 runs past one check, well within its
    # minute. Line 2 would run forever: once it runs, its end time is moved to now, and
    # the next check ends it at its time limit.
    hold = tmp_path / "hold"
    hold.write_text("")
    lines = batch.parse_lines(write_argfile(tmp_path, [
        ("a", ["--label=a", "--sleep=32"]), ("b", ["--label=b", f"--hold={hold}"])])
        .read_text())
    options = batch_slurm.SlurmOptions(folder=str(tmp_path / "out.slurm"), time_minutes=1)

    def end_line_2_now():
        _wait_for(lambda: (tmp_path / "out" / "b" / "started").exists())
        subprocess.run(["scontrol", "update", f"JobId={_jobs(tmp_path)['b'][0]}",
                        f"EndTime={time.strftime('%Y-%m-%dT%H:%M:%S')}"], check=True)

    ender = threading.Thread(target=end_line_2_now, daemon=True)
    ender.start()
    summary = batch.drive(batch_slurm.SlurmEngine("fake_runner", options, poll_seconds=0.5),
                          lines)
    ender.join()
    assert [line.number for line in summary.done] == [1], summary.notes
    assert (tmp_path / "out" / "a" / "finished.txt").read_text() == "a\n"
    assert [line.number for line in summary.failed] == [2]
    job = _jobs(tmp_path)["b"][0]
    assert summary.notes[2] == (
        "timed out after the --slurm_time limit of 1 minute; raise --slurm_time (Slurm "
        f"job {job}, see {tmp_path / 'out' / 'b.log'})")
    assert json.loads((tmp_path / "out" / "b.batch.json").read_text())["status"] == "stopped"


def test_sbatch_refusals_are_one_error_and_leave_nothing(slurm_cluster, tmp_path):
    argfile = write_argfile(tmp_path, [("a", ["--label=a"])])
    folder = tmp_path / "jobs"
    folder.mkdir()
    for flags, message in [
            # sinfo tells first, in a dry run too.
            (["--slurm_partition=nonexistent", "--dry_run"],
             "error: --slurm_partition=nonexistent: no such partition; sinfo lists batch."),
            (["--slurm_partition=nonexistent"],
             "error: --slurm_partition=nonexistent: no such partition; sinfo lists batch."),
            # sbatch refuses what the cluster lacks.
            (["--gpus_per_line=1"],
             "error: sbatch refused the job array: Invalid generic resource (gres) "
             "specification; --gpus_per_line=1: the partition has no such GPUs; lower it "
             "or choose a --slurm_partition with GPUs. Nothing was submitted."),
            (["--gpus_per_line=1", f"--slurm_folder={folder}"],
             "error: sbatch refused the job array: Invalid generic resource (gres) "
             "specification; --gpus_per_line=1: the partition has no such GPUs; lower it "
             "or choose a --slurm_partition with GPUs. Nothing was submitted.")]:
        result = subprocess.run(
            [sys.executable, "-m", RUNNER, "--runner=fake_runner", f"--argfile={argfile}",
             "--backend=slurm"] + flags, capture_output=True, text=True, check=False)
        assert result.returncode == 2, result.stderr
        errors = [row for row in result.stderr.splitlines() if "error" in row.lower()]
        assert errors == [message], result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.slurm").exists() and not (tmp_path / "out" / "a").exists()
    assert sorted(os.listdir(folder)) in ([], [".lock"])  # no scripts or pickles


def test_default_folder_is_beside_the_experiment_whatever_the_lines():
    def folder(*dirs):
        return batch_slurm.default_folder([batch.Line(i, "", [], d)
                                           for i, d in enumerate(dirs, start=1)])

    assert folder("/exp/trial1", "/exp/trial2") == "/exp.slurm"
    assert folder("/exp/trial1") == "/exp.slurm"
    # Control lines: runs inside trial and level directories.
    assert folder("/exp/trial1/3/reuse1", "/exp/trial1/3/reuse2") == "/exp.slurm"
    assert folder("/exp/trial1/3/reuse1", "/exp/trial2/5/reuse1") == "/exp.slurm"
    assert folder("/data/runs/a", "/data/runs/b") == "/data/runs.slurm"
    with pytest.raises(ValueError, match="share no directory but /, .* --slurm_folder"):
        folder("/tmp/a", "/work/b")
