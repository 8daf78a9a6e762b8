import os

# Headless pygame for every test; set before anything imports pygame.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("MPLBACKEND", "Agg")
# As every entry point sets it (ilcore.runtime), and before anything imports torch: OpenMP reads it
# once. Spinning waits made 2-thread training 5-10x slower whenever another process held a core.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # The CI machine has 2 cores; small nets train faster single-threaded and tests stay stable.
    # Per test, not per session: a test that runs a CLI command in this process sets the CLI's
    # default thread count (ilcore.runtime.configure_threads), which must not carry over.
    try:
        import torch
    except ImportError:
        yield
        return
    torch.set_num_threads(1)
    yield
