"""Learning from observation: BCO(alpha), time-contrastive embeddings and their imitation reward.

Submodules are imported lazily by the caller (``from ilcore.algos.lfo.bco import run_bco``) so
that importing this package pulls in nothing heavy.
"""
