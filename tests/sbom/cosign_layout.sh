#!/usr/bin/env bash
# cosign's key-based layout, checked without cosign (not in Debian 12) and
# without kiln: the manifests under sha256-<hex>.sig / .att read with curl
# and jq, the signatures verified with `openssl dgst -verify`.
#   cosign_layout.sh check  REGISTRY REPO DIGEST PUB.pem WORKDIR
#   cosign_layout.sh tamper REGISTRY REPO DIGEST WORKDIR   (rewrites the
#     provenance attestation's payload, keeping its signature)
# Layout (sigstore/cosign pkg/oci/static/signature.go, pkg/types/media.go,
# pkg/oci/remote/remote.go): docs/sbom.md "cosign's layout".
set -euo pipefail
mode=$1 registry=$2 repo=$3 digest=$4
hex=${digest#sha256:}
base="http://$registry/v2/$repo"
accept='Accept: application/vnd.oci.image.manifest.v1+json'
fail() { echo "cosign_layout: $*" >&2; exit 1; }

# DSSE's pre-authentication encoding: "DSSEv1 <len> <type> <len> <payload>".
pae() {  # TYPE PAYLOAD_FILE
  printf 'DSSEv1 %d %s %d ' "${#1}" "$1" "$(stat -c %s "$2")"
  cat "$2"
}

if [[ $mode == check ]]; then
  pub=$5 work=$6
  mkdir -p "$work"
  # .sig: one simple-signing layer, its signature in the annotation.
  curl -sf -H "$accept" "$base/manifests/sha256-$hex.sig" >"$work/sig.json" || fail "no sha256-$hex.sig"
  jq -e '.mediaType == "application/vnd.oci.image.manifest.v1+json" and .config.mediaType == "application/vnd.oci.image.config.v1+json"' "$work/sig.json" >/dev/null || fail ".sig manifest/config media types"
  jq -e '[.layers[] | select(.mediaType == "application/vnd.dev.cosign.simplesigning.v1+json")] | length >= 1' "$work/sig.json" >/dev/null || fail ".sig has no simplesigning layer"
  layer=$(jq -r '[.layers[] | select(.mediaType == "application/vnd.dev.cosign.simplesigning.v1+json")][-1].digest' "$work/sig.json")
  jq -r "[.layers[] | select(.digest == \"$layer\")][0].annotations[\"dev.cosignproject.cosign/signature\"]" "$work/sig.json" | base64 -d >"$work/sig.bin"
  curl -sf "$base/blobs/$layer" >"$work/payload.json"
  jq -e --arg d "$digest" '.critical.type == "cosign container image signature" and .critical.image["docker-manifest-digest"] == $d and (.critical.identity["docker-reference"] | endswith("'"$repo"'"))' "$work/payload.json" >/dev/null || fail "simple signing payload"
  openssl dgst -sha256 -verify "$pub" -signature "$work/sig.bin" "$work/payload.json" | grep -q "Verified OK" || fail ".sig signature does not verify"
  # .att: DSSE envelopes, predicateType annotations, in-toto statements about the digest.
  curl -sf -H "$accept" "$base/manifests/sha256-$hex.att" >"$work/att.json" || fail "no sha256-$hex.att"
  for pt in https://slsa.dev/provenance/v1 https://spdx.dev/Document https://kiln.invalid/verification/v1; do
    l=$(jq -r --arg pt "$pt" '[.layers[] | select(.mediaType == "application/vnd.dsse.envelope.v1+json" and .annotations.predicateType == $pt)][-1].digest // empty' "$work/att.json")
    [[ -n $l ]] || fail ".att has no $pt"
    curl -sf "$base/blobs/$l" >"$work/env.json"
    jq -e '.payloadType == "application/vnd.in-toto+json"' "$work/env.json" >/dev/null || fail "$pt: payloadType"
    jq -r .payload "$work/env.json" | base64 -d >"$work/statement.json"
    jq -e --arg h "$hex" --arg pt "$pt" '._type == "https://in-toto.io/Statement/v1" and .predicateType == $pt and .subject[0].digest.sha256 == $h' "$work/statement.json" >/dev/null || fail "$pt: statement"
    jq -r '.signatures[0].sig' "$work/env.json" | base64 -d >"$work/env.sig"
    pae application/vnd.in-toto+json "$work/statement.json" >"$work/pae.bin"
    openssl dgst -sha256 -verify "$pub" -signature "$work/env.sig" "$work/pae.bin" | grep -q "Verified OK" || fail "$pt: DSSE signature"
    if [[ $pt == https://slsa.dev/provenance/v1 ]]; then
      # Debian's in-toto stack (scripts/install-deps.sh): what of it applies, tests/sbom/intoto_check.py says.
      if /usr/bin/python3 -c 'import in_toto, securesystemslib' 2>/dev/null; then
        /usr/bin/python3 "$(dirname "$0")/intoto_check.py" "$work/env.json" "$pub" "$digest" || fail "$pt: in-toto check"
      else
        echo "in-toto (Debian package) not installed: its check skipped"
      fi
    fi
  done
  echo "cosign layout OK"
elif [[ $mode == tamper ]]; then
  work=$5
  mkdir -p "$work"
  curl -sf -H "$accept" "$base/manifests/sha256-$hex.att" >"$work/att.json"
  l=$(jq -r '[.layers[] | select(.annotations.predicateType == "https://slsa.dev/provenance/v1")][-1].digest' "$work/att.json")
  curl -sf "$base/blobs/$l" >"$work/env.json"
  # The statement says another builder; the signature is left as it was.
  jq -r .payload "$work/env.json" | base64 -d | jq -c '.predicate.runDetails.builder.id = "https://evil.invalid/"' >"$work/forged.json"
  jq -c --arg p "$(base64 -w0 "$work/forged.json")" '.payload = $p' "$work/env.json" >"$work/forged-env.json"
  ndig="sha256:$(sha256sum "$work/forged-env.json" | cut -d' ' -f1)"
  loc=$(curl -sf -X POST -D - -o /dev/null "$base/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  [[ $loc == http* ]] || loc="http://$registry$loc"
  sep='?'; [[ $loc == *\?* ]] && sep='&'
  curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$work/forged-env.json" "$loc${sep}digest=$ndig" >/dev/null
  size=$(stat -c %s "$work/forged-env.json")
  jq -c --arg old "$l" --arg new "$ndig" --argjson size "$size" \
    '.layers |= map(if .digest == $old then .digest = $new | .size = $size else . end)' "$work/att.json" >"$work/att-forged.json"
  curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @"$work/att-forged.json" \
    "$base/manifests/sha256-$hex.att" >/dev/null
  echo "tampered"
else
  fail "mode check|tamper"
fi
