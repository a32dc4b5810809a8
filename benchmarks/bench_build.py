"""Self-contained images: `build` on a cached environment image (each build from scratch: the image is
removed between rounds, so no layer is reused), a hardened plain `docker run` of it to /ready, against
a warm ModelDeck deploy of the same model to Healthy in the same run; the size the model adds, and
`docker save | gzip` of the whole image.

Run: .venv/bin/python -m benchmarks.bench_build [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import time
import zlib

from backend.packaging.self_contained import IMAGE_PORT, build_image
from backend.registry import current_library_versions
from backend.runtimes.docker import DockerRuntime
from backend.runtimes.probe import free_port, readiness

from .bench_deploy import deploy_seconds
from .common import fmt, machine, scratch_deck, summary

TAG = f"modeldeck-bench/sklearn_mnist:{os.getpid()}"


def _run_seconds(client, tag: str) -> float:
    """A hardened `docker run -p 127.0.0.1:PORT:8000` of the image, polled to /ready."""
    port = free_port()
    started = time.perf_counter()
    container = client.containers.run(tag, detach=True, ports={f"{IMAGE_PORT}/tcp": ("127.0.0.1", port)},
                                      read_only=True, cap_drop=["ALL"], security_opt=["no-new-privileges"])
    try:
        while not readiness(port, timeout=0.5)[0]:
            time.sleep(0.05)
        return time.perf_counter() - started
    finally:
        container.remove(force=True, v=True)


def _save(client, tag: str) -> tuple[float, int]:
    """Seconds and gzipped bytes of `docker save` of the image (streamed, nothing written to disk)."""
    started = time.perf_counter()
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: the gzip format
    size = 0
    for chunk in client.images.get(tag).save(named=True):
        size += len(compressor.compress(chunk))
    size += len(compressor.flush())
    return time.perf_counter() - started, size


def run(rounds: int = 5) -> dict:
    deck = scratch_deck("docker")
    model = deck.registry.get("sklearn_mnist", 1)
    runtime = deck.runtimes.open("docker")
    assert isinstance(runtime, DockerRuntime)
    client = runtime.client
    environment = runtime.images.ensure(model, current_library_versions(), lambda _: None)
    builds, runs, deploys = [], [], []
    for i in range(rounds):
        if any(TAG in image.tags for image in client.images.list(name=TAG.split(":")[0])):
            client.images.remove(TAG, force=True)  # so no layer of the last round is reused
        builds.append(build_image(deck, model, TAG).seconds)
        runs.append(_run_seconds(client, TAG))
        deploys.append(deploy_seconds(deck, model, f"bench-build-{i}"))
    model_bytes = client.images.get(TAG).attrs["Size"] - client.images.get(environment).attrs["Size"]
    save_seconds, save_bytes = _save(client, TAG)
    client.images.remove(TAG, force=True)
    return {"build": summary(builds), "run": summary(runs), "deploy": summary(deploys),
            "model_layer_bytes": model_bytes, "image_bytes": client.images.get(environment).attrs["Size"] + model_bytes,
            "save_seconds": save_seconds, "save_gzip_bytes": save_bytes}


def report(results: dict) -> str:
    build, run_, deploy = results["build"], results["run"], results["deploy"]
    return "\n".join([
        "### Self-contained image (`build`) and a plain `docker run` of it",
        "",
        "| case | median | min | max | n |",
        "|---|---|---|---|---|",
        *(f"| {label} | {s['median']:.2f} s | {s['min']:.2f} s | {s['max']:.2f} s | {s['n']} |" for label, s in (
            ("build, environment image cached, model layer from scratch", build),
            ("hardened `docker run` of the built image to /ready", run_),
            ("baseline: warm ModelDeck deploy of the same model to Healthy", deploy))),
        "",
        f"`docker run` of the built image to /ready takes {run_['median'] / deploy['median']:.2f}x a warm deploy; "
        f"the model adds {results['model_layer_bytes'] / 1e6:.2f} MB to the {results['image_bytes'] / 1e6:,.0f} MB "
        f"image; `docker save | gzip` of the whole image: {results['save_gzip_bytes'] / 1e6:,.0f} MB in "
        f"{results['save_seconds']:.1f} s.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    results = run(args.rounds)
    print(f"build: {fmt(results['build'])}")
    print(f"docker run to /ready: {fmt(results['run'])}")
    print(f"warm deploy to Healthy: {fmt(results['deploy'])}")
    print(report(results))


if __name__ == "__main__":
    main()
