"""Test-wide setup shared by tests/bench and tests/models."""

from __future__ import annotations

import signal

# A background job started without job control (`cmd &` in a script) inherits SIGINT ignored,
# and an ignored signal stays ignored across exec: the tests that send Ctrl-C to a run they
# started would then test nothing. A handled signal is reset to the default on exec, so the
# processes these tests start can be interrupted again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
