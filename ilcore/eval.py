"""Roll policies out on gymnasium vector envs and summarise returns with confidence intervals."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence

import gymnasium as gym
import numpy as np

import ilcore.envs  # noqa: F401  (registers ilcore/Corridor-v0 and ilcore/ParticleSequence-v0)
from ilcore import spaces as ispaces
from ilcore.errors import ConfigError, SpaceMismatchError
from ilcore.progress import progress_bar
from ilcore.types import Nested


class BatchActor(Protocol):
    def act_batch(self, obs_batch: Nested) -> Any: ...


@dataclass(frozen=True)
class EvalResult:
    """Outcome of :func:`evaluate` over ``episodes`` episodes.

    returns / lengths: ``(episodes,)`` per-episode return and number of steps, ordered by env
    index then by episode within that env.
    ci95: (low, high) 95% Student-t interval for the mean return; None with fewer than 2 episodes.
    success_rate: fraction of successful episodes where the env defines success, else None.
    """

    mean_return: float
    ci95: tuple[float, float] | None
    returns: np.ndarray
    lengths: np.ndarray
    success_rate: float | None
    episodes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "mean_return": self.mean_return,
            "ci95": None if self.ci95 is None else [self.ci95[0], self.ci95[1]],
            "episodes": self.episodes,
            "success_rate": self.success_rate,
            "returns": [float(r) for r in self.returns],
            "lengths": [int(n) for n in self.lengths],
        }


def student_t_quantile(p: float, dof: int) -> float:
    """The p-quantile of Student's t with ``dof`` degrees of freedom (0.5 < p < 1).

    Bisection on the CDF, which is integrated with Simpson's rule; accurate to ~1e-7 for every dof,
    without needing scipy.
    """
    if not 0.5 < p < 1 or dof < 1:
        raise ValueError(f"need 0.5 < p < 1 and dof >= 1, got p={p}, dof={dof}")
    log_norm = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)

    def cdf_above_half(x: float) -> float:
        grid = np.linspace(0.0, x, 4001)  # even number of intervals for Simpson
        pdf = np.exp(log_norm - (dof + 1) / 2 * np.log1p(grid * grid / dof))
        h = x / 4000
        return h / 3 * (pdf[0] + pdf[-1] + 4 * pdf[1:-1:2].sum() + 2 * pdf[2:-1:2].sum())

    target = p - 0.5
    lo, hi = 0.0, 1.0
    while cdf_above_half(hi) < target:
        lo, hi = hi, hi * 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if cdf_above_half(mid) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def mean_ci95(values: np.ndarray) -> tuple[float, tuple[float, float] | None]:
    """(mean, 95% t-interval of the mean or None for fewer than 2 values)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean()) if len(values) else math.nan
    if len(values) < 2:
        return mean, None
    half = student_t_quantile(0.975, len(values) - 1) * float(values.std(ddof=1)) / math.sqrt(len(values))
    return mean, (mean - half, mean + half)


def _success_rule(env_id: str) -> Callable[[float, bool, bool], bool] | None:
    """Per-env definition of a successful episode from its last step (reward, terminated, truncated)."""
    name = env_id.split("/")[-1].split("-v")[0]
    if name.startswith("LunarLander"):
        return lambda r, term, trunc: term and r == 100.0  # +100 exactly when the lander comes to rest
    if name.startswith("MountainCar"):
        return lambda r, term, trunc: term  # the only termination is reaching the flag
    if name.startswith("CartPole"):
        return lambda r, term, trunc: trunc and not term  # balanced until the time limit
    return None


def check_env_id(env_id: str) -> None:
    """Raise ConfigError unless ``env_id`` is registered with gymnasium (ilcore's own ids included)."""
    try:
        gym.spec(env_id)
    except gym.error.DeprecatedEnv as exc:
        raise ConfigError(f"Unknown env id {env_id!r}: {exc}") from None  # gymnasium names the version to use
    except gym.error.Error:
        raise ConfigError(f"Unknown env id {env_id!r}; it is not registered with gymnasium.") from None


def make_env(env_id: str, env_kwargs: Mapping[str, Any] | None = None, **make_kwargs: Any) -> gym.Env:
    """``gym.make(env_id, **env_kwargs)`` with one-sentence ConfigErrors for an unknown id or
    keyword arguments the env does not take. ``make_kwargs`` (e.g. render_mode) go to gym.make too."""
    check_env_id(env_id)
    try:
        return gym.make(env_id, **dict(env_kwargs or {}), **make_kwargs)
    except TypeError as exc:
        raise ConfigError(f"Bad env kwargs for {env_id}: {exc}.") from None
    except (ImportError, gym.error.DependencyNotInstalled) as exc:
        # e.g. HalfCheetah-v3 (mujoco-py, moved out of gymnasium) or a MuJoCo env without mujoco
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{env_id} cannot be made here: {reason}") from None


def env_spaces(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> tuple[gym.Space, gym.Space]:
    """``(observation_space, action_space)`` of ``env_id`` (an env is made and closed)."""
    env = make_env(env_id, env_kwargs)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def make_vector_env(env_id: str, env_kwargs: Mapping[str, Any] | None, num_envs: int,
                    wrappers: Sequence[Callable[[gym.Env], gym.Env]] = (), *,
                    asynchronous: bool = False) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``env_id`` with NEXT_STEP autoreset, stepped in this process
    (SyncVectorEnv) or, with ``asynchronous``, each in its own worker process (AsyncVectorEnv).

    Async pays off when one env step costs more than the inter-process round trip (CarRacing's
    Box2D physics and rendering); for classic control the sync version is faster. ``wrappers``
    are applied in order to each sub-env (each gets its own instances; with ``asynchronous``
    they must be picklable by cloudpickle, as closures and classes are). Raises ConfigError
    for an unknown env id or a non-positive ``num_envs``.
    """
    kwargs = dict(env_kwargs or {})

    def make() -> gym.Env:
        env = make_env(env_id, kwargs)
        for wrap in wrappers:
            env = wrap(env)
        return env

    check_env_id(env_id)
    if num_envs < 1:
        raise ConfigError(f"num_envs must be >= 1, got {num_envs}.")
    mode = gym.vector.AutoresetMode.NEXT_STEP
    if asynchronous:
        # Fail on bad kwargs here with one sentence, not as a traceback from a worker process.
        make_env(env_id, kwargs).close()
        return gym.vector.AsyncVectorEnv([make] * num_envs, autoreset_mode=mode)
    return gym.vector.SyncVectorEnv([make] * num_envs, autoreset_mode=mode)


def _act_batch_fn(policy: Any, observation_space: gym.Space) -> Callable[[Nested], Any]:
    if hasattr(policy, "act_batch"):
        return policy.act_batch
    if hasattr(policy, "act"):
        # One observation at a time (e.g. a scripted expert); fine for evaluation speeds.
        def act_each(obs_batch: Nested) -> Any:
            n = ispaces.batch_len(obs_batch)
            return np.stack([np.asarray(policy.act(ispaces.index(obs_batch, i))) for i in range(n)])

        return act_each
    raise ConfigError(f"{type(policy).__name__} has neither act_batch nor act, so it cannot be evaluated.")


def _check_spaces(policy: Any, env: gym.vector.VectorEnv, env_id: str) -> None:
    if hasattr(policy, "check_spaces"):
        policy.check_spaces(env.single_observation_space, env.single_action_space, where=env_id)
        return
    for name, env_space in (("observation", env.single_observation_space), ("action", env.single_action_space)):
        mine = getattr(policy, f"{name}_space", None)
        if mine is not None and ispaces.space_key(mine) != ispaces.space_key(env_space):
            raise SpaceMismatchError(f"The policy's {name} space {mine} does not match {env_id}'s {env_space}.")


def evaluate(
    policy: BatchActor | Any,
    env_id: str,
    *,
    episodes: int = 20,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    num_envs: int | None = None,
    asynchronous: bool = False,
    progress: bool = False,
) -> EvalResult:
    """Run exactly ``episodes`` episodes of ``policy`` (deterministic actions) and summarise them.

    Env i of ``num_envs`` (default min(episodes, 8)) is seeded ``seed + i`` at the first reset and
    runs a fixed quota of episodes, so results depend only on (seed, num_envs) and long episodes
    are not under-counted (stopping at the first ``episodes`` finishers would favour short ones).

    Args:
        policy: anything with ``act_batch(obs_batch) -> actions`` (a :class:`~ilcore.policies.Policy`)
            or, slower, ``act(obs) -> action``.
        env_id: a registered gymnasium id; unknown ids raise ConfigError.
        asynchronous: step the envs in worker processes (see :func:`make_vector_env`); the
            returns are the same as with sync envs.
        progress: a bar on stderr counting finished episodes.
    Raises:
        SpaceMismatchError: the policy was built for other observation or action spaces.
    """
    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}.")
    n_envs = min(num_envs or 8, episodes)
    venv = make_vector_env(env_id, env_kwargs, n_envs, asynchronous=asynchronous)
    bar = progress_bar(total=episodes, desc=f"eval {env_id}", unit="ep", enabled=progress)
    try:
        _check_spaces(policy, venv, env_id)
        act_batch = _act_batch_fn(policy, venv.single_observation_space)
        success_rule = _success_rule(env_id)
        quota = np.array([episodes // n_envs + (i < episodes % n_envs) for i in range(n_envs)])
        finished = np.zeros(n_envs, dtype=np.int64)
        ep_return = np.zeros(n_envs)
        ep_length = np.zeros(n_envs, dtype=np.int64)
        results: list[list[tuple[float, int, bool | None]]] = [[] for _ in range(n_envs)]
        # NEXT_STEP autoreset: the step after an episode ends only resets that env (its reward
        # and flags are meaningless), so it is skipped for the env that just finished.
        resetting = np.zeros(n_envs, dtype=bool)
        obs, _ = venv.reset(seed=seed)
        while np.any(finished < quota):
            actions = act_batch(obs)
            obs, reward, terminated, truncated, info = venv.step(actions)
            done = np.logical_or(terminated, truncated)
            for i in range(n_envs):
                if resetting[i]:
                    ep_return[i], ep_length[i] = 0.0, 0
                    continue
                ep_return[i] += float(reward[i])
                ep_length[i] += 1
                if done[i]:
                    if finished[i] < quota[i]:
                        success: bool | None
                        if success_rule is not None:
                            success = bool(success_rule(float(reward[i]), bool(terminated[i]), bool(truncated[i])))
                        elif "is_success" in info and info.get("_is_success", np.ones(n_envs, bool))[i]:
                            success = bool(info["is_success"][i])
                        else:
                            success = None
                        results[i].append((ep_return[i], int(ep_length[i]), success))
                        bar.update(1)
                    finished[i] += 1
            resetting = done
    finally:
        bar.close()
        venv.close()

    flat = [r for per_env in results for r in per_env]
    returns = np.array([r[0] for r in flat], dtype=np.float64)
    lengths = np.array([r[1] for r in flat], dtype=np.int64)
    flags = [r[2] for r in flat]
    known = [f for f in flags if f is not None]
    success_rate = float(np.mean(known)) if len(known) == len(flags) else None
    mean, ci = mean_ci95(returns)
    return EvalResult(mean_return=mean, ci95=ci, returns=returns, lengths=lengths,
                      success_rate=success_rate, episodes=len(returns))


def random_return(env_id: str, episodes: int = 20, *, seed: int = 10_000, action_seed: int | None = None,
                  env_kwargs: dict[str, Any] | None = None) -> float:
    """Mean return of a uniformly random policy: the floor of a normalised score.

    Episode i is reset with ``seed + i``; actions are drawn from the action space seeded with
    ``action_seed`` (``seed`` when None).
    """
    env = make_env(env_id, env_kwargs)
    try:
        env.action_space.seed(seed if action_seed is None else action_seed)
        total = []
        for i in range(episodes):
            env.reset(seed=seed + i)
            ret, done = 0.0, False
            while not done:
                _, r, term, trunc, _ = env.step(env.action_space.sample())
                ret += float(r)
                done = term or trunc
            total.append(ret)
        return float(np.mean(total))
    finally:
        env.close()
