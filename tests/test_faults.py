"""Faults and bad input: each ends in a clear error or a run recorded as failed, never
in a result that looks right, and nothing finished is changed.

One test per way a new user or a hostile tester got a silently wrong result or lost
data. Each checks the exit status, the one-line message, and the checksums of every
file of the finished runs before and after.
"""

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, checksums, synthetic_split
from lottery_ticket.datasets import registry as dataset_registry
from lottery_ticket.experiments import lottery
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import paths
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations.dataset_base import DatasetBase

RUNNERS = "lottery_ticket.mnist_fc.runners."
TINY = ["--training_len=iterations:100", "--test_interval=50", "--validate_interval=50",
        "--validation_size=1000", "--threads=1"]


def run(module, *flags, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", module, *flags], capture_output=True,
                          text=True, timeout=timeout, env=env)


def start(module, *flags, env=None):
    return subprocess.Popen([sys.executable, "-m", module, *flags], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def one_error(result, status, *fragments):
    """The process ended with `status` and one `error:` line holding every fragment."""
    assert result.returncode == status, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, fashion_mnist_dir):
    """A finished two-level trial (levels 0 and 1), made through the runner."""
    trial = str(tmp_path_factory.mktemp("faults") / "trial1")
    result = run(RUNNERS + "lottery_experiment", f"--output_dir={trial}",
                 f"--mnist_location={fashion_mnist_dir}", "--levels=1", "--seed=1", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return trial


@pytest.fixture
def unchanged(finished):
    """Asserts, after the test, that no file of the finished trial changed."""
    before = checksums(finished)
    yield finished
    assert checksums(finished) == before


# 1. A misspelt flag is refused before any work.
def test_misspelt_flags_are_refused_before_any_work(tmp_path, unchanged, fashion_mnist_dir):
    result = run(RUNNERS + "lottery_experiment", f"--output_dir={unchanged}", "--iteration=3",
                 f"--mnist_location={fashion_mnist_dir}")
    one_error(result, 2, "unknown flag --iteration; did you mean --iterations?")
    result = run(RUNNERS + "argfile_runner", "--worker=2", "--runner=train",
                 f"--argfile={tmp_path / 'none.args'}")
    one_error(result, 2, "--worker", "--workers")


# 2. Two runners on one directory: the second is refused, naming the first.
@pytest.mark.slow
def test_a_second_runner_on_the_same_trial_is_refused(tmp_path, fashion_mnist_dir):
    trial = str(tmp_path / "trial")
    common = [f"--output_dir={trial}", f"--mnist_location={fashion_mnist_dir}", "--levels=0",
              "--threads=1", "--test_interval=0", "--validate_interval=0"]
    # Long enough to still hold the lock while the second process imports TensorFlow.
    first = start(RUNNERS + "lottery_experiment", "--training_len=iterations:10000", *common)
    holder = os.path.join(trial, runs.LOCK_FILENAME)
    deadline = time.time() + 120
    while not os.path.exists(holder) and time.time() < deadline:
        time.sleep(0.05)
    assert os.path.exists(holder), first.communicate()[1][-2000:]
    second = run(RUNNERS + "lottery_experiment", "--training_len=iterations:100", *common)
    one_error(second, 2, "in use by another process", f"pid {first.pid} on host")
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    done = runs.read_done(paths.run(trial, 0))
    assert done["iterations"] == 10000  # the first runner's run, whole
    assert not os.path.exists(holder)  # released
    # Now free, the second command is refused for its other settings instead.
    before = checksums(trial)
    again = run(RUNNERS + "lottery_experiment", "--training_len=iterations:100", *common)
    one_error(again, 2, "config.training_len: saved ['iterations', 10000], asked "
                        "['iterations', 100]")
    assert checksums(trial) == before


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    directory = str(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from lottery_ticket.foundations import runs\n"
        f"with runs.lock({directory!r}):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(runs.LockedError, match=f"pid {holder.pid} on host"):
        with runs.lock(directory):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with runs.lock(directory):  # the dead holder's lock is gone with it
        pass


def test_done_json_never_replaces_another(tmp_path):
    runs.write_done(str(tmp_path), {"iterations": 1})
    with pytest.raises(FileExistsError, match="completed by another process"):
        runs.write_done(str(tmp_path), {"iterations": 2})
    assert runs.read_done(str(tmp_path))["iterations"] == 1
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


# 3. Divergence is recorded as such, never pruned from, and counted as a failure.
@pytest.mark.slow
def test_a_diverging_run_stops_and_is_recorded_as_diverged(tmp_path, fashion_mnist_dir):
    trial = str(tmp_path / "trial1")
    line = (f"--output_dir={trial} --mnist_location={fashion_mnist_dir} --levels=2 "
            "--learning_rate=1000 " + " ".join(TINY))
    argfile = tmp_path / "batch.args"
    argfile.write_text(line + "\n")
    batch = run(RUNNERS + "argfile_runner", "--runner=lottery_experiment",
                f"--argfile={argfile}")
    assert batch.returncode == 1, batch.stdout + batch.stderr[-2000:]
    assert "0 done, 0 skipped (already done), 1 failed, of 1 lines" in batch.stdout
    log = open(paths.log(trial)).read()
    assert "diverged at iteration" in log and "Traceback" not in log
    level0 = paths.run(trial, 0)
    assert not runs.is_complete(level0)
    record = runs.read_diverged(level0)
    assert record["iteration"] <= 100 and "loss" in record["reason"]
    assert not os.path.exists(paths.run(trial, 1))  # nothing pruned from it
    # The runner itself: exit 3 and one line.
    result = run(RUNNERS + "lottery_experiment", *line.split())
    one_error(result, 3, "diverged at iteration", "--learning_rate")


def test_non_finite_presets_are_refused(tmp_path, unchanged, fashion_mnist_dir):
    presets = tmp_path / "presets"
    network = save_restore.restore_network(paths.initial(paths.run(unchanged, 0)))
    network["layer1"][3, 4] = np.nan
    save_restore.save_network(str(presets), network)
    result = run(RUNNERS + "train", f"--output_dir={tmp_path / 'run'}", f"--presets={presets}",
                 f"--mnist_location={fashion_mnist_dir}", *TINY)
    one_error(result, 2, "preset for layer 'layer1'", "not finite")
    assert not os.path.exists(tmp_path / "run" / "initial")


# 4. The data set is part of a run's identity.
def test_resuming_on_other_data_is_refused(tmp_path, unchanged, fashion_mnist_dir):
    other = tmp_path / "other_data"
    shutil.copytree(fashion_mnist_dir, other)
    labels = other / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(labels.read_bytes()))
    data[8:] = bytes(reversed(data[8:]))  # same format, other labels
    labels.write_bytes(gzip.compress(bytes(data)))
    result = run(RUNNERS + "lottery_experiment", f"--output_dir={unchanged}",
                 f"--mnist_location={other}", "--levels=2", "--seed=1", *TINY)
    one_error(result, 2, "data.files.t10k-labels-idx1-ubyte.gz: saved")
    assert not os.path.exists(paths.run(unchanged, 2))
    # The same files elsewhere are the same data: where it lives is not identity.
    copy = tmp_path / "same_data"
    shutil.copytree(fashion_mnist_dir, copy)
    fingerprint = dataset_registry.fingerprint("mnist", str(copy))
    assert fingerprint == dataset_registry.fingerprint("mnist", fashion_mnist_dir)
    assert len(fingerprint["files"]) == 4


# 5. A directory that no run of this project started is never emptied.
def test_train_refuses_to_delete_files_it_did_not_make(tmp_path, fashion_mnist_dir):
    target = tmp_path / "mine"
    for name in ("final", "initial", "masks", "summaries"):
        (target / name).mkdir(parents=True)
        (target / name / "keep.txt").write_text(name)
    (target / "metrics.json").write_text("{\"mine\": 1}")
    before = checksums(target)
    result = run(RUNNERS + "train", f"--output_dir={target}",
                 f"--mnist_location={fashion_mnist_dir}", *TINY)
    one_error(result, 2, "no run of this project started there", "nothing is deleted")
    assert checksums(target) == before


@pytest.mark.parametrize("runner,where", [("train", ""), ("lottery_experiment", "0/lottery")])
def test_a_users_file_with_a_runs_name_is_not_replaced(tmp_path, fashion_mnist_dir, runner,
                                                       where):
    """A folder holding only a file named like a run's is no interrupted run."""
    target = tmp_path / "U"
    (target / where).mkdir(parents=True)
    (target / where / "metrics.json").write_text('{"my": "results"}')
    levels = ["--levels=0"] if runner == "lottery_experiment" else []
    result = run(RUNNERS + runner, f"--output_dir={target}", *levels,
                 f"--mnist_location={fashion_mnist_dir}", *TINY)
    one_error(result, 2, str(target), "nothing is deleted", "Move those files away")
    assert (target / where / "metrics.json").read_text() == '{"my": "results"}'


# 6. A control trains like its ticket (the README's command, no --training_len).
@pytest.mark.slow
def test_a_control_without_training_flags_trains_like_its_ticket(tmp_path, unchanged):
    ticket = paths.run(unchanged, 1)
    run_dir = str(tmp_path / "reinit1")
    result = run(RUNNERS + "reinitialize", f"--output_dir={run_dir}", "--mode=reinit",
                 f"--masks={paths.masks(ticket)}", "--seed=1001", "--threads=1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert runs.read_done(run_dir)["iterations"] == 100
    refused = run(RUNNERS + "reinitialize", f"--output_dir={tmp_path / 'reinit2'}",
                  f"--masks={paths.masks(ticket)}", "--training_len=iterations:50000")
    one_error(refused, 2, "--training_len", "--override=training_len")


# 7. A masks or presets directory missing a layer.
@pytest.mark.parametrize("kind", ["masks", "presets"])
def test_a_missing_layer_file_is_named(tmp_path, unchanged, fashion_mnist_dir, kind):
    partial = tmp_path / kind
    source = paths.masks if kind == "masks" else paths.initial
    shutil.copytree(source(paths.run(unchanged, 1)), partial)
    os.remove(partial / "layer1.npy")
    result = run(RUNNERS + "train", f"--output_dir={tmp_path / 'run'}", f"--{kind}={partial}",
                 f"--mnist_location={fashion_mnist_dir}", *TINY)
    one_error(result, 2, f"the {kind} have no entry for layer(s) ['layer1']", "layer1.npy")
    assert not os.path.exists(tmp_path / "run" / "initial")


# 9. Results honour the umask.
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_result_files_honour_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        save_restore.write_json(str(tmp_path / "a.json"), {"a": 1})
        save_restore.save_network(str(tmp_path / "net"), {"w": np.ones(2)})
        runs.write_done(str(tmp_path), {"iterations": 1})
    finally:
        os.umask(previous)
    for path in (tmp_path / "a.json", tmp_path / "net" / "w.npy", tmp_path / "done.json"):
        assert os.stat(path).st_mode & 0o777 == mode, path


# 10. Every setting is checked before level 0 trains.
@pytest.mark.parametrize("percents, message", [
    ("{'layer0': 0.2, 'layer9': 0.2}", "prune_percents names layer(s) ['layer9']"),
    ("{}", "prune_percents {} must be a non-empty dict"),
    ("{'layer0': 1.5}", "prune_percents['layer0'] is 1.5"),
    ("0.2", "must be a non-empty dict"),
])
def test_prune_percents_are_checked_before_training(tmp_path, fashion_mnist_dir, percents,
                                                    message):
    trial = tmp_path / "trial"
    result = run(RUNNERS + "lottery_experiment", f"--output_dir={trial}",
                 f"--prune_percents={percents}", f"--mnist_location={fashion_mnist_dir}",
                 *TINY)
    one_error(result, 2, message)
    assert not os.path.exists(paths.run(str(trial), 0))


# 11. A batch line is done only while its run is.
def test_a_run_deleted_after_its_batch_is_run_again(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.path.join(REPO, "tests"))
    argfile = tmp_path / "batch.args"
    argfile.write_text(f"--output_dir={tmp_path / 'a'} --label=a\n"
                       f"--output_dir={tmp_path / 'b'} --label=b\n")
    command = [RUNNERS + "argfile_runner", "--runner=fake_runner", f"--argfile={argfile}"]
    assert run(*command).returncode == 0
    shutil.rmtree(tmp_path / "a")
    again = run(*command)
    assert again.returncode == 0, again.stderr
    assert "1 done, 1 skipped (already done), 0 failed, of 2 lines" in again.stdout
    assert (tmp_path / "a" / "finished.txt").read_text() == "a\n"


# 12. One line instead of a traceback.
def test_labels_the_model_cannot_output_are_named(tmp_path):
    def eleven_classes(location, *, flatten=True, validation_size=0, batch_size=20,
                       train_order_seed=0):
        x, y = synthetic_split(200, 1)
        y[0] = 10
        return DatasetBase((x, y), batch_size, synthetic_split(50, 2),
                           train_order_seed=train_order_seed)

    dataset_registry.DATASETS.register("eleven_classes",
                                       dataset_registry.DatasetSpec(eleven_classes),
                                       replace=True)
    config = ExperimentConfig().replace(dataset="eleven_classes", data_location="unused",
                                        validation_size=0, training_len=("iterations", 5),
                                        levels=0)
    with pytest.raises(ValueError, match=r"train labels run from 0 to 10, but the model "
                                         r"has 10 outputs"):
        lottery.run_trial(str(tmp_path / "trial"), config)
    assert not os.path.exists(tmp_path / "trial" / "0")


def test_unknown_dataset_in_the_downloader_is_one_line(tmp_path):
    result = run("lottery_ticket.mnist_fc.download_data", f"--location={tmp_path}",
                 "--dataset=cifar")
    one_error(result, 2, "unknown dataset 'cifar'", "Registered: cifar10, fashion_mnist")


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_the_rerun_resumes(tmp_path, fashion_mnist_dir):
    trial = str(tmp_path / "trial")
    flags = [f"--output_dir={trial}", f"--mnist_location={fashion_mnist_dir}", "--levels=1",
             "--threads=1", "--training_len=iterations:3000", "--test_interval=0",
             "--validate_interval=0"]
    process = start(RUNNERS + "lottery_experiment", *flags)
    marker = os.path.join(paths.run(trial, 0), runs.MARKER_FILENAME)
    deadline = time.time() + 120
    while not os.path.exists(marker) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    assert "rerunning the same command resumes" in err.strip().splitlines()[-1]
    assert not runs.is_complete(paths.run(trial, 0))
    # A temporary file left by a kill mid-write is removed when the run is redone.
    leftover = os.path.join(paths.initial(paths.run(trial, 0)), ".layer0.npy.x.tmp")
    with open(leftover, "wb") as f:
        f.write(b"half")
    again = run(RUNNERS + "lottery_experiment", *flags)
    assert again.returncode == 0, again.stderr[-3000:]
    assert runs.is_complete(paths.run(trial, 1))
    assert not os.path.exists(leftover)


def test_the_downloader_names_every_missing_file_at_once(tmp_path, mnist_mirror):
    url, served = mnist_mirror
    os.remove(served / "t10k-labels-idx1-ubyte.gz")
    result = run("lottery_ticket.mnist_fc.download_data", f"--location={tmp_path / 'out'}",
                 f"--base_url={url}")
    one_error(result, 2, "2 of 4 files could not be downloaded")
    assert "train-images-idx3-ubyte.gz" in result.stderr
    assert "t10k-labels-idx1-ubyte.gz" in result.stderr
    # The two that exist were fetched, checked and kept.
    assert sorted(os.listdir(tmp_path / "out")) == ["t10k-images-idx3-ubyte.gz",
                                                    "train-labels-idx1-ubyte.gz"]


def test_a_local_directory_is_a_mirror(tmp_path, fashion_mnist_dir):
    result = run("lottery_ticket.mnist_fc.download_data", f"--location={tmp_path / 'out'}",
                 "--dataset=mnist", f"--base_url={fashion_mnist_dir}")
    # Fashion-MNIST's files are not MNIST's: every checksum is named, nothing is kept.
    one_error(result, 2, "4 of 4 files could not be downloaded")
    assert result.stderr.count("checksum") == 4 and "file://" in result.stderr
    assert os.listdir(tmp_path / "out") == []


# 13. Progress lines, and no CUDA-probe noise on a machine without a GPU.
def test_progress_lines_say_the_level_and_the_eta(unchanged, fashion_mnist_dir, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = run(RUNNERS + "lottery_experiment", f"--output_dir={tmp_path / 't'}",
                 f"--mnist_location={fashion_mnist_dir}", "--levels=1", *TINY, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lottery level 0 of 1 | iteration 100/100" in result.stderr
    assert "(whole trial 0:00:" in result.stderr  # level 0's line: level 1 is to come
    assert "lottery level 1 of 1 | iteration 100/100" in result.stderr
    if not os.path.exists("/dev/nvidia0") and shutil.which("nvidia-smi") is None:
        assert "cuInit" not in result.stderr and "absl::InitializeLog" not in result.stderr
    assert json.loads(open(paths.done(paths.run(str(tmp_path / "t"), 0))).read())[
        "iterations"] == 100


# Controls from Python are held to their ticket too (settings and data).
def test_a_control_from_python_must_match_its_ticket(tmp_path, unchanged, fashion_mnist_dir):
    from lottery_ticket.experiments import control_runs
    masks = paths.masks(paths.run(unchanged, 1))
    ticket = control_runs.ticket_config(paths.run(unchanged, 1))
    assert control_runs.resolve(masks) == ticket
    longer = ticket.replace(training_len=("iterations", 50000))
    with pytest.raises(ValueError, match=r"--training_len: ticket \('iterations', 100\)"):
        control_runs.reinitialize(str(tmp_path / "reinit1"), masks, config=longer)
    assert control_runs.resolve(masks, longer, override=["training_len"]) == longer
    # Other data under the same name: refused, naming both fingerprints.
    other = tmp_path / "other_data"
    shutil.copytree(fashion_mnist_dir, other)
    labels = other / "train-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(labels.read_bytes()))
    data[8:] = bytes(reversed(data[8:]))
    labels.write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(ValueError, match="is not the data the ticket"):
        control_runs.rearrange(str(tmp_path / "rearrange1"), masks,
                               paths.initial(paths.run(unchanged, 1)),
                               config=ticket.replace(data_location=str(other)))
    assert not os.path.exists(tmp_path / "reinit1") and not os.path.exists(
        tmp_path / "rearrange1")


# A finished lottery trial in a batch is skipped; a level deleted by hand is redone.
@pytest.mark.slow
def test_a_batch_skips_a_finished_trial_until_a_level_is_deleted(tmp_path, fashion_mnist_dir):
    trial = tmp_path / "trial1"
    argfile = tmp_path / "lottery.args"
    argfile.write_text(f"--output_dir={trial} --mnist_location={fashion_mnist_dir} "
                       f"--levels=1 {' '.join(TINY)}\n")
    command = [RUNNERS + "argfile_runner", "--runner=lottery_experiment",
               f"--argfile={argfile}"]
    assert run(*command).returncode == 0
    again = run(*command)
    assert "0 done, 1 skipped (already done), 0 failed, of 1 lines" in again.stdout
    level0 = checksums(paths.run(str(trial), 0))
    shutil.rmtree(paths.run(str(trial), 1))
    third = run(*command)
    assert "1 done, 0 skipped (already done), 0 failed, of 1 lines" in third.stdout
    assert runs.is_complete(paths.run(str(trial), 1))
    assert checksums(paths.run(str(trial), 0)) == level0


# Found by a hostile probe.
def test_controls_refuse_what_does_not_belong_to_a_ticket(tmp_path, unchanged):
    from lottery_ticket.experiments import control_runs
    level0, level1 = paths.run(unchanged, 0), paths.run(unchanged, 1)
    # Masks outside any complete run: no ticket to train like.
    loose = tmp_path / "loose_masks"
    shutil.copytree(paths.masks(level1), loose)
    result = run(RUNNERS + "rearrange", f"--output_dir={tmp_path / 'r1'}", f"--masks={loose}",
                 f"--presets={paths.initial(level1)}")
    one_error(result, 2, "is not the masks/ directory of a complete run")
    # Initial weights of another level: 0 where these masks keep weights.
    with pytest.raises(ValueError, match="look like another run's initial weights"):
        control_runs.reinitialize(str(tmp_path / "reuse1"), paths.masks(level0),
                                  paths.initial(level1), mode="reuse")
    # Masks that are not 0/1.
    halves = {name: mask * 0.5 for name, mask in
              save_restore.restore_network(paths.masks(level1)).items()}
    with pytest.raises(ValueError, match="values other than 0 and 1"):
        control_runs.rearrange(str(tmp_path / "rearrange1"), halves, paths.initial(level1),
                               config=control_runs.ticket_config(level1))
    # A control named like a lottery run, in a level directory.
    result = run(RUNNERS + "reinitialize", f"--output_dir={unchanged}/1/lottery2",
                 f"--masks={paths.masks(level1)}")
    one_error(result, 2, "a reinit run must be named reinit{run_id}")
    assert not os.path.exists(os.path.join(unchanged, "1", "lottery2"))


def test_an_output_path_that_cannot_be_made_is_one_line(tmp_path, fashion_mnist_dir):
    (tmp_path / "a_file").write_text("x")
    result = run(RUNNERS + "lottery_experiment", f"--output_dir={tmp_path / 'a_file' / 'sub'}",
                 f"--mnist_location={fashion_mnist_dir}", *TINY)
    one_error(result, 2, "a_file")
    result = run(RUNNERS + "lottery_experiment", f"--output_dir={tmp_path / 'a_file'}",
                 f"--mnist_location={fashion_mnist_dir}", *TINY)
    one_error(result, 2, "is a file, not a directory")


def test_a_full_disk_says_so_and_the_rerun_resumes_bit_identically(tmp_path, small_disk,
                                                                     fashion_mnist_dir):
    """LeNet-300-100's initial/ and masks/ (2 x 1.06 MB) do not fit on 2 MB."""
    flags = [f"--mnist_location={fashion_mnist_dir}", "--seed=3", *TINY]
    output = small_disk / "run"
    full = run(RUNNERS + "train", f"--output_dir={output}", *flags)
    line = one_error(full, 2, "the disk is full", str(output), "MB free there",
                     "the run needs about 4.", "rerun the same command")
    assert "requested and" not in line
    assert not runs.is_complete(str(output))
    assert not [name for _, _, names in os.walk(output) for name in names
                if name.endswith(".tmp")]
    # Space freed (the file system grown): the same command resumes and finishes.
    grown = subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)],
                           capture_output=True, text=True)
    assert grown.returncode == 0, grown.stderr
    again = run(RUNNERS + "train", f"--output_dir={output}", *flags)
    assert again.returncode == 0, again.stderr[-3000:]
    reference = tmp_path / "reference"
    assert run(RUNNERS + "train", f"--output_dir={reference}", *flags).returncode == 0
    for part in ("initial", "masks", "final"):
        for name in os.listdir(reference / part):
            assert (output / part / name).read_bytes() == (reference / part / name).read_bytes()


def test_numpys_short_write_is_a_full_disk(tmp_path):
    assert save_restore.is_disk_full(OSError("30000 requested and 23520 written"))
    assert not save_restore.is_disk_full(OSError("something else"))
    assert not save_restore.is_disk_full(ValueError("30000 requested and 23520 written"))


def test_a_finished_trial_reads_back_from_a_read_only_tree(tmp_path, finished, read_only,
                                                           fashion_mnist_dir):
    """Rerunning a finished trial's command reads it back: no lock needs writing."""
    copy = tmp_path / "ro" / "trial1"
    shutil.copytree(finished, copy)
    before = checksums(copy)
    read_only(tmp_path / "ro")
    result = run(RUNNERS + "lottery_experiment", f"--output_dir={copy}",
                 f"--mnist_location={fashion_mnist_dir}", "--levels=1", "--seed=1", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert checksums(copy) == before
    # Asking for more than the tree holds fails on the first file, in one line.
    more = run(RUNNERS + "lottery_experiment", f"--output_dir={copy}",
               f"--mnist_location={fashion_mnist_dir}", "--levels=2", "--seed=1", *TINY)
    one_error(more, 2, "Read-only file system")
    assert checksums(copy) == before


def test_a_holder_name_left_by_a_kill_goes_with_the_next_run(tmp_path, finished,
                                                              fashion_mnist_dir):
    copy = tmp_path / "trial1"
    shutil.copytree(finished, copy)
    level1 = paths.run(str(copy), 1)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from lottery_ticket.foundations import runs\n"
        f"with runs.lock({level1!r}):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    stale = os.path.join(level1, runs.LOCK_FILENAME)
    assert os.path.exists(stale)  # the kill left it
    result = run(RUNNERS + "lottery_experiment", f"--output_dir={copy}",
                 f"--mnist_location={fashion_mnist_dir}", "--levels=1", "--seed=1", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not os.path.exists(stale)
    assert runs.is_complete(level1)


def test_a_data_location_that_is_a_file_says_so(tmp_path, fashion_mnist_dir):
    images = os.path.join(fashion_mnist_dir, "train-images-idx3-ubyte.gz")
    result = run(RUNNERS + "train", f"--output_dir={tmp_path / 'run'}",
                 f"--mnist_location={images}", *TINY)
    one_error(result, 2, f"the data location {images} is a file, not a directory",
              f"e.g. {fashion_mnist_dir}")
    assert not (tmp_path / "run").exists()
