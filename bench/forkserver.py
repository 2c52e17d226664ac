"""Imported first by the fork server that CUDA groups' workers fork from: CUDA stays untouched there."""

from __future__ import annotations

import os

# A suite may ask torch.cuda.is_available() at its import (this repo's QMANN workloads do, for
# pinned memory). Asked the default way, that initialises the CUDA driver in the fork server, and
# no child forked from it can use CUDA ("Cannot re-initialize CUDA in forked subprocess"); asked
# through NVML, it does not.
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
