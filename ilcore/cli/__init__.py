"""The ``ilcore`` command line (entry point :func:`ilcore.cli.main.main`).

``ilcore --help`` imports every command module to build its parser, so these modules import the
torch side of the engine (trainers, ``ilcore.policies``, ``ilcore.devices``) inside the handlers that
run a command; everything else is imported at the top.
"""
