#!/usr/bin/env python3
"""Loads every document of `kiln export k8s` into the Kubernetes Python
client's models (Debian's python3-kubernetes) and checks what a scheduler
relies on. Usage: validate_k8s.py JOBS.yaml UNITS.json [QUEUE]"""
import json
import re
import sys

import kubernetes
import yaml

jobs_file, units_file = sys.argv[1], sys.argv[2]
queue = sys.argv[3] if len(sys.argv) > 3 else ""
units = json.load(open(units_file))["units"]
docs = [d for d in yaml.safe_load_all(open(jobs_file)) if d is not None]
api = kubernetes.client.ApiClient()
failures = []


def check(what, ok):
    if not ok:
        failures.append(what)


check(f"one Job per unit ({len(docs)} documents, {len(units)} units)", len(docs) == len(units))
label_value = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
for doc, unit in zip(docs, units):
    job = api._ApiClient__deserialize(doc, "V1Job")  # the client's own model loader
    name = job.metadata.name
    check(f"{name}: batch/v1 Job", job.api_version == "batch/v1" and job.kind == "Job")
    check(f"{name}: name is a DNS label", len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name))
    check(f"{name}: backoffLimit 0", job.spec.backoff_limit == 0)
    check(f"{name}: activeDeadlineSeconds", job.spec.active_deadline_seconds == unit["timeout_s"])
    pod = job.spec.template.spec
    check(f"{name}: restartPolicy Never", pod.restart_policy == "Never")
    c = pod.containers[0]
    check(f"{name}: smoke image by digest", c.image == unit["smoke_image"] and "@sha256:" in c.image)
    check(f"{name}: runs kiln-smoke-unit", c.command == ["/opt/kiln-smoke/kiln-smoke-unit"])
    check(f"{name}: nvidia.com/gpu limit", c.resources.limits == {"nvidia.com/gpu": str(unit["gpus"])})
    check(f"{name}: read-only root", c.security_context.read_only_root_filesystem is True)
    env = {e.name: e for e in c.env}
    check(f"{name}: node name from the downward API", env["KILN_NODE"].value_from.field_ref.field_path == "spec.nodeName")
    check(f"{name}: runner named", env["KILN_RUNNER"].value == unit["runner"])
    cc = unit["gpu_classes"][0][3:]
    sel = pod.node_selector or {}
    check(f"{name}: node selector on GFD compute capability",
          sel.get("nvidia.com/gpu.compute.major") == cc[:-1] and sel.get("nvidia.com/gpu.compute.minor") == cc[-1])
    if unit.get("gpu_product"):
        check(f"{name}: node selector on the product", sel.get("nvidia.com/gpu.product") == unit["gpu_product"])
    vols = {v.name: v for v in pod.volumes}
    mounts = {m.mount_path: m.name for m in c.volume_mounts}
    shm = vols[mounts["/dev/shm"]].empty_dir
    check(f"{name}: /dev/shm in memory, shm_size", shm.medium == "Memory" and shm.size_limit == str(unit["shm_size"]))
    check(f"{name}: /tmp writable", "/tmp" in mounts)
    labels = job.metadata.labels
    for k, v in labels.items():
        check(f"{name}: label {k}={v} is a valid label value", len(v) <= 63 and label_value.fullmatch(v))
    check(f"{name}: labels name the combination", labels["kiln.dev/combination"] == unit["combo"].lower().replace(".", "-"))
    check(f"{name}: label names the digest", unit["image_id"].split(":")[1].startswith(labels["kiln.dev/image-id"][7:]))
    ann = job.metadata.annotations
    check(f"{name}: full image id and digests in annotations",
          ann["kiln.dev/image-id"] == unit["image_id"] and ann["kiln.dev/image"] == unit["image"]
          and ann["kiln.dev/suite-hash"] == unit["suite_hash"])
    check(f"{name}: pod template carries the labels", job.spec.template.metadata.labels == labels)
    if queue:
        check(f"{name}: Kueue queue label", labels.get("kueue.x-k8s.io/queue-name") == queue)

for f in failures:
    print("FAIL:", f)
print(f"validate_k8s: {len(docs)} Job(s), {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
