"""The interactive Gantt page, opened in a real headless Chromium (Debian's chromium + chromium-driver).

Not only its HTML text: the page must load with no console error and no
network, draw every job, show the right job when hovered, filter, zoom, and
the live server must serve the same page for an OAR3 database.
"""
from __future__ import annotations

import os
import shutil
import threading

import pytest

from oarsched.sim import WorkloadJob, platform_from_spec, simulate
from oarsched.viz import gantt_from_simulation
from oarsched.viz.html import gantt_data, serve_gantt, write_gantt_html
from tests.conftest import missing


def _chromedriver() -> str:
    path = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver")
                                            else None)
    if path is None:
        missing("chromium-driver is not installed (apt-get install chromium chromium-driver)")
    return path


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(_chromedriver()), options=options)
    yield driver
    driver.quit()


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


@pytest.fixture(scope="module")
def run():
    platform = platform_from_spec("switch=2/network_address=4/core=4")
    jobs = [WorkloadJob(id=i, submit=60 * i, runtime=600 + 37 * i, walltime=1800, request=f"resource_id={1 + i % 6}",
                        user=f"user{i % 3}", queue="besteffort" if i % 7 == 0 else "default")
            for i in range(1, 41)]
    return simulate(jobs, platform)


def test_page_loads_offline_and_draws_every_job(browser, run, tmp_path):
    chart = gantt_from_simulation(run, title="forty jobs")
    path = write_gantt_html(chart, tmp_path / "chart.html")
    text = open(path, encoding="utf-8").read()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
    browser.get(f"file://{path}")
    assert browser.title == "forty jobs"
    drawn = browser.execute_script(
        "return Array.from(new Set(Array.from(document.querySelectorAll('rect.job')).map(r => +r.dataset.job)))")
    started = sorted({run_.job_id for run_ in run.runs})
    assert sorted(drawn) == started and len(started) == 40
    # every box sits on the rows of the job's resources (partly used nodes: only its own rows)
    data = gantt_data(chart)
    rows = {j["id"]: sum(c for _, c in j["boxes"]) for j in data["jobs"]}
    heights = browser.execute_script(
        "const h = {}; document.querySelectorAll('rect.job').forEach(r => {"
        "h[r.dataset.job] = (h[r.dataset.job] || 0) + (+r.getAttribute('height')); }); return h;")
    row_h = browser.execute_script("return document.querySelector('rect.job').getAttribute('height') / "
                                   "ganttData().jobs[0].boxes[0][1];")
    for job_id, count in rows.items():
        assert heights[str(job_id)] == pytest.approx(count * row_h)
    assert console_errors(browser) == []


def test_hover_shows_the_right_job(browser, run, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    path = write_gantt_html(gantt_from_simulation(run), tmp_path / "chart.html")
    browser.get(f"file://{path}")
    for job_id in (5, 17, 33):
        record = run.record(job_id)
        box = browser.find_element(By.ID, f"job-{job_id}-0")
        ActionChains(browser).move_to_element(box).perform()
        tip = browser.find_element(By.ID, "tip")
        assert tip.is_displayed()
        lines = tip.text.splitlines()
        assert lines[0] == f"job {job_id}"
        assert f"user: {record.user}" in tip.text and f"queue: {record.queue}" in tip.text
        assert f"resources ({len(record.resources)})" in tip.text
        assert f"request: resource_id={1 + job_id % 6}" in tip.text
    assert console_errors(browser) == []


def test_filter_colour_zoom_and_grouping(browser, run, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    path = write_gantt_html(gantt_from_simulation(run), tmp_path / "chart.html")
    browser.get(f"file://{path}")
    Select(browser.find_element(By.ID, "f-user")).select_by_value("user1")
    status = browser.find_element(By.ID, "status").text
    assert status.startswith(f"{sum(1 for r in run.records if r.user == 'user1')} of 40 jobs")
    dimmed = browser.execute_script(
        "return Array.from(document.querySelectorAll('rect.job.dim')).map(r => ganttData().jobs[+r.dataset.index].user)")
    assert dimmed and "user1" not in dimmed
    Select(browser.find_element(By.ID, "colour")).select_by_value("user")
    legend = browser.find_element(By.ID, "legend").text
    assert "colour: user" in legend and all(u in legend for u in ("user0", "user1", "user2"))
    fills = browser.execute_script(
        "const f = {}; document.querySelectorAll('rect.job').forEach(r => {"
        "f[ganttData().jobs[+r.dataset.index].user + '|' + r.getAttribute('fill')] = 1; }); return Object.keys(f);")
    assert len(fills) == 3  # one colour per user
    before = browser.execute_script("return document.getElementById('jobs').getAttribute('transform')")
    browser.execute_script("document.getElementById('chart').dispatchEvent(new WheelEvent('wheel', "
                           "{deltaY: -100, clientX: 700, clientY: 300, bubbles: true, cancelable: true}))")
    after = browser.execute_script("return document.getElementById('jobs').getAttribute('transform')")
    assert after != before and float(after.split("scale(")[1].split(",")[0]) > \
        float(before.split("scale(")[1].split(",")[0])
    Select(browser.find_element(By.ID, "group")).select_by_value("network_address")
    labels = browser.execute_script("return Array.from(document.querySelectorAll('#rows text')).map(t => t.textContent)")
    assert len(labels) == 8 and len(set(labels)) == 8
    assert console_errors(browser) == []


def test_served_page_for_a_live_database(browser, tmp_path):
    from oarsched.oar import demo
    from oarsched.oar.config import OarConfig
    from oarsched.oar.db import OarDatabase
    from oarsched.oar.kamelot import schedule_queue
    from oarsched.viz import gantt_from_db

    db_path = tmp_path / "oar.sqlite"
    info = demo.build_demo_db(db_path)
    conf = tmp_path / "oar.conf"
    conf.write_text(demo.demo_oar_conf(db_path))
    config = OarConfig.load(conf)
    db = OarDatabase(config.sqlalchemy_url())
    now = info.get("now", demo.NOW)
    box: dict = {}
    ready = threading.Event()

    def started(server):
        box["server"] = server
        ready.set()

    thread = threading.Thread(target=serve_gantt, kwargs=dict(
        make_chart=lambda: gantt_from_db(db, config, now, title="live"), port=0, refresh=1, ready=started),
        daemon=True)
    thread.start()
    assert ready.wait(10)
    port = box["server"].server_address[1]
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        first = browser.execute_script("return ganttData().jobs.length")
        schedule_queue(db, config, "default", now)  # a round writes the gantt tables
        expected = len(gantt_data(gantt_from_db(db, config, now))["jobs"])
        assert expected > first
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(browser, 10).until(lambda d: d.execute_script("return ganttData().jobs.length") == expected)
        drawn = browser.execute_script(
            "return new Set(Array.from(document.querySelectorAll('rect.job')).map(r => r.dataset.job)).size")
        assert drawn == expected
        assert console_errors(browser) == []
    finally:
        box["server"].shutdown()
        thread.join(10)
