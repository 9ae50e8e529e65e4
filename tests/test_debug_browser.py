"""The debug data report (report.html) opens in headless Chromium without errors, like the evaluation report."""

from __future__ import annotations

from test_browser import artifacts, chromium, open_page  # noqa: F401  (fixtures)

from conftest import TINY, write_jsonl


def test_debug_data_report_opens_in_headless_chromium(chromium, tmp_path, artifacts):  # noqa: F811
    from textsift.config import load_config
    from textsift.debug import debug_data
    from textsift.debug.report import write_data_report

    rows = [{"text": t, "label": label} for t, label in TINY] + [{"text": "<b>not bold</b> & <script>alert(1)</script>", "label": "neg"}] * 2
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": "What a WONDERFUL happy day!", "label": "pos"}, {"text": "fresh", "label": "neg"}])
    report = debug_data(load_config(base={"data": {"train": str(train), "test": str(test)}}), folds=4)
    write_data_report(report, tmp_path / "report")
    images, problems = open_page(chromium, tmp_path / "report" / "report.html", artifacts / "debug_data.png")
    assert problems == []
    assert images == []  # tables only: nothing to load
    html = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "<script>" not in html and "&lt;script&gt;" in html
    for section in ('id="checks"', 'id="leakage"', 'id="noise"', "leakage_exact", "What a WONDERFUL happy day!"):
        assert section in html
    assert (artifacts / "debug_data.png").stat().st_size > 10_000
