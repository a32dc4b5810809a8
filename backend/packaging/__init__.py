"""Taking a registered model beyond this machine: manifests for a Kubernetes cluster (`kubernetes`),
KServe (`kserve`), and writing them as a folder or a zip (`writer`).

Every manifest is written against the self-contained image's contract (`modeldeck build MODEL:VERSION
--tag IMAGE`): the scoring server as uid/gid 10001 on 0.0.0.0:8000, /score, /health, /ready, /info,
/metrics and the Open Inference Protocol under /v2, a read-only root filesystem with a writable /tmp,
and the keys file at /etc/modeldeck/keys/keys.json when the image was built with key auth.
"""
