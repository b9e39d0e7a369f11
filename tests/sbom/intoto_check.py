#!/usr/bin/python3
"""The provenance kiln signs, checked with Debian's in-toto stack.

What applies (in-toto 1.3.1 and securesystemslib 0.26, Debian 12): in-toto's
models are Layout and Link (in_toto.models.layout/link) and `in-toto-verify`
verifies a supply-chain layout against link metadata; neither reads an
in-toto Statement v1 or a DSSE envelope (those models are in the separate
in-toto-attestation package, not in Debian 12). What does apply:
securesystemslib, the library in-toto signs and verifies with, verifies the
envelope's ECDSA signature over DSSE's pre-authentication encoding (an
implementation independent of kiln's OpenSSL code), and the Statement's
shape is checked here field by field against the in-toto Statement v1 and
SLSA provenance v1 specifications.

usage: intoto_check.py ENVELOPE.json PUBLIC_KEY.pem sha256:DIGEST
"""
import base64
import json
import sys

import in_toto  # noqa: F401 -- present: the check says which version ran
from securesystemslib.signer import Signature, SSlibKey


def fail(msg):
    print(f"intoto_check: {msg}", file=sys.stderr)
    sys.exit(1)


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def is_resource_descriptor(d):
    return isinstance(d, dict) and any(k in d for k in ("uri", "digest", "content"))


def main():
    env_path, pub_path, digest = sys.argv[1:4]
    env = json.load(open(env_path))
    payload = base64.b64decode(env["payload"])
    key = SSlibKey("00", "ecdsa", "ecdsa-sha2-nistp256", {"public": open(pub_path).read()})
    ok = False
    for s in env.get("signatures", []):
        try:
            key.verify_signature(Signature("00", base64.b64decode(s["sig"]).hex()), pae(env["payloadType"], payload))
            ok = True
        except Exception:  # securesystemslib raises for a bad signature
            pass
    if not ok:
        fail("securesystemslib: no signature verifies over the PAE")
    if env["payloadType"] != "application/vnd.in-toto+json":
        fail("payloadType is not application/vnd.in-toto+json")

    st = json.loads(payload)
    if st.get("_type") != "https://in-toto.io/Statement/v1":
        fail("_type is not https://in-toto.io/Statement/v1")
    subjects = st.get("subject")
    if not isinstance(subjects, list) or not subjects:
        fail("subject must be a non-empty list")
    for s in subjects:
        if not isinstance(s.get("name"), str) or not isinstance(s.get("digest"), dict) or not s["digest"]:
            fail("each subject needs a name and a digest set")
    if "sha256:" + subjects[0]["digest"].get("sha256", "") != digest:
        fail(f"subject is not {digest}")
    if st.get("predicateType") != "https://slsa.dev/provenance/v1" or not isinstance(st.get("predicate"), dict):
        fail("predicateType/predicate")
    bd = st["predicate"].get("buildDefinition", {})
    rd = st["predicate"].get("runDetails", {})
    if not isinstance(bd.get("buildType"), str) or not isinstance(bd.get("externalParameters"), dict):
        fail("SLSA v1: buildDefinition.buildType and externalParameters are required")
    if not isinstance(rd.get("builder", {}).get("id"), str):
        fail("SLSA v1: runDetails.builder.id is required")
    for d in bd.get("resolvedDependencies", []) + rd.get("byproducts", []):
        if not is_resource_descriptor(d):
            fail(f"not a ResourceDescriptor: {d}")
    names = [d.get("name") for d in bd.get("resolvedDependencies", [])]
    print(f"in-toto {in_toto.__version__}: statement OK (signature verified by securesystemslib; dependencies {names})")


main()
