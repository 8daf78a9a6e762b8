"""Options that say where a command computes: device, data pipeline, vector-env processes.

One definition per option, so every subcommand that trains or rolls out spells and documents
them the same way (``--device``, ``--data-mode``, ``--workers``, ``--num-envs``, ``--async``).
"""

from __future__ import annotations

import argparse

DEVICE_HELP = ("where to train: auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda "
               "(GPU LOCAL_RANK under torchrun) or cuda:N (default: %(default)s)")


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", metavar="DEVICE", help=DEVICE_HELP)


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    """Data pipeline of a trainer that reads recordings (see ``ilcore.data.stream``)."""
    parser.add_argument("--data-mode", choices=("auto", "memory", "stream"), default="auto",
                        help="memory: decode every frame into RAM once; stream: read each minibatch's frames "
                             "from disk in worker processes; auto: memory while twice the decoded frames fit "
                             "in half the available RAM (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="frame-reading processes when streaming (default: one per spare core, at least 1)")
    parser.add_argument("--steps-per-epoch", type=int, default=None, metavar="S",
                        help="cap on minibatches per epoch, so large recordings validate and early-stop "
                             "every S steps (default: a full pass)")


def add_vector_env_flags(parser: argparse.ArgumentParser, *, num_envs: bool = True) -> None:
    """``--num-envs N`` and ``--async`` (each env in its own process: gymnasium AsyncVectorEnv)."""
    if num_envs:
        parser.add_argument("--num-envs", type=int, default=None, metavar="N",
                            help="parallel envs (default: the command's own)")
    parser.add_argument("--async", dest="async_envs", action="store_true",
                        help="step each env in its own process (AsyncVectorEnv); pays off when env steps "
                             "are slow, e.g. CarRacing")
