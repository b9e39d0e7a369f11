#!/bin/sh
# A container CLI that never returns (a hung engine, a pull that stalls): the
# Slurm job must end by its time limit or by scancel, never pass.
echo "starting" >&2
exec sleep 900
