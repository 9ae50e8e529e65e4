"""Open report.html in headless Chromium: every image loads, the page logs no errors; a screenshot is taken.

The screenshots go to the test's tmp_path, or to the folder TEXTSIFT_TEST_ARTIFACTS names (to keep them):
never a fixed folder in the repository, which two runs at once would share.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from browser import FLAGS, ensure_chromium
from test_report import fixture_data


@pytest.fixture
def artifacts(tmp_path, request) -> Path:
    """Where this test's screenshots go: $TEXTSIFT_TEST_ARTIFACTS/<test name>/ when set, else tmp_path."""
    root = os.environ.get("TEXTSIFT_TEST_ARTIFACTS")
    return Path(root) / request.node.name if root else tmp_path / "artifacts"


@pytest.fixture(scope="module")
def chromium() -> Path:
    try:
        return ensure_chromium()
    except RuntimeError as exc:
        pytest.fail(str(exc))  # a missing browser is a failure, never a skip


def open_page(chromium: Path, page_file: Path, screenshot: Path) -> tuple[list, list[str]]:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.goto(page_file.resolve().as_uri(), wait_until="load")
            images = page.evaluate(
                "() => Array.from(document.images).map(i => ({title: i.title, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}))"
            )
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return images, problems


def test_report_html_opens_in_headless_chromium(chromium, tmp_path, artifacts):
    from textsift.evaluation.report import write_report

    training_log = tmp_path / "metrics.jsonl"
    training_log.write_text(
        '{"event": "step", "step": 1, "epoch": 1, "train/loss": 1.2, "lr": 0.01, "time": 0}\n'
        '{"event": "epoch", "step": 2, "epoch": 1.0, "train/loss": 1.0, "val/accuracy": 0.5, "val/loss": 1.1, "lr": 0.01}\n'
        '{"event": "epoch", "step": 4, "epoch": 2.0, "train/loss": 0.6, "val/accuracy": 0.7, "val/loss": 0.9, "lr": 0.005}\n'
    )
    report = write_report(tmp_path / "report", fixture_data(temperature=1.5), training_log=training_log)
    shot = artifacts / "report.png"
    images, problems = open_page(chromium, report.directory / "report.html", shot)
    titles = {i["title"] for i in images}
    assert titles == {"classification_report.png", "confusion_matrix.png", "reliability.png", "confidence.png",
                      "error_by_length.png", "training_curves.png"}
    broken = [i for i in images if not (i["complete"] and i["w"] > 100 and i["h"] > 100)]
    assert not broken, broken
    assert not problems, problems
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_cv_report_opens_in_headless_chromium(chromium, tmp_path, artifacts):
    from textsift.training.cv import aggregate, write_summary

    per_fold = [{"test/accuracy": 0.8, "test/macro_f1": 0.7}, {"test/accuracy": 0.9, "test/macro_f1": 0.75}]
    write_summary(tmp_path, per_fold, aggregate(per_fold))
    images, problems = open_page(chromium, tmp_path / "cv_report.html", artifacts / "cv_report.png")
    assert len(images) == 1 and images[0]["complete"] and images[0]["w"] > 100
    assert not problems, problems
