"""Scheduling policies by name, and several of them run on one trace side by side.

A policy is written as researchers say it, on the command line
(``--policy NAME``, repeatable) and in :func:`compare_policies`:

==========================  ===========================================================
``fifo``                    OAR's default: submission order, conservative backfilling
``fairshare``               ``JOB_PRIORITY=FAIRSHARE`` (karma from the simulated accounting)
``sjf``                     shortest walltime first: the shipped ``shortest_job_first``
(``shortest-job-first``)    CUSTOM sorting plugin
``best-fit`` (``bestfit``)  the shipped ``best_fit`` placement plugin (``find=best_fit``
                            on every job that names none): small jobs fill busy nodes
``easy``                    EASY backfilling instead of OAR's conservative backfilling
``conf=FILE``               an oar.conf-like file (``JOB_PRIORITY``, quotas, security time...);
                            ``examples/fairshare.conf`` and ``examples/sjf.conf`` are shipped
==========================  ===========================================================

Names combine with ``+``: ``easy+fairshare``, ``best-fit+sjf``,
``conf=site.conf+easy``.  A policy's keys override the base configuration
(``--config``) and its security time.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from oarsched.errors import ConfigError, UsageError
from oarsched.oar.config import OarConfig
from oarsched.sim.metrics import DEFAULT_BOUND, Metrics, show_value
from oarsched.sim.workload import Workload

__all__ = ["POLICY_NAMES", "Policy", "PolicyComparison", "compare_policies", "parse_policy"]

_ORDERINGS: dict[str, dict[str, Any]] = {
    "fifo": {"JOB_PRIORITY": "FIFO"},
    "fairshare": {"JOB_PRIORITY": "FAIRSHARE"},
    "sjf": {"JOB_PRIORITY": "CUSTOM", "CUSTOM_JOB_SORTING": "shortest_job_first"},
}
_ALIASES = {"shortest-job-first": "sjf", "shortest_job_first": "sjf", "bestfit": "best-fit", "best_fit": "best-fit",
            "easy-backfilling": "easy", "conservative-backfilling": "conservative"}
POLICY_NAMES = ("fifo", "fairshare", "sjf", "best-fit", "easy", "conservative", "conf=FILE")


@dataclass(frozen=True)
class Policy:
    """What a policy changes: configuration keys, the backfilling, a placement plugin for every job."""

    name: str
    config: Mapping[str, Any] = field(default_factory=dict)
    config_file: str | None = None
    backfilling: str = "conservative"
    find: str | None = None

    def configure(self, base: OarConfig | None) -> OarConfig:
        """``base`` (or the defaults) overridden by the policy's file, then its keys."""
        values = dict(base.values) if base is not None else dict(OarConfig.from_mapping({}).values)
        path = base.path if base is not None else None
        if self.config_file is not None:
            loaded = OarConfig.load(self.config_file)
            values.update({k: loaded.values[k] for k in loaded.raw})
            path = self.config_file
        values.update(self.config)
        return OarConfig(values=values, path=path)

    def apply(self, workload: Workload) -> Workload:
        """The workload as this policy submits it (``find=`` added where a job names no placement)."""
        if self.find is None:
            return workload
        jobs = [job if "find" in job.types else dataclasses.replace(job, types={**job.types, "find": self.find})
                for job in workload.jobs]
        return dataclasses.replace(workload, jobs=jobs)


def parse_policy(text: str) -> Policy:
    """A :class:`Policy` from its name (see the module docstring); UsageError for an unknown one."""
    config: dict[str, Any] = {}
    config_file = None
    backfilling = "conservative"
    find = None
    for part in (p.strip() for p in text.split("+")):
        name = _ALIASES.get(part.lower(), part.lower())
        if part.lower().startswith("conf="):
            config_file = part[5:]
            if not os.path.isfile(config_file):
                raise UsageError(f"--policy {text}: no such configuration file {config_file!r}")
        elif name in _ORDERINGS:
            config.update(_ORDERINGS[name])
        elif name in ("easy", "conservative"):
            backfilling = name
        elif name == "best-fit":
            find = "best_fit"
        else:
            raise UsageError(f"--policy {text}: unknown policy {part!r} (known: {', '.join(POLICY_NAMES)}, "
                             "combined with '+')")
    label = text if config_file is None else text.replace(f"conf={config_file}", os.path.basename(config_file))
    return Policy(name=label, config=config, config_file=config_file, backfilling=backfilling, find=find)


@dataclass
class PolicyComparison:
    """Results of one workload under several policies, in the order given."""

    results: dict[str, Any]
    bound: int = DEFAULT_BOUND
    seconds: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, Metrics]:
        return {name: r.metrics(self.bound) for name, r in self.results.items()}

    def table(self) -> str:
        """Every metric, one column per policy."""
        metrics = self.metrics()
        names = list(metrics)
        width = max([12, *(len(n) for n in names)])
        lines = [f"{'metric':<22} " + " ".join(f"{n:>{width}}" for n in names)]
        rows = [m.scalars() for m in metrics.values()]
        for key in rows[0]:
            lines.append(f"{key:<22} " + " ".join(f"{show_value(row[key]):>{width}}" for row in rows))
        if self.seconds:
            lines.append(f"{'simulation_seconds':<22} " + " ".join(
                f"{self.seconds.get(n, 0.0):>{width}.2f}" for n in names))
        return "\n".join(lines)

    def notes(self) -> list[str]:
        """Why some policies cannot differ on this workload."""
        out = []
        first = next(iter(self.results.values()))
        users = {r.user for r in first.records}
        for name, result in self.results.items():
            priority = str(result.config.get("JOB_PRIORITY", "FIFO")).upper()
            if priority == "FAIRSHARE" and len(users) <= 1:
                out.append(f"{name}: FAIRSHARE orders users by their past usage; this trace has one user, "
                           "so it orders jobs as FIFO does")
        return out

    def plot(self, path: str | os.PathLike[str]) -> str:
        """Utilization and queue length over time, and per-user slowdowns, of every policy (SVG or PNG)."""
        from oarsched.viz.metrics import plot_results

        return plot_results(self.results, path, bound=self.bound)


def compare_policies(workload: Workload, platform, policies: Iterable[str | Policy], *,
                     config: OarConfig | Mapping[str, Any] | None = None, bound: int = DEFAULT_BOUND,
                     **simulate_options: Any) -> PolicyComparison:
    """Run ``workload`` on ``platform`` under each policy; the results side by side.

    ``config``: the base configuration every policy overrides;
    ``simulate_options``: passed to :class:`~oarsched.sim.Simulator`
    (queues, quotas, period, requeue_besteffort, until...).
    """
    base = config if isinstance(config, OarConfig) or config is None else OarConfig.from_mapping(dict(config))
    comparison = PolicyComparison({}, bound=bound)
    for policy in policies:
        p = policy if isinstance(policy, Policy) else parse_policy(policy)
        if p.name in comparison.results:
            raise UsageError(f"policy {p.name!r} given twice")
        comparison.results[p.name], comparison.seconds[p.name] = run_policy(workload, platform, p, base,
                                                                            **simulate_options)
    if not comparison.results:
        raise ConfigError("compare_policies needs at least one policy")
    return comparison


def run_policy(workload: Workload, platform, policy: Policy, base: OarConfig | None, *, until: int | None = None,
               progress: Any = None, run_options: Mapping[str, Any] | None = None,
               **simulate_options: Any) -> tuple[Any, float]:
    """One simulation of ``workload`` under ``policy``; the result and the seconds it took.

    ``run_options``: passed to :meth:`~oarsched.sim.Simulator.run` (stop, checkpoint, resume, on_close).
    """
    import time

    from oarsched.sim.simulator import Simulator

    if policy.find == "best_fit" and not platform.has_level("network_address"):
        raise UsageError(f"policy {policy.name}: best-fit packs jobs into nodes, and the platform has no "
                         "network_address level (e.g. --platform network_address=16/core=32)")
    sim = Simulator(platform, config=policy.configure(base), backfilling=policy.backfilling, **simulate_options)
    t0 = time.perf_counter()
    result = sim.run(policy.apply(workload), until=until, progress=progress, **dict(run_options or {}))
    return result, time.perf_counter() - t0
