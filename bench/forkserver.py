"""Imported first by each fork server that workers fork from (and nowhere else): CUDA stays
untouched there, and what every worker would import again is imported once."""

from __future__ import annotations

import os

# A suite may ask torch.cuda.is_available() at its import (this repo's QMANN workloads do, for
# pinned memory). Asked the default way, that initialises the CUDA driver in the fork server, and
# no child forked from it can use CUDA ("Cannot re-initialize CUDA in forked subprocess"); asked
# through NVML, it does not.
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")

from bench.trials import die_with_parent, warm_imports  # after the variable, which torch reads

# A fork server outlives the run that started it for as long as a worker it forked holds the pipe
# that tells it the run is gone (a trial worker waiting for its turn, a hang in a C call), and its
# workers die only with it: killed with the run, it takes them along.
die_with_parent()

# torch._dynamo and sympy: seconds of each worker otherwise (an H200 run's CUDA check workers
# lost a toy item's 4 s limit to them, before its first implementation's check was done).
warm_imports()
