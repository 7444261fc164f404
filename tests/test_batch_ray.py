"""Argfile batches on a real Ray cluster (a local one on loopback, 2 CPUs)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO
from test_batch import start_driver, write_argfile

ray = pytest.importorskip("ray", reason='Ray is not installed: pip install ".[ray]"')

TESTS = os.path.join(REPO, "tests")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment():
    env = dict(os.environ)
    env["PYTHONPATH"] = TESTS + os.pathsep + env.get("PYTHONPATH", "")
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # One test cluster of our own, on this machine: no token to hand around.
    env["RAY_AUTH_MODE"] = "disabled"
    return env


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A Ray head on 127.0.0.1 with 2 CPUs, started (and stopped) by this fixture."""
    port = _free_port()
    temp = tmp_path_factory.mktemp("ray")
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
         "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
         "--include-dashboard=false", "--disable-usage-stats"],
        stdout=open(temp / "head.log", "w"), stderr=subprocess.STDOUT, env=_environment(),
        start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            check = subprocess.run(
                [sys.executable, "-c", f"import ray; ray.init(address={address!r}); "
                 "print(int(ray.cluster_resources().get('CPU', 0)))"],
                capture_output=True, text=True, env=_environment(), check=False)
            if check.returncode == 0 and check.stdout.strip().endswith("2"):
                break
            assert head.poll() is None and time.time() < deadline, (
                (temp / "head.log").read_text() + check.stderr[-2000:])
            time.sleep(1)
        yield address
    finally:
        # The head's process group is ours: the head, its raylet and workers.
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=3)
        except subprocess.TimeoutExpired:  # its GCS server can outlive a SIGTERM
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


def _driver(argfile, *flags):
    return start_driver(argfile, "--backend=ray", *flags, env=_environment())


def _record(tmp_path, name):
    path = tmp_path / "out" / f"{name}.batch.json"
    return json.loads(path.read_text()) if path.exists() else None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_failing_line_kill_midway_and_rerun(ray_cluster, tmp_path):
    hold = tmp_path / "hold"
    hold.write_text("")
    argfile = write_argfile(tmp_path, [("a", ["--label=a"]), ("b", ["--fail"]),
                                  ("c", ["--label=c", f"--hold={hold}"]),
                                  ("d", ["--label=d"])])
    # At most 2 lines in flight: a and b first, then c (held) and d.
    first = _driver(argfile, f"--ray_address={ray_cluster}", "--workers=2")
    started = tmp_path / "out" / "c" / "started"
    deadline = time.time() + 120
    while not (started.exists() and started.read_text() and (_record(tmp_path, "d") or {})
               .get("status") == "done"):
        assert first.poll() is None and time.time() < deadline, first.communicate()[0]
        time.sleep(0.1)
    runner_pid = int(started.read_text())
    first.send_signal(signal.SIGTERM)
    output, _ = first.communicate(timeout=120)
    assert first.returncode == 130, output
    assert "interrupted: 1 line(s) not finished" in output
    assert "2 done, 0 skipped (already done), 1 failed, of 4 lines" in output
    # The held line's runner is gone with its task, and its run is not done.
    deadline = time.time() + 30
    while _alive(runner_pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(runner_pid)
    assert not (tmp_path / "out" / "c" / "done.json").exists()
    assert _record(tmp_path, "c")["status"] == "stopped"
    assert (tmp_path / "out" / "c.log").read_text().splitlines()[-1].startswith(
        "===== stopped; the run is incomplete and is redone when the batch is rerun")
    assert _record(tmp_path, "b")["status"] == "failed"
    assert "failing on purpose" in (tmp_path / "out" / "b.log").read_text()
    stamps = {n: os.stat(tmp_path / "out" / n / "finished.txt").st_mtime_ns for n in "ad"}

    # The rerun finishes only what is missing (and retries the failing line).
    hold.unlink()
    rerun = _driver(argfile, f"--ray_address={ray_cluster}")
    output, _ = rerun.communicate(timeout=180)
    assert rerun.returncode == 1, output
    assert "1 done, 2 skipped (already done), 1 failed, of 4 lines" in output
    assert f"FAILED line 2: --output_dir={tmp_path / 'out' / 'b'} --fail" in output
    for name in "acd":
        assert (tmp_path / "out" / name / "finished.txt").read_text() == f"{name}\n"
        assert _record(tmp_path, name)["status"] == "done"
    for name, stamp in stamps.items():
        assert os.stat(tmp_path / "out" / name / "finished.txt").st_mtime_ns == stamp
    assert (tmp_path / "out" / "b.log").read_text().count("failing on purpose") == 2


def test_line_needing_more_than_any_node_is_one_error(ray_cluster, tmp_path):
    argfile = write_argfile(tmp_path, [("a", ["--label=a"])])
    process = _driver(argfile, f"--ray_address={ray_cluster}", "--cpus_per_line=3")
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 2, output
    assert ("error: --cpus_per_line=3 but no Ray node has more than 2 CPUs (the cluster "
            "has 2); lower --cpus_per_line.") in output
    assert not (tmp_path / "out" / "a").exists()



def test_without_an_address_the_batch_starts_ray_of_its_own(ray_cluster, tmp_path):
    # A cluster named by RAY_ADDRESS (as by a `ray start` on this machine) is not
    # joined: the batch starts a local instance with the CPUs it wants.
    env = _environment()
    env["RAY_ADDRESS"] = ray_cluster
    argfile = write_argfile(tmp_path, [("a", ["--label=a"])])
    process = start_driver(argfile, "--backend=ray", "--workers=1", env=env)
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 0, output
    assert "starting a local Ray instance with 1 CPUs" in output
    assert (tmp_path / "out" / "a" / "finished.txt").read_text() == "a\n"


def test_unreachable_address_is_one_error_and_signals_stop_the_connecting(tmp_path):
    argfile = write_argfile(tmp_path, [("a", ["--label=a"])])
    # A port bound on every interface and never listened on: connections to it are
    # refused, and no other process (another test worker, say) can take it meanwhile.
    held = socket.socket()
    held.bind(("", 0))
    closed = f"127.0.0.1:{held.getsockname()[1]}"
    env = _environment()
    env["RAY_ADDRESS"] = closed  # what --ray_address=auto follows first
    for address in (closed, "auto"):
        process = start_driver(argfile, "--backend=ray", f"--ray_address={address}",
                               env=env)
        try:
            output, _ = process.communicate(timeout=120)
        finally:
            if process.poll() is None:  # a driver that outlived the test must not linger
                process.kill()
                process.wait()
        assert process.returncode == 2, output
        errors = [row for row in output.splitlines() if "error" in row.lower()]
        # (Ray resolves 127.0.0.1 to this node's address, as the message then says.)
        assert len(errors) == 1 and errors[0].startswith(
            f"error: --ray_address={address}: no Ray cluster answers at "), output
        assert errors[0].endswith(
            f":{closed.split(':')[1]} (Connection refused); start the cluster (ray start "
            "--head) or correct --ray_address; without --ray_address the batch starts a "
            "local Ray instance of its own."), output
    # A port that accepts connections and never answers: connecting waits, and
    # Ctrl-C or SIGTERM ends the wait.
    with socket.socket() as silent:
        silent.bind(("", 0))  # every interface: Ray reaches 127.0.0.1 by this node's IP
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        for sig in (signal.SIGINT, signal.SIGTERM):
            process = _driver(argfile, f"--ray_address={address}")
            output = []
            for row in process.stdout:
                output.append(row)
                if "connecting to the Ray cluster" in row:
                    break
            time.sleep(0.5)
            process.send_signal(sig)
            try:
                rest, _ = process.communicate(timeout=60)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            assert process.returncode == 130, "".join(output) + rest
            assert "interrupted: 1 line(s) not finished" in rest
    held.close()
    assert not (tmp_path / "out" / "a").exists()


def test_a_killed_drivers_local_ray_stops_with_it(tmp_path):
    """SIGKILL to the driver: Ray's helpers and the line's runner stop with it (Ray's
    own agents used to outlive it by over a minute)."""
    from lottery_ticket.cli import reaper
    hold = tmp_path / "hold"
    hold.write_text("")
    argfile = write_argfile(tmp_path, [("c", ["--label=c", f"--hold={hold}"])])
    driver = start_driver(argfile, "--backend=ray", "--workers=1", env=_environment())
    started = tmp_path / "out" / "c" / "started"
    deadline = time.time() + 120
    while not (started.exists() and started.read_text()):
        assert driver.poll() is None and time.time() < deadline, driver.communicate()[0]
        time.sleep(0.1)
    helpers = reaper.descendants(driver.pid)
    runner_pid = int(started.read_text())
    assert runner_pid in helpers and len(helpers) > 3  # GCS, raylet, agents, workers, runner
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.time() + 30
    while any(_alive(pid) for pid in helpers) and time.time() < deadline:
        time.sleep(0.2)
    left = [open(f"/proc/{pid}/cmdline", "rb").read()[:80] for pid in helpers if _alive(pid)]
    assert left == []
    assert not (tmp_path / "out" / "c" / "done.json").exists()
