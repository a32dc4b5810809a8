"""Deploy to Healthy on the Docker runtime: cold (no environment image yet, wheels cached) and warm
(the environment image exists), in this process and as the whole `modeldeck deploy` process (Python's
start-up and imports included: what a user waits for), against the floor of a bare `docker run` of the
same image to /ready.

Run: .venv/bin/python -m benchmarks.bench_deploy [--cold N] [--warm N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backend.deployments import DEFAULT_SCRIPT
from backend.registry import current_library_versions
from backend.runtimes.base import SCORING_PORT
from backend.runtimes.docker import DATA_DIR, DockerRuntime
from backend.runtimes.environment_images import requirements_for
from backend.runtimes.probe import readiness

from .common import fmt, machine, scratch_deck, summary


def deploy_seconds(deck, model, name: str) -> float:
    started = time.perf_counter()
    deck.deployments.deploy_and_wait(model, name, timeout=600, poll_seconds=0.05)
    seconds = time.perf_counter() - started
    deck.deployments.delete(name)
    return seconds


def process_seconds(deck, name: str) -> float:
    """The whole `python -m backend deploy sklearn_mnist:1 --name NAME` process, start to exit (Healthy)."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "MODELDECK_HOME": str(deck.settings.home), "MODELDECK_RUNTIME": "docker",
           "MODELDECK_AUTO_TRAIN": "0", "PYTHONPATH": str(root)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "backend", "deploy", "sklearn_mnist:1", "--name", name], env=env, cwd=root,
                   check=True, capture_output=True, timeout=600)
    seconds = time.perf_counter() - started
    deck.deployments.delete(name)
    return seconds


def _bare_run_seconds(client, image: str, folder: Path) -> float:
    """`docker run` of the same image serving the same model and script (bind-mounted read-only, as a
    deployment has them) on a published port, polled to /ready: what any tool would pay."""
    def bind(sub: str) -> dict:
        return {"Type": "bind", "Source": str(folder / sub), "Target": f"{DATA_DIR}/{sub}", "ReadOnly": True}

    started = time.perf_counter()
    container = client.containers.run(
        image, ["python", "-m", "serving", "--script", f"{DATA_DIR}/app/score.py", "--model-dir", f"{DATA_DIR}/model",
                "--host", "0.0.0.0", "--port", str(SCORING_PORT)],
        ports={f"{SCORING_PORT}/tcp": ("127.0.0.1", None)}, mounts=[bind("model"), bind("app")], detach=True)
    try:
        container.reload()
        port = int(container.attrs["NetworkSettings"]["Ports"][f"{SCORING_PORT}/tcp"][0]["HostPort"])
        deadline = time.monotonic() + 120
        while not readiness(port, timeout=0.5)[0]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bare container did not get ready: {container.logs(tail=20).decode()}")
            time.sleep(0.05)
        return time.perf_counter() - started
    finally:
        container.remove(force=True, v=True)


def run(cold: int = 3, warm: int = 5) -> dict:

    deck = scratch_deck("docker")
    model = deck.registry.get("sklearn_mnist", 1)
    runtime = deck.runtimes.open("docker")
    assert isinstance(runtime, DockerRuntime)
    client, images = runtime.client, runtime.images
    # Build once first, so the wheels are cached and "cold" measures a build from cached wheels.
    tag = images.ensure(model, current_library_versions(), lambda _: None)
    cold_times = []
    for i in range(cold):
        client.images.remove(tag, force=True)
        cold_times.append(deploy_seconds(deck, model, f"bench-cold-{i}"))
    warm_times = [deploy_seconds(deck, model, f"bench-warm-{i}") for i in range(warm)]
    process_times = [process_seconds(deck, f"bench-process-{i}") for i in range(warm)]
    with tempfile.TemporaryDirectory(dir=deck.settings.home) as tmp:  # under the home: a folder the engine can mount
        folder = Path(tmp)
        deck.registry.materialize(model, folder / "model")
        (folder / "app").mkdir()
        (folder / "app" / "score.py").write_bytes(DEFAULT_SCRIPT.read_bytes())
        for path in (folder, *folder.rglob("*")):  # the image's server user reads them
            path.chmod(0o755 if path.is_dir() else 0o644)
        bare_times = [_bare_run_seconds(client, tag, folder) for _ in range(warm)]
    results = {"cold": summary(cold_times) if cold_times else None, "warm": summary(warm_times), "bare": summary(bare_times),
               "process": summary(process_times),
               "requirements": requirements_for(model, current_library_versions(), "").strip()}
    return results


def report(results: dict) -> str:
    cold, warm, bare, process = results["cold"], results["warm"], results["bare"], results["process"]
    return "\n".join([
        "### Deploy to Healthy (Docker runtime)",
        "",
        "| case | median | min | max | n |",
        "|---|---|---|---|---|",
        *(f"| {label} | {s['median']:.2f} s | {s['min']:.2f} s | {s['max']:.2f} s | {s['n']} |" for label, s in (
            ("cold: environment image built (wheels cached)", cold),
            ("warm: environment image reused", warm),
            ("warm, the whole `modeldeck deploy` process (start-up and imports included)", process),
            ("floor: a bare `docker run` of the same image and files to /ready", bare)) if s is not None),
        "",
        (f"Warm is {cold['median'] / warm['median']:.1f}x faster than cold; " if cold else "Not measured cold; ")
        + "warm costs "
        f"{warm['median'] / bare['median']:.2f}x the bare-run floor, the whole process "
        f"{process['median'] / bare['median']:.2f}x.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold", type=int, default=3,
                        help="0: no cold case (it removes the environment image, which other users of the engine share)")
    parser.add_argument("--warm", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    results = run(args.cold, args.warm)
    if results["cold"] is not None:
        print(f"cold deploy to Healthy: {fmt(results['cold'])}")
    print(f"warm deploy to Healthy: {fmt(results['warm'])}")
    print(f"warm, whole `modeldeck deploy` process: {fmt(results['process'])}")
    print(f"bare docker run to /ready: {fmt(results['bare'])}")
    print(report(results))


if __name__ == "__main__":
    main()
