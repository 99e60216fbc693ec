"""Find/assign extension points, the plugin registry, the OAR3 adapters and the shipped plugins."""
from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oarsched import Dependency, Job, Moldable, Platform, Resource, ResourceGroup, ScheduledJob
from oarsched.engine.checks import (
    dependency_violations,
    overlaps,
    quota_violations,
    request_violations,
)
from oarsched.engine.quotas import QuotaState
from oarsched.engine.scheduler import Scheduler, SchedulerOptions
from oarsched.oar.config import OarConfig
from oarsched.plugins import (
    AssignContext,
    Placement,
    PluginError,
    PluginRegistry,
    Window,
    assign_function,
    find_function,
    parse_plugin_call,
)
from oarsched.plugins import registry as registry_module
from oarsched.plugins.builtin import (
    assign_start_now,
    find_best_fit,
    find_contiguous,
    sort_shortest_job_first,
)
from oarsched.policies import sorting
from tests.strategies import LEVEL_CHAINS, nested_platforms


def grid(nodes: int = 4, cores: int = 4) -> Platform:
    """Resource ids 1..nodes*cores, ``cores`` per node, in id order."""
    return Platform.from_hierarchy({"network_address": nodes, "core": cores})


def run(platform, jobs, *, now=0, scheduled=(), find=None, assign=None, **options) -> "ScheduleResult":  # noqa: F821
    registry = PluginRegistry(find=find or {}, assign=assign or {}, use_entry_points=False)
    return Scheduler(platform, SchedulerOptions(**options), plugins=registry).schedule(jobs, now, scheduled)


def decisions(result):
    return {j: (a.moldable_id, a.start_time, a.resources) for j, a in result.assignments.items()}


# ----------------------------------------------------------------------------- job types
def test_plugin_call_is_parsed_as_oar3_does():
    call = parse_plugin_call("func_find:ip=127.0.0.1:port=13950")
    assert (call.name, call.args, dict(call.kwargs)) == ("func_find", (), {"ip": "127.0.0.1", "port": "13950"})
    call = parse_plugin_call("assign_remote:password=passwith==:False:True:=:==")
    assert call.name == "assign_remote"
    assert dict(call.kwargs) == {"password": "passwith=="}
    assert call.args == ("False", "True", "=", "==")
    assert parse_plugin_call("plain") == parse_plugin_call("plain")
    assert parse_plugin_call("plain").args == ()


def test_job_types_carry_the_arguments_to_the_plugin():
    seen = []

    @find_function
    def spy(window, *args, **kwargs):
        seen.append((args, kwargs))
        return window.default_match()

    r = run(grid(), [Job(id=1, walltime=10, request="core=1", types=["find=spy:a:k=v=w:b"])], find={"spy": spy})
    assert 1 in r.assignments
    assert seen == [(("a", "b"), {"k": "v=w"})]


def test_jobs_without_plugin_types_never_load_the_plugin_machinery():
    code = textwrap.dedent("""
        import sys
        from oarsched import Job, Platform, schedule
        p = Platform.from_hierarchy({"network_address": 2, "core": 4})
        r = schedule(p, [Job(id=1, walltime=10, request="core=2", types=["besteffort"])], now=0)
        assert 1 in r.assignments
        loaded = sorted(m for m in sys.modules if m.startswith("oarsched.plugins"))
        assert not loaded, loaded
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- find
def test_find_plugin_sees_windows_in_time_order():
    windows = []

    @find_function
    def after_200(window: Window):
        windows.append((window.start_time, window.walltime, window.begins_slot_set, window.free.tolist()))
        return window.default_match() if window.start_time >= 200 else None

    busy = [ScheduledJob(id=90, start_time=0, walltime=100, resources=[1, 2]),
            ScheduledJob(id=91, start_time=100, walltime=100, resources=[3])]
    r = run(grid(1, 4), [Job(id=1, walltime=50, request="core=1", types=["find=after_200"])],
            scheduled=busy, find={"after_200": after_200})
    assert (r[1].start_time, r[1].resources) == (200, [1])
    assert windows == [(0, 50, True, [2, 3]), (100, 50, False, [0, 1, 3]), (200, 50, False, [0, 1, 2, 3])]


def test_find_plugin_gets_groups_constraints_and_platform():
    got = {}

    @find_function
    def inspect(window: Window):
        got["levels"] = [g.levels for g in window.groups]
        got["allowed"] = [g.allowed.tolist() for g in window.groups]
        got["candidates"] = window.candidates(0).tolist()
        got["blocks"] = [b.tolist() for b in window.blocks("network_address")]
        got["job"] = window.job.id
        return window.match(0)

    res = [Resource(id=i, properties={"network_address": f"n{(i - 1) // 2}", "gpu": "YES" if i % 2 else "NO"})
           for i in range(1, 7)]
    platform = Platform(res, ["resource_id", "network_address"])
    job = Job(id=7, walltime=5, request="{gpu = 'YES'}/network_address=1/resource_id=1", types=["find=inspect"])
    busy = ScheduledJob(id=90, start_time=0, walltime=10, resources=[1])
    r = run(platform, [job], scheduled=[busy], find={"inspect": inspect})
    assert got == {"levels": [(("network_address", 1), ("resource_id", 1))], "allowed": [[0, 2, 4]],
                   "candidates": [2, 4], "blocks": [[0, 1], [2, 3], [4, 5]], "job": 7}
    assert r[7].resources == [3]


def test_find_plugin_result_may_be_any_sequence_of_indices():
    @find_function
    def as_list(window):
        return [int(i) for i in window.candidates()[:2]][::-1]

    @find_function
    def as_range(window):
        return range(4, 6)

    r = run(grid(), [Job(id=1, walltime=5, request="core=2", types=["find=l"]),
                     Job(id=2, walltime=5, request="core=2", types=["find=r"])],
            find={"l": as_list, "r": as_range})
    assert r[1].resources == [1, 2] and r[2].resources == [5, 6]


def test_find_plugin_results_are_checked_against_the_quotas():
    rules = {"quotas": {"*,*,*,*": [4, -1, -1]}}
    platform = grid(2, 4)

    @find_function
    def five(window):
        return window.free[:5] if window.free.size >= 5 else None

    @find_function
    def four(window):
        return window.free[:4] if window.free.size >= 4 else None

    quotas = QuotaState.from_rules(rules, platform)
    jobs = [Job(id=1, walltime=10, request="core=1", types=["find=five"]),
            Job(id=2, walltime=10, request="core=1", types=["find=four"]),
            Job(id=3, walltime=10, request="core=1", types=["find=four"])]
    r = run(platform, jobs, find={"five": five, "four": four}, quotas=quotas)
    assert 1 in r.unscheduled and 1 not in r.errors  # never admitted: no window, no error
    assert (r[2].start_time, r[3].start_time) == (0, 10)


# ----------------------------------------------------------------------------- garbage in
@pytest.mark.parametrize("result, message", [
    ("1,2", "returned a str"),
    ([1.0, 2.0], "holding 1.0 (float)"),
    (np.ones(16, dtype=bool), "array of bool"),
    ([0, 99], "order index 99 out of range 0..15"),
    ([1, 2, 12], "not free in the window starting at 0: resource ids 13"),
    ([0, 4], "outside the job's constraints: resource ids 1"),
    ({"a": 1}, "returned a dict"),
])
def test_find_plugin_garbage_is_reported_and_the_job_left_unscheduled(result, message):
    @find_function
    def bad(window):
        return result

    platform = Platform([Resource(id=i, type="default" if i > 1 else "licence",
                                  properties={"network_address": f"n{(i - 1) // 4}"}) for i in range(1, 17)],
                        ["resource_id", "network_address"])
    busy = ScheduledJob(id=90, start_time=0, walltime=100, resources=[13])
    jobs = [Job(id=1, walltime=10, request="resource_id=2", types=["find=bad"]),
            Job(id=2, walltime=10, request="resource_id=2")]
    r = run(platform, jobs, scheduled=[busy], find={"bad": bad})
    assert r.errors[1].startswith("find plugin 'bad' ")
    assert message in r.errors[1]
    assert 1 in r.unscheduled and 1 not in r.assignments
    assert r[2].resources == [2, 3]  # the round went on


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_find_plugin_exception_names_plugin_job_and_place():
    @find_function
    def boom(window):
        return 1 // 0

    engine_log = logging.getLogger("oarsched.engine")
    collect = Collect()
    engine_log.addHandler(collect)
    try:
        r = run(grid(), [Job(id=5, walltime=10, request="core=1", types=["find=boom"]),
                         Job(id=6, walltime=10, request="core=1")], find={"boom": boom})
    finally:
        engine_log.removeHandler(collect)
    assert r.errors[5].startswith("find plugin 'boom' raised ZeroDivisionError: integer division or modulo by zero")
    assert "(at test_plugins.py:" in r.errors[5]
    assert r[6].start_time == 0
    assert any("job 5: find plugin 'boom' raised ZeroDivisionError" in line for line in collect.lines)


def test_empty_find_results_move_on_to_the_next_window():
    @find_function
    def never(window):
        return np.empty(0, np.int64)

    r = run(grid(), [Job(id=1, walltime=10, request="core=1", types=["find=never"])], find={"never": never})
    assert r.unscheduled[1] == "no suitable resources and time window" and not r.errors


def test_unknown_plugin_is_an_error_for_that_job_only():
    r = run(grid(), [Job(id=1, walltime=10, request="core=1", types=["assign=nothere"]),
                     Job(id=2, walltime=10, request="core=1", types=["find="])])
    assert r.errors[1] == "assign plugin 'nothere' is not registered (known: none)"
    assert "has no name" in r.errors[2]


def test_registry_errors_name_kind_plugin_and_job():
    registry = PluginRegistry(use_entry_points=False)
    with pytest.raises(PluginError) as caught:
        registry.find("x", job_id=3)
    assert (caught.value.job_id, caught.value.kind, caught.value.plugin) == (3, "find", "x")
    assert str(caught.value) == "job 3: find plugin 'x' is not registered (known: none)"


def test_a_native_function_registered_in_the_wrong_group_is_refused():
    r = run(grid(), [Job(id=1, walltime=10, request="core=1", types=["find=x"])], find={"x": assign_start_now})
    assert "is an oarsched assign function, registered as a find function" in r.errors[1]


def test_native_functions_refuse_oar3_calls():
    procset = pytest.importorskip("procset")
    with pytest.raises(TypeError, match="oarsched find function: it takes a Window, got ProcSet"):
        find_contiguous(procset.ProcSet((0, 3)), [], {}, True)


# ----------------------------------------------------------------------------- assign
def test_assign_plugin_places_the_job_where_it_says():
    @assign_function
    def late(ctx: AssignContext, at="500"):
        mld = ctx.moldables[0]
        return Placement(mld.id, int(at), ctx.free_between(int(at), int(at) + mld.walltime - 1)[-2:])

    r = run(grid(), [Job(id=1, walltime=100, request="core=2", types=["assign=late:250"]),
                     Job(id=2, walltime=1000, request="core=16")], assign={"late": late})
    assert (r[1].start_time, r[1].resources) == (250, [15, 16])
    assert r[2].start_time == 350  # the placement is applied to the slot set: job 2 waits for it


def test_assign_context_describes_the_job_and_the_slot_set():
    seen = {}

    @assign_function
    def look(ctx: AssignContext):
        seen["moldables"] = [(m.id, m.walltime, [g.levels for g in m.groups]) for m in ctx.moldables]
        seen["times"] = (ctx.min_start, ctx.earliest, ctx.begin)
        seen["slots"] = [(s.begin, s.end, s.free.tolist()) for s in ctx.slots()]
        seen["check"] = ctx.check(Placement(8, 300, [0]))
        return ctx.default()

    job0 = Job(id=1, walltime=100, request="core=1")
    job = Job(id=2, moldables=[Moldable(8, 40, [ResourceGroup([("core", 2)])])], types=["assign=look"],
              dependencies=[Dependency(1)])
    r = run(grid(1, 2), [job0, job], now=10, job_security_time=5, assign={"look": look})
    assert seen["moldables"] == [(8, 45, [(("core", 2),)])]
    assert seen["times"] == (115, 115, 10)
    assert seen["slots"][0] == (10, 114, [1])
    assert seen["check"] is None
    assert (r[2].start_time, r[2].walltime) == (115, 45)


@pytest.mark.parametrize("placement, message", [
    ((1, 0, [0]), "returned a tuple, expected a Placement or None"),
    (Placement(99, 0, [0]), "moldable 99 is not one of the job's (1)"),
    (Placement(1, 0, [0]), "starts at 0, before the earliest allowed start 100"),
    (Placement(1, 100.5, [0]), "start time 100.5 is not an integer"),
    (Placement(1, 150, [0, 2]), "resource ids 3 are not free during [150, 159]"),
    (Placement(1, 100, []), "no resources"),
    (Placement(1, 100, "0"), "resources: a str"),
    (Placement(1, 2**31, [0]), "after the end of the slot set"),
])
def test_assign_plugin_garbage_is_reported(placement, message):
    @assign_function
    def bad(ctx):
        return placement

    busy = ScheduledJob(id=90, start_time=100, walltime=100, resources=[3])
    r = run(grid(1, 4), [Job(id=1, walltime=10, request="core=1", types=["assign=bad"]),
                         Job(id=2, walltime=10, request="core=1")], now=100, scheduled=[busy], assign={"bad": bad})
    assert r.errors[1].startswith("assign plugin 'bad' ")
    assert message in r.errors[1]
    assert r[2].start_time == 100


def test_assign_plugin_placements_respect_constraints_and_quotas():
    platform = Platform([Resource(id=i, type="default" if i > 1 else "licence",
                                  properties={"network_address": "n"}) for i in range(1, 5)],
                        ["resource_id", "network_address"])

    @assign_function
    def take(ctx, *roids):
        return Placement(ctx.moldables[0].id, ctx.earliest, [int(x) for x in roids])

    r = run(platform, [Job(id=1, walltime=10, request="resource_id=1", types=["assign=take:0"])],
            assign={"take": take})
    assert "resource ids 1 are outside the job's constraints" in r.errors[1]
    quotas = QuotaState.from_rules({"quotas": {"*,*,*,*": [2, -1, -1]}}, platform)
    r = run(platform, [Job(id=1, walltime=10, request="resource_id=1", types=["assign=take:1:2:3"])],
            assign={"take": take}, quotas=quotas)
    assert "the quotas refuse it" in r.errors[1]


def test_assign_plugin_none_leaves_the_job_waiting():
    r = run(grid(), [Job(id=1, walltime=10, request="core=1", types=["assign=nothing"])],
            assign={"nothing": assign_function(lambda ctx: None)})
    assert r.unscheduled[1] == "assign plugin 'nothing' found no placement"
    assert not r.errors


def test_assign_then_container_opens_its_inner_slot_set():
    jobs = [Job(id=1, walltime=100, request="core=8", types=["container=", "assign=start_now"]),
            Job(id=2, walltime=10, request="core=2", types=["inner=1"])]
    r = run(grid(), jobs, assign={"start_now": assign_start_now})
    assert r[1].start_time == 0 and set(r[2].resources) <= set(r[1].resources)


def test_assign_with_a_find_plugin_uses_it_in_its_searches():
    jobs = [Job(id=1, walltime=10, request="core=3", types=["assign=start_now", "find=contiguous"])]
    busy = ScheduledJob(id=90, start_time=0, walltime=100, resources=[2])
    r = run(grid(1, 8), jobs, scheduled=[busy], assign={"start_now": assign_start_now},
            find={"contiguous": find_contiguous})
    assert r[1].resources == [3, 4, 5]


# ----------------------------------------------------------------------------- equivalences
@st.composite
def workloads(draw):
    """Random rounds: irregular platforms, running jobs, moldables, dependencies, timesharing, quotas."""
    platform = draw(nested_platforms())
    now = draw(st.integers(0, 1000))
    n = draw(st.integers(1, 10))
    jobs = []
    for jid in range(1, n + 1):
        moldables = []
        for k in range(draw(st.integers(1, 2))):
            levels = [(lbl, draw(st.integers(1, 2))) for lbl in draw(st.sampled_from(LEVEL_CHAINS))]
            moldables.append(Moldable(jid * 10 + k, draw(st.integers(1, 400)), [ResourceGroup(levels)]))
        types = [draw(st.sampled_from(["small", "big"]))]
        if draw(st.integers(0, 5)) == 0:
            types.append("timesharing=*,*")
        deps = [Dependency(draw(st.integers(1, n)))] if jid > 1 and draw(st.integers(0, 4)) == 0 else []
        jobs.append(Job(id=jid, user=draw(st.sampled_from(["a", "b"])), moldables=moldables, types=types,
                        dependencies=deps))
    owner = [draw(st.integers(-1, 2)) for _ in platform.resources]
    running = []
    for k in range(3):
        res = [r.id for r, o in zip(platform.resources, owner) if o == k]
        if res:
            running.append(ScheduledJob(id=1000 + k, start_time=now - draw(st.integers(0, 300)),
                                        walltime=draw(st.integers(1, 900)), resources=res))
    rules = None
    if draw(st.booleans()):
        rules = {"quotas": {"*,*,small,*": [draw(st.integers(1, 8)), draw(st.integers(1, 3)), -1],
                            "*,*,*,/": [-1, -1, draw(st.integers(1, 2))]},
                 "job_types": ["small", "big"]}
    return platform, jobs, running, now, rules


def with_type(jobs, type_text):
    return [Job(id=j.id, user=j.user, moldables=j.moldables, dependencies=j.dependencies,
                types={**j.types, **dict([type_text.split("=", 1)])}) for j in jobs]


def round_of(w, jobs=None, **plugins):
    platform, base_jobs, running, now, rules = w
    quotas = QuotaState.from_rules(rules, platform) if rules else None
    return run(platform, jobs or base_jobs, now=now, scheduled=running, job_security_time=1, quotas=quotas, **plugins)


@find_function
def default_find(window):
    return window.default_match()


@assign_function
def default_assign(ctx):
    return ctx.default()


@assign_function
def first_fit_assign(ctx):
    return ctx.first_fit()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads())
def test_python_window_search_matches_the_compiled_one(w):
    expected = decisions(round_of(w))
    got = round_of(w, with_type(w[1], "find=same"), find={"same": default_find})
    assert decisions(got) == expected and not got.errors


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads())
def test_assign_services_reproduce_the_scheduler(w):
    expected = decisions(round_of(w))
    for name, func in (("default", default_assign), ("first_fit", first_fit_assign)):
        got = round_of(w, with_type(w[1], f"assign={name}"), assign={name: func})
        assert decisions(got) == expected and not got.errors, name


def test_python_window_search_with_a_quotas_calendar():
    platform = grid(2, 4)
    rules = {"periodical": [["00:00-12:00 * * *", "day", ""], ["12:00-24:00 * * *", "night", ""]],
             "day": {"*,*,*,*": [2, -1, -1]}, "night": {"*,*,*,*": [8, -1, -1]}}
    now = 1735689600  # 2025-01-01 00:00 UTC
    jobs = [Job(id=i, walltime=3600 * (i % 3 + 1), request=f"core={i % 4 + 1}") for i in range(1, 9)]

    def once(js, **plugins):
        quotas = QuotaState.from_rules(rules, platform)
        return run(platform, js, now=now, quotas=quotas, **plugins)

    expected = decisions(once(jobs))
    assert any(a[1] > now for a in expected.values())  # the calendar matters
    got = once(with_type(jobs, "find=same"), find={"same": default_find})
    assert decisions(got) == expected and not got.errors


# ----------------------------------------------------------------------------- shipped plugins
def test_contiguous_takes_one_run_of_consecutive_resources():
    busy = [ScheduledJob(id=90, start_time=0, walltime=100, resources=[2, 7])]
    jobs = [Job(id=1, walltime=10, request="core=3", types=["find=contiguous"]),
            Job(id=2, walltime=10, request="core=3")]
    r = run(grid(1, 8), jobs, scheduled=busy, find={"contiguous": find_contiguous})
    assert r[1].resources == [3, 4, 5]  # the default would take 1, 3, 4
    assert r[2].resources == [1, 6, 8]


def test_contiguous_follows_the_resource_order():
    res = [Resource(id=rid, properties={"network_address": "n"}) for rid in (4, 1, 2, 9, 3)]
    platform = Platform(res, ["resource_id", "network_address"])  # order indices 0..4
    busy = [ScheduledJob(id=90, start_time=0, walltime=100, resources=[1])]  # order index 1
    jobs = [Job(id=1, walltime=10, request="resource_id=2", types=["find=contiguous"]),
            Job(id=2, walltime=10, request="resource_id=1", types=["find=contiguous:extra"])]
    r = run(platform, jobs, scheduled=busy, find={"contiguous": find_contiguous})
    assert r[1].resources == [2, 9]  # order indices 2 and 3, not 0 and 2
    assert "raised TypeError" in r.errors[2]  # it takes no argument


def test_contiguous_waits_for_a_run_when_the_free_set_is_fragmented():
    busy = [ScheduledJob(id=90, start_time=0, walltime=100, resources=[2, 4, 6])]
    r = run(grid(1, 8), [Job(id=1, walltime=10, request="core=4", types=["find=contiguous"])],
            scheduled=busy, find={"contiguous": find_contiguous})
    assert (r[1].start_time, r[1].resources) == (100, [1, 2, 3, 4])


def test_best_fit_fills_the_fullest_node_first():
    busy = [ScheduledJob(id=90, start_time=0, walltime=100, resources=[5, 6, 7]),   # node 2: 1 core left
            ScheduledJob(id=91, start_time=0, walltime=100, resources=[9])]        # node 3: 3 cores left
    jobs = [Job(id=1, walltime=10, request="core=1", types=["find=best_fit"]),
            Job(id=2, walltime=10, request="core=2", types=["find=best_fit"]),
            Job(id=3, walltime=10, request="core=1")]
    r = run(grid(), jobs, scheduled=busy, find={"best_fit": find_best_fit})
    assert r[1].resources == [8]
    assert r[2].resources == [10, 11]
    assert r[3].resources == [1]


def test_best_fit_falls_back_to_the_whole_window_and_checks_its_level():
    busy = [ScheduledJob(id=90, start_time=0, walltime=100, resources=[1, 2, 5, 6])]
    r = run(grid(2, 4), [Job(id=1, walltime=10, request="core=4", types=["find=best_fit"])],
            scheduled=busy, find={"best_fit": find_best_fit})
    assert r[1].resources == [3, 4, 7, 8]
    r = run(grid(2, 4), [Job(id=1, walltime=10, request="core=1", types=["find=best_fit:rack"])],
            find={"best_fit": find_best_fit})
    assert "unknown hierarchy level 'rack'" in r.errors[1]


def test_start_now_places_now_or_never():
    busy = [ScheduledJob(id=90, start_time=0, walltime=100, resources=[1, 2, 3, 4])]
    jobs = [Job(id=1, walltime=10, request="core=8", types=["assign=start_now"]),
            Job(id=2, walltime=10, request="core=8", types=["assign=start_now:100"]),
            Job(id=3, walltime=10, request="core=2", types=["assign=start_now"]),
            Job(id=4, walltime=10, request="core=1", types=["assign=start_now:-5"])]
    r = run(grid(2, 4), jobs, scheduled=busy, assign={"start_now": assign_start_now})
    assert r.unscheduled[1] == "assign plugin 'start_now' found no placement"
    assert r[2].start_time == 100
    assert r[3].start_time == 0
    assert "slack must be >= 0" in r.errors[4]


def test_start_now_counts_from_the_dependencies_end():
    jobs = [Job(id=1, walltime=50, request="core=1"),
            Job(id=2, walltime=10, request="core=1", types=["assign=start_now"], dependencies=[Dependency(1)])]
    r = run(grid(1, 2), jobs, assign={"start_now": assign_start_now})
    assert r[2].start_time == 50


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads(), st.sampled_from(["find=contiguous", "find=best_fit", "assign=start_now:30"]))
def test_shipped_plugins_keep_the_schedule_valid(w, type_text):
    platform, jobs, running, now, rules = w
    jobs = with_type(jobs, type_text)
    r = round_of(w, jobs, find={"contiguous": find_contiguous, "best_fit": find_best_fit},
                 assign={"start_now": assign_start_now})
    assert not r.errors
    assert overlaps(platform, jobs, r, running, security_time=1) == []
    assert dependency_violations(jobs, r) == []
    if rules:
        assert quota_violations(platform, jobs, r, rules, running, security_time=1) == []
    if type_text == "find=contiguous":
        for a in r.assignments.values():
            assert a.roids[-1] - a.roids[0] + 1 == a.nb_resources
    if type_text.startswith("assign"):
        assert request_violations(platform, jobs, r, now) == []


# ----------------------------------------------------------------------------- sorting plugin
def test_shortest_job_first_with_a_starvation_guard():
    now = 10_000
    jobs = {1: Job(id=1, walltime=3000, submission_time=now - 100),
            2: Job(id=2, walltime=60, submission_time=now - 50),
            3: Job(id=3, moldables=[Moldable(3, 900, [ResourceGroup([("resource_id", 1)])]),
                                    Moldable(4, 30, [ResourceGroup([("resource_id", 2)])])],
                   submission_time=now - 5000),
            4: Job(id=4, walltime=60, submission_time=now - 10)}
    assert sort_shortest_job_first(["default"], now, [1, 2, 3, 4], jobs, "{}", None) == [3, 2, 4, 1]
    assert sort_shortest_job_first(["default"], now, [1, 2, 3, 4], jobs, '{"max_wait": 100}', None) == [1, 3, 2, 4]
    with pytest.raises(ValueError, match="max_wait"):
        sort_shortest_job_first(["default"], now, [1], jobs, '{"max_wait": "soon"}', None)


class FakeEntryPoint:
    def __init__(self, name, func=None, error=None):
        self.name, self.value, self._func, self._error = name, f"fake.module:{name}", func, error

    def load(self):
        if self._error:
            raise self._error
        return self._func


@pytest.fixture
def installed(monkeypatch):
    """Entry points seen by oarsched, per group (the installed metadata is not consulted)."""
    groups: dict[str, list[FakeEntryPoint]] = {}

    def fake_entry_points(*, group):
        return list(groups.get(group, []))

    monkeypatch.setattr(registry_module, "entry_points", fake_entry_points)
    monkeypatch.setattr(sorting, "entry_points", fake_entry_points)
    return groups


def test_sorting_plugin_runs_through_custom_job_sorting(installed):
    installed["oar.jobs_sorting_func"] = [FakeEntryPoint("sjf", sort_shortest_job_first)]
    config = OarConfig.from_mapping({"JOB_PRIORITY": "CUSTOM", "CUSTOM_JOB_SORTING": "sjf"})
    jobs = [Job(id=1, walltime=300), Job(id=2, walltime=100), Job(id=3, walltime=200)]
    assert sorting.order_jobs(jobs, [], ["default"], 0, config) == ([2, 3, 1], {})


# ----------------------------------------------------------------------------- entry points
def test_entry_point_plugins_are_found_by_name_and_cached(installed):
    calls = []

    @find_function
    def first_free(window):
        calls.append(window.start_time)
        return window.free[:1]

    installed["oar.find_func"] = [FakeEntryPoint("first_free", first_free)]
    sched = Scheduler(grid())
    jobs = [Job(id=i, walltime=10, request="core=1", types=["find=first_free"]) for i in (1, 2)]
    r = sched.schedule(jobs, 0)
    assert [r[1].resources, r[2].resources] == [[1], [2]] and calls == [0, 0]
    installed["oar.find_func"] = []
    assert sched.schedule(jobs, 0)[1].resources == [1]  # cached by the scheduler's registry


def test_entry_point_failures_are_reported_per_job(installed):
    installed["oar.find_func"] = [FakeEntryPoint("broken", error=ImportError("no module named site_magic")),
                                  FakeEntryPoint("other", find_contiguous)]
    installed["oar.assign_func"] = [FakeEntryPoint("notfunc", 42)]
    jobs = [Job(id=1, walltime=10, request="core=1", types=["find=missing"]),
            Job(id=2, walltime=10, request="core=1", types=["find=broken"]),
            Job(id=3, walltime=10, request="core=1", types=["assign=notfunc"]),
            Job(id=4, walltime=10, request="core=1")]
    r = Scheduler(grid()).schedule(jobs, 0)
    assert r.errors[1] == ("find plugin 'missing' is not installed "
                           "(entry point group 'oar.find_func'; installed: broken, other)")
    assert r.errors[2] == ("find plugin 'broken' cannot be loaded from fake.module:broken: "
                           "ImportError: no module named site_magic")
    assert r.errors[3] == "assign plugin 'notfunc' is a int, not a function"
    assert r[4].start_time == 0


def test_registered_in_this_installation():
    """Through the real ``importlib.metadata``: needs the entry points of pyproject.toml installed."""
    names = {ep.name for ep in entry_points(group="oar.find_func")}
    if "contiguous" not in names:
        pytest.skip("oarsched's entry points are not installed (pip install -e . after adding them)")
    busy = [ScheduledJob(id=90, start_time=0, walltime=100, resources=[2])]
    r = Scheduler(grid(1, 8)).schedule(
        [Job(id=1, walltime=10, request="core=2", types=["find=contiguous", "assign=start_now"])], 0, busy)
    assert r[1].resources == [3, 4]
    sorted_names = {ep.name for ep in entry_points(group="oar.jobs_sorting_func")}
    assert "shortest_job_first" in sorted_names
    assert {"best_fit"} <= names and "start_now" in {ep.name for ep in entry_points(group="oar.assign_func")}


# ----------------------------------------------------------------------------- OAR3 adapters
def oar3_first_run(itvs_avail, hy_res_rqts, hy, beginning, *args, **kwargs):
    """An OAR3-style find function: one group, one level; the first interval long enough."""
    from procset import ProcInt, ProcSet

    levels, constraints = hy_res_rqts[0]
    _label, n = levels[0]
    for itv in (itvs_avail & constraints).intervals():
        if len(itv) >= n:
            return ProcSet(ProcInt(itv.inf, itv.inf + n - 1))
    return ProcSet()


def test_oar3_find_function_runs_through_the_procset_adapter(installed):
    pytest.importorskip("procset")
    installed["oar.find_func"] = [FakeEntryPoint("first_run", oar3_first_run)]
    busy = [ScheduledJob(id=90, start_time=0, walltime=100, resources=[2, 7])]
    r = Scheduler(grid(1, 8)).schedule([Job(id=1, walltime=10, request="core=3", types=["find=first_run"])], 0, busy)
    assert r[1].resources == [3, 4, 5]


def test_oar3_find_function_sees_oar3_values():
    procset = pytest.importorskip("procset")
    seen = {}

    def spy(itvs_avail, hy_res_rqts, hy, beginning, *args, **kwargs):
        seen.update(avail=str(itvs_avail), rqts=[(lv, str(c)) for lv, c in hy_res_rqts],
                    nodes=[str(b) for b in hy["network_address"]], beginning=beginning, args=args, kwargs=kwargs)
        return procset.ProcSet((4, 5))

    busy = [ScheduledJob(id=90, start_time=0, walltime=100, resources=[1])]
    r = run(grid(2, 4), [Job(id=1, walltime=10, request="network_address=1/core=2", types=["find=spy:x:k=v"])],
            scheduled=busy, find={"spy": spy})
    assert seen == {"avail": "1-7", "rqts": [([("network_address", 1), ("core", 2)], "0-7")],
                    "nodes": ["0-3", "4-7"], "beginning": True, "args": ("x",), "kwargs": {"k": "v"}}
    assert r[1].resources == [5, 6]


def oar3_assign_first_window(slots_set, job, hy, min_start_time, *args, **kwargs):
    """An OAR3-style assign function: first moldable, first window with enough free resources, lowest ones."""
    from procset import ProcSet

    mld_id, walltime, rqts = job.mld_res_rqts[0]
    (_levels, constraints), = rqts
    n = _levels[-1][1]
    for first, last in slots_set.traverse_with_width(walltime):
        if first.b < min_start_time:
            continue
        avail = constraints
        for slot in slots_set.traverse_id(first.id, last.id):
            avail = avail & slot.itvs
        if len(avail) >= n:
            job.moldable_id, job.start_time = mld_id, first.b
            job.res_set = ProcSet(*list(avail)[:n])
            slots_set.split_slots(first.id, last.id, job)
            return
    job.start_time = -1


def test_oar3_assign_function_runs_through_the_facade(installed):
    pytest.importorskip("procset")
    installed["oar.assign_func"] = [FakeEntryPoint("first_window", oar3_assign_first_window)]
    busy = [ScheduledJob(id=90, start_time=0, walltime=100, resources=[1, 2, 3])]
    jobs = [Job(id=1, walltime=10, request="core=2", types=["assign=first_window"]),
            Job(id=2, walltime=10, request="core=4", types=["assign=first_window"]),
            Job(id=3, walltime=10, request="core=1", types=["assign=first_window", "timesharing=*,*"])]
    r = Scheduler(grid(1, 4)).schedule(jobs, 0, busy)
    assert (r[1].start_time, r[1].resources) == (100, [1, 2])
    assert (r[2].start_time, r[2].resources) == (110, [1, 2, 3, 4])
    assert (r[3].start_time, r[3].resources) == (0, [4])


def test_oar3_facade_slot_set_reads_like_oar3():
    pytest.importorskip("procset")
    from oarsched._core import bitset
    from oarsched.plugins.api import SlotView
    from oarsched.plugins.oar3 import OAR3SlotSet

    views = [SlotView(0, 9, bitset.from_indices([0, 1], 4)), SlotView(10, 19, bitset.from_indices([1], 4)),
             SlotView(20, 99, bitset.from_indices([0, 1, 2, 3], 4))]
    ss = OAR3SlotSet(views, 0)
    assert (ss.first().id, ss.last().id, ss.slot_id_at(15), ss.slot_id_at(100)) == (1, 3, 2, 0)
    assert ss.get_encompassing_slots(5, 25) == (1, 3)
    assert [(a.id, b.id) for a, b in ss.traverse_with_width(15)] == [(1, 2), (2, 3), (3, 3)]
    assert str(ss.slots[2].itvs) == "1" and ss.slots[2].prev == 1 and ss.slots[3].next == 0


# ----------------------------------------------------------------------------- the README's example
@find_function
def same_rack(window: Window, column: str = "rack"):
    """README.md, "Extending the scheduler" (kept identical)."""
    free = window.free
    racks = [window.platform.resources[i].properties.get(column) for i in free]
    for rack in dict.fromkeys(racks):
        in_rack = free[[r == rack for r in racks]]
        found = window.default_match(available=in_rack)
        if found is not None:
            return found
    return None


def test_readme_example_keeps_jobs_within_one_rack():
    res = [Resource(id=i, properties={"network_address": f"n{(i - 1) // 2}", "rack": "A" if i <= 4 else "B",
                                      "room": "R1"}) for i in range(1, 9)]
    platform = Platform(res, ["resource_id", "network_address"])
    busy = [ScheduledJob(id=9, start_time=0, walltime=100, resources=[1, 2])]
    jobs = [Job(id=1, walltime=3600, request="network_address=2", types=["find=same_rack"]),
            Job(id=2, walltime=3600, request="network_address=2"),
            Job(id=3, walltime=60, request="network_address=3", types=["find=same_rack:column=room"])]
    result = Scheduler(platform, plugins=PluginRegistry(find={"same_rack": same_rack})).schedule(
        jobs, now=0, scheduled=busy)
    assert result[1].resources == [5, 6, 7, 8]  # the default matcher would take nodes 2 and 3 (racks A and B)
    assert (result[2].start_time, result[2].resources) == (100, [1, 2, 3, 4])
    assert result[3].start_time == 3700


def test_oar3_style_function_without_procset_is_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "procset", None)  # as if the package were not installed
    r = run(grid(), [Job(id=1, walltime=10, request="core=1", types=["find=old"])], find={"old": oar3_first_run})
    assert r.errors[1] == ("find plugin 'old' is an OAR3-style function and needs the 'procset' package "
                           "(pip install procset)")


def test_package_docstring_example():
    import doctest

    import oarsched.plugins

    assert doctest.testmod(oarsched.plugins, raise_on_error=False).failed == 0
