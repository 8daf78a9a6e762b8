"""Helpers shared by more than one test file (and by ``benchmarks/``), one module per topic.

- :mod:`tests.support.recordings`: synthetic sessions whose every value follows from (seed, step),
  and an observation-only session of a scripted expert.
- :mod:`tests.support.demos`: demonstrations built without the data layer (``Transitions``),
  scripted action rules, LfO demos and a synthetic video.
- :mod:`tests.support.envs`: tiny registered envs with a known answer.
- :mod:`tests.support.fakes`: in-memory stand-ins for the DAgger controller's ports and labellers.
- :mod:`tests.support.app_fakes`: stand-ins for the app's sessions, so a mode is tested alone.
- :mod:`tests.support.app_harness`: the headless app loop, posted key events, ``python -m app``
  in a subprocess.
- :mod:`tests.support.strategies`: hypothesis strategies.
- :mod:`tests.support.damaged_recordings`, :mod:`tests.support.damaged_resume`: corpora of
  malformed inputs (also run by ``benchmarks/reliability.py`` and ``benchmarks/resume_reliability.py``).

One naming style, so a reader knows what a name does before opening it:

- ``make_<thing>(...)`` builds and returns a thing (a session folder, demos, a policy, a video).
- ``assert_<property>(...)`` checks something and returns nothing.
- ``Fake<Class>`` stands in for the project class of that name (same surface, in memory);
  other scripted classes are named for what they do (``ConstantExpert``, ``CountingEnv``).
- Fixtures stay in ``conftest.py`` (named for what they give), built from these helpers.

A helper used by one test file stays in that file.
"""
