"""Settings for the whole suite: offline, and one thread per test process.

Tests use tiny models, for which torch's thread pool costs more than it gives, and they
must behave the same on a loaded 2-core machine as on an idle one. This is the one place
that sets the thread count: torch's here, and ``SIFTLM_THREADS`` for the command-line
entry points that the tests call (``siftlm.defaults.configure_threads``).
"""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["SIFTLM_THREADS"] = "1"

import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray (2 CPUs) for the whole test session, shut down at its end."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray workers would add 15 to the niceness of the test process; a test run that is
    # niced already would then starve them on a busy machine
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        object_store_memory=200 * 2**20,
    )
    yield ray
    ray.shutdown()
