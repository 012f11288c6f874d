"""Where a benchmark's results go: printed, and written into a markdown file such as RESULTS.md.

Every script in benchmarks/ reports through this module instead of a copy of its own:

    from report import publish  # a sibling: benchmarks/ is on sys.path when a script runs

    publish(text, FLAGS.results)                   # print; append to --results if given
    publish(text, FLAGS.results, "## Quantizer")   # print; replace that section of the file
"""

import os
import re

# What a results file that does not exist yet starts with.
TITLE = "# Benchmark results"


def write_results(path, text, section=None):
    """Writes `text` into the markdown file `path`.

    Without `section`, `text` is appended after a blank line, so that the file keeps every
    run. With `section`, a heading line such as "## Quantizer (issue 2)" that `text` begins
    with, the part of the file from that heading up to the next "## " heading is replaced by
    `text`, or `text` is appended when the file has no such section yet; a file that does not
    exist starts with `TITLE`.
    """
    if section is None:
        with open(path, "a", encoding="utf-8") as f:
            f.write("\n" + text + "\n")
        return
    old = TITLE + "\n"
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = f.read()
    # The section runs to the next "## " heading or the end; a blank line keeps them apart.
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.M | re.S)
    body = text.rstrip("\n") + "\n\n"
    new = pattern.sub(lambda _: body, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + body
    with open(path, "w", encoding="utf-8") as f:
        f.write(new.rstrip("\n") + "\n")


def publish(text, path=None, section=None):
    """Prints `text` and, when `path` is given (a script's --results), writes it there too.

    `section` as in `write_results`.
    """
    print(text)
    if path:
        write_results(path, text, section)


def format_mib(value):
    """A memory figure in MiB: one decimal below 10, whole MiB above.

    Whole MiB made 1.4 against 1.6 MiB read "1 against 2": three fresh processes of the
    quantizer benchmark's FSQ row gave 1.2-1.6 MiB for tfvq and 1.3-1.8 MiB for
    vector-quantize-pytorch (AMD EPYC, AVX2).
    """
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def cpu_model():
    """The CPU a figure was measured on: `tfvq.utils.machine.describe_cpu`, the one reader of
    /proc/cpuinfo (name, the vector extensions that change the fast paths, core count)."""
    from tfvq.utils.machine import describe_cpu

    return describe_cpu()


def machine_heading(title, issues):
    """A RESULTS.md heading for this kind of CPU, such as "## Quantizer, AMD EPYC, AVX2 (issue
    17)": one section per kind, since a figure measured on one kind says nothing about the
    other (issue 17), and CPUs that share a name ("AMD EPYC") differ in their vector units."""
    from tfvq.utils.machine import cpu_info, vector_kind

    return f"## {title}, {cpu_info()[0]}, {vector_kind()} ({issues})"
