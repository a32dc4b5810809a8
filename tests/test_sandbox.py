"""The local runtime's sandbox command line (pure: nothing is run here but `sandbox_status`)."""

import sys
from pathlib import Path

from backend.runtimes.sandbox import (
    PRLIMIT,
    SERVING_PACKAGE,
    Limits,
    SandboxView,
    bwrap_command,
    deployment_view,
    interpreter_paths,
    sandbox_status,
)

SERVER = ["/venv/bin/python", "-m", "serving", "--uds", "/home/d/run/server.sock"]


def view(**changes) -> SandboxView:
    fields = {"read_only": (Path("/usr"), Path("/venv"), Path("/home/d/model"), Path("/tmp/h/d/keys")),
              "writable": (Path("/home/d/run"),), "environment": {"MODEL_DIR": "/home/d/model", "PYTHONPATH": "/src"},
              "workdir": Path("/home/d"), "limits": Limits(memory_bytes=2**30, processes=128),
              "links": (("usr/bin", Path("/bin")),)}
    return SandboxView(**{**fields, **changes})


def pairs(args: list[str], option: str) -> list[str]:
    """The values given to each `option` taking one value, in order."""
    return [args[i + 1] for i, arg in enumerate(args) if arg == option]


def binds(args: list[str], option: str) -> list[tuple[str, str]]:
    return [(args[i + 1], args[i + 2]) for i, arg in enumerate(args) if arg == option]


def test_the_server_runs_after_prlimit_after_every_option_with_its_own_command_line():
    args = bwrap_command("/usr/bin/bwrap", view(), SERVER)
    assert args[0] == "/usr/bin/bwrap"
    separator = args.index("--")
    assert args[separator + 1] == PRLIMIT
    assert args[separator + 1:][args[separator + 1:].index("--") + 1:] == SERVER
    assert args[separator + 2:separator + 6] == ["--data=1073741824", "--as=2147483648", "--nproc=128", "--nofile=4096"]


def test_every_namespace_is_new_the_user_is_nobody_and_no_capability_is_kept():
    args = bwrap_command("bwrap", view(), SERVER)
    for option in ("--unshare-user", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"):
        assert option in args
    assert pairs(args, "--uid") == ["65534"] and pairs(args, "--gid") == ["65534"]
    assert pairs(args, "--cap-drop") == ["ALL"]


def test_the_server_outlives_its_starter_and_stays_in_the_process_group_that_stop_ends():
    args = bwrap_command("bwrap", view(), SERVER)
    assert "--die-with-parent" not in args and "--new-session" not in args and "--as-pid-1" not in args


def test_the_environment_is_cleared_and_only_the_given_variables_are_set():
    args = bwrap_command("bwrap", view(), SERVER)
    assert args.index("--clearenv") < args.index("--setenv")
    assert binds(args, "--setenv") == [("MODEL_DIR", "/home/d/model"), ("PYTHONPATH", "/src")]


def test_only_run_is_writable_and_the_rest_is_shown_read_only_at_its_own_path():
    args = bwrap_command("bwrap", view(), SERVER)
    assert binds(args, "--bind") == [("/home/d/run", "/home/d/run")]
    assert sorted(binds(args, "--ro-bind")) == sorted((p, p) for p in ("/usr", "/venv", "/home/d/model",
                                                                        "/tmp/h/d/keys"))
    assert pairs(args, "--remount-ro") == ["/dev", "/"] and pairs(args, "--chdir") == ["/home/d"]
    assert ("usr/bin", "/bin") in binds(args, "--symlink")
    assert "--dev-bind" not in args and "/var/run/docker.sock" not in args


def test_its_own_sized_tmp_is_mounted_before_binds_under_tmp_so_they_stay_visible():
    args = bwrap_command("bwrap", view(tmp_bytes=5 * 2**20), SERVER)
    assert pairs(args, "--tmpfs") == ["/dev/shm", "/tmp"] and pairs(args, "--size") == [str(64 * 2**20), str(5 * 2**20)]
    tmpfs = args.index("/tmp")
    assert args.index("/tmp/h/d/keys") > tmpfs and args.index("/home/d/model") < tmpfs
    assert pairs(args, "--proc") == ["/proc"] and pairs(args, "--dev") == ["/dev"]


def test_limits_follow_the_deployments_memory_and_workers():
    limits = Limits.for_deployment(memory_gb=1.5, workers=2)
    assert limits.memory_bytes == int(1.5 * 2**30) and limits.address_space_bytes == int(2.5 * 2**30)
    assert limits.processes == 192 and limits.open_files == 4096


def test_a_deployments_view_shows_its_model_app_and_keys_folders_and_nothing_else_of_its_home(tmp_path):
    home = tmp_path / "home"
    folder = home / "deployments" / "d"
    for name in ("model", "app", "keys", "run"):
        (folder / name).mkdir(parents=True)
    (home / "registry.sqlite3").write_text("")
    shown = deployment_view(folder, {"MODEL_DIR": str(folder / "model")}, memory_gb=1.0, workers=1)
    assert {folder / "model", folder / "app", folder / "keys", SERVING_PACKAGE} <= set(shown.read_only)
    assert shown.writable == (folder / "run",) and shown.workdir == folder
    everything = [*shown.read_only, *shown.writable]
    assert not [p for p in everything if p in (home, folder, home / "registry.sqlite3", Path.home())
                or (home in p.parents and folder not in p.parents)]
    assert set(interpreter_paths()) <= set(shown.read_only) and Path(sys.prefix) in shown.read_only
    assert shown.environment["MODEL_DIR"] == str(folder / "model") and shown.environment["HOME"] == "/tmp"
    assert shown.limits.memory_bytes == 2**30 and shown.tmp_bytes == 2**28


def test_a_deployment_without_keys_gets_no_keys_folder(tmp_path):
    for name in ("model", "app", "run"):
        (tmp_path / name).mkdir()
    assert tmp_path / "keys" not in deployment_view(tmp_path, {}, memory_gb=1.0, workers=1).read_only


def test_no_bwrap_on_path_means_no_sandbox_and_says_how_to_get_one(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    status = sandbox_status()
    assert not status.available and "apt-get install bubblewrap" in status.reason


def test_this_machine_can_sandbox():
    status = sandbox_status()
    assert status.available, status.reason
