"""examples/results.py: the READMEs' result blocks are what the committed JSON prints, and a run
is recorded with its command, commit, date, times and CPU."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tfvq.utils.machine import describe_cpu


@pytest.fixture(scope="module")
def results(example):
    return example("results")


def test_readme_blocks_are_generated_from_the_committed_json(results):
    # The check the issue asks for: edit a number in a README by hand and this fails.
    assert results.stale_blocks() == []
    names = set()
    for readme in results.READMES:
        with open(os.path.join(results.ROOT, readme), encoding="utf-8") as f:
            names |= {m["name"] for m in results._BLOCK.finditer(f.read())}
    # Every run has its block somewhere, so none of its numbers goes unpublished.
    assert names == set(results.RUNS)


def test_a_hand_edited_block_is_caught(results, tmp_path):
    readme = "x\n<!-- results:cifar10 -->\nnormalised MSE 0.001\n<!-- /results:cifar10 -->\ny\n"
    for name in results.READMES:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(readme)
    assert (results.READMES[0], "cifar10") in results.stale_blocks(
        root=tmp_path, results_dir=results.RESULTS_DIR)
    # `update` writes the generated block back; then nothing is stale.
    records = results.load_records(results.RESULTS_DIR)
    fresh = results.regenerate(readme, records)
    assert fresh.startswith("x\n<!-- results:cifar10 -->\n") and fresh.endswith("\ny\n")
    assert "normalised MSE 0.001" not in fresh
    assert results.regenerate(fresh, records) == fresh


def test_an_unknown_block_name_is_refused(results):
    with pytest.raises(ValueError, match="unknown run 'nosuch'"):
        results.regenerate("<!-- results:nosuch -->\n<!-- /results:nosuch -->", {})


def test_a_run_is_recorded_with_its_provenance(results, tmp_path):
    # A stand-in script in a git checkout of its own: it burns some CPU, writes its numbers,
    # a figure and a model file that must not be committed.
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "job.py").write_text(textwrap.dedent("""
        import json, os, sys
        out = sys.argv[-1].split("=", 1)[1]
        total = sum(i * i for i in range(2_000_000))
        json.dump({"answer": 42, "argv": sys.argv[1:-1]}, open(os.path.join(out, "m.json"), "w"))
        open(os.path.join(out, "figure.png"), "wb").write(b"png")
        open(os.path.join(out, "model.keras"), "wb").write(b"weights")
    """))
    for command in (["init", "-q"], ["add", "."],
                    ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "job"]):
        subprocess.run(["git", *command], cwd=root, check=True)
    spec = results.Run("scripts/job.py", flags=("--steps=3",), numbers="m.json",
                       keep=("*.png",))
    out = tmp_path / "results"
    out.mkdir()
    record = results.run_one("job", spec, results_dir=str(out), work_dir=str(tmp_path / "work"),
                             root=str(root))
    saved = json.loads((out / "job.json").read_text())
    assert saved == record
    assert record["numbers"] == {"answer": 42, "argv": ["--steps=3"]}
    assert record["command"] == "python scripts/job.py --steps=3"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                            text=True).stdout.strip()
    assert record["commit"] == commit and record["dirty"] is False
    assert record["cpu"] == describe_cpu()
    assert record["wall_time_s"] >= record["cpu_time_s"] * 0.5 > 0
    assert record["date"][:4].isdigit() and "T" in record["date"]
    assert sorted(os.listdir(out / "job")) == ["figure.png", "m.json"]
    assert record["files"] == ["job/m.json", "job/figure.png"]
    assert record["resumed"] is False
    # Run again on the folder kept: the record says that its times are of the resumed part.
    again = results.run_one("job", spec, results_dir=str(out), work_dir=str(tmp_path / "work"),
                            root=str(root), resume=True)
    assert again["resumed"] is True


def test_only_changes_outside_the_pipelines_outputs_make_a_checkout_dirty(results, tmp_path):
    # One `run` writes results/ and the READMEs after its first script: the runs after it
    # must not be recorded "with local changes" for that.
    root = tmp_path / "repo"
    (root / "results").mkdir(parents=True)
    (root / "examples" / "experiments").mkdir(parents=True)
    files = ["job.py", "results/job.json", "README.md", "examples/experiments/README.md"]
    for name in files:
        (root / name).write_text("before\n")
    for command in (["init", "-q"], ["add", "."],
                    ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "job"]):
        subprocess.run(["git", *command], cwd=root, check=True)
    assert results.git_commit(str(root))[1] is False
    for name in files[1:]:
        (root / name).write_text("after\n")
    assert results.git_commit(str(root))[1] is False
    (root / "job.py").write_text("after\n")
    assert results.git_commit(str(root))[1] is True


def test_a_failed_run_records_nothing(results, tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "bad.py").write_text("raise SystemExit(3)\n")
    out = tmp_path / "results"
    out.mkdir()
    with pytest.raises(RuntimeError, match="exit status 3"):
        results.run_one("bad", results.Run("bad.py"), results_dir=str(out),
                        work_dir=str(tmp_path / "work"), root=str(root))
    assert list(out.iterdir()) == []


def test_check_command_exit_status():
    done = subprocess.run([sys.executable, "examples/results.py", "check"],
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                              os.path.abspath(__file__)))), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_figure_a_readme_shows_is_committed(results):
    import re

    for readme in results.READMES:
        path = os.path.join(results.ROOT, readme)
        with open(path, encoding="utf-8") as f:
            links = re.findall(r"\]\(((?:\.\./)*results/[^)]+)\)", f.read())
        for link in links:
            target = os.path.normpath(os.path.join(os.path.dirname(path), link))
            assert os.path.isfile(target), (readme, link)


def test_generate_block_shows_the_code_statistics_when_recorded(results):
    record = json.loads(json.dumps(results.load_records()["generate"]))
    record["numbers"].pop("test_codes", None)  # as recorded before generate.py wrote them
    assert "perplexity" not in "\n".join(results.render_generate(record))
    record["numbers"]["test_codes"] = {"perplexity": 91.25, "usage": 1.0,
                                       "most_frequent_code": 3,
                                       "most_frequent_code_accuracy": 0.0421}
    header, rule, row = results.render_generate(record)[:3]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == len(rule.strip("|").split("|")) == len(header.strip("|").split("|"))
    assert "91.2" in cells and "0.042" in cells


def test_a_run_renders_with_its_own_summary_and_title(results):
    spec = results.RUNS["paper_bits_per_dim"]
    assert spec.script.endswith("compare_models.py") and spec.summary == "paper_bits_per_dim"
    lines = results.render("paper_bits_per_dim", results.load_records())
    assert lines[0] == f"### {spec.title}"
    assert any(line.startswith("Gap: ") for line in lines)


def test_keras_io_anchor_block_names_each_sides_codebook_size(results):
    record = json.loads(json.dumps(results.load_records()["keras_io_anchor"]))
    del record["numbers"]["settings"]["num_embeddings"]  # as recorded before the flag
    text = "\n".join(results.render("keras_io_anchor", {"keras_io_anchor": record}))
    assert "| codebook size K | 128 | 128 |" in text and "perplexity (of 128) |" in text
    record["numbers"]["settings"]["num_embeddings"] = 64
    text = "\n".join(results.render("keras_io_anchor", {"keras_io_anchor": record}))
    assert "| codebook size K | 128 | 64 |" in text
    assert "perplexity (of 128 for keras.io, 64 for tfvq)" in text


def test_keras_io_anchor_block_compares_the_prior_like_for_like(results):
    record = json.loads(json.dumps(results.load_records()["keras_io_anchor"]))
    ours = record["numbers"]["models"]["tfvq"]
    ours.update(prior_holdout_accuracy=0.6543, prior_val_accuracy=0.6789,
                prior_holdout_examples=6000)
    text = "\n".join(results.render("keras_io_anchor", {"keras_io_anchor": record}))
    # keras.io's published figure sits beside tfvq's on held-out training codes, not beside
    # its test-split figure, for which keras.io publishes none.
    assert "| prior accuracy, held-out training codes | 0.673 | 0.654 |" in text
    assert "| prior accuracy, test codes | n/a | 0.679 |" in text
    assert "the last 6,000" in text
    # A record from before --prior_holdout: one row, on the test codes.
    for key in ("prior_holdout_accuracy", "prior_holdout_examples"):
        del ours[key]
    text = "\n".join(results.render("keras_io_anchor", {"keras_io_anchor": record}))
    assert "| prior accuracy | 0.673 | 0.679 |" in text and "held-out training" not in text
    assert "on the test split's codes" in text
