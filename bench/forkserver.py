"""Imported first by the fork server that CUDA groups' workers fork from (and nowhere else): CUDA
stays untouched there, and what every worker would import again is imported once."""

from __future__ import annotations

import os

# A suite may ask torch.cuda.is_available() at its import (this repo's QMANN workloads do, for
# pinned memory). Asked the default way, that initialises the CUDA driver in the fork server, and
# no child forked from it can use CUDA ("Cannot re-initialize CUDA in forked subprocess"); asked
# through NVML, it does not.
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")

from bench.trials import warm_imports  # after the variable, which torch reads

# torch._dynamo and sympy: seconds of each worker otherwise (an H200 run's CUDA check workers
# lost a toy item's 4 s limit to them, before its first implementation's check was done).
warm_imports()
