#!/bin/sh
# A misbehaving container CLI for the Slurm runner's test: prints no JSON
# report and exits 2, as a docker that cannot run the image would.
echo "this is not a smoke report"
echo "docker: Error response from daemon: something broke" >&2
exit 2
