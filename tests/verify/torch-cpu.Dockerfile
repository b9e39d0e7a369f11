# A torch image without CUDA for CI: Debian 12's python3-torch (1.13, CPU
# only) on kiln's offline Debian base. The torch smoke path must say
# "no usable GPU" (exit 3) here, never pass.
ARG BASE=kiln/debian:12
FROM ${BASE}
RUN set -eux; apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-torch; \
    rm -rf /var/lib/apt/lists/*
RUN useradd -m kiln
USER kiln
