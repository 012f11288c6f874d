"""benchmarks/report.py: the one writer of the benchmark scripts' results."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "report.py"
_spec = importlib.util.spec_from_file_location("benchmarks_report", SCRIPT)
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)

RESULTS = """# Benchmark results

## Quantizer (issue 2)

old table

## Input pipeline (issue 4)

kept
"""


def test_publish_prints_and_appends_each_run(tmp_path, capsys):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n")
    report.publish("| a |\n| --- |", str(path))
    report.publish("| b |", str(path))
    assert capsys.readouterr().out == "| a |\n| --- |\n| b |\n"
    assert path.read_text() == "# Benchmark results\n\n| a |\n| --- |\n\n| b |\n"


def test_publish_without_a_path_only_prints(tmp_path, capsys):
    report.publish("text", None)
    assert capsys.readouterr().out == "text\n"
    assert not list(tmp_path.iterdir())


def test_a_section_replaces_its_own_and_keeps_the_others(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text(RESULTS)
    report.write_results(path, "## Quantizer (issue 2)\n\nnew table\n", "## Quantizer (issue 2)")
    assert path.read_text() == RESULTS.replace("old table", "new table")


def test_a_new_section_is_appended_and_a_new_file_titled(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text(RESULTS)
    report.write_results(path, "## Quantizer on jax\n\nrows", "## Quantizer on jax")
    assert path.read_text() == RESULTS + "\n## Quantizer on jax\n\nrows\n"
    fresh = tmp_path / "fresh.md"
    report.write_results(fresh, "## Scaling\n\nrows", "## Scaling")
    assert fresh.read_text() == "# Benchmark results\n\n## Scaling\n\nrows\n"


def test_cpu_model_reads_proc_cpuinfo():
    with open("/proc/cpuinfo") as f:
        names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    assert report.cpu_model().startswith(names[0] if names else "")
    assert report.cpu_model().endswith(" cores)")


def test_memory_below_10_mib_keeps_a_decimal():
    figures = [report.format_mib(v) for v in (0.0, 1.265625, 1.6, 9.94, 10.2, 1558.4)]
    assert figures == ["0.0", "1.3", "1.6", "9.9", "10", "1558"]
