"""The documentation and the repository agree: the set-up commands are one pair everywhere, every
example is on a page, the fake-server output a page shows is what it prints."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"
GETTING_STARTED = DOCS / "getting-started.md"
PAGES = sorted(DOCS.rglob("*.md"))


def setup_commands(markdown: Path) -> list[str]:
    """The command lines of the first ``sh`` block: the demo's, then the tests'."""
    block = re.search(r"^```sh\n(.*?)^```", markdown.read_text(encoding="utf-8"), re.M | re.S)
    assert block, f"{markdown.name} has no sh block"
    lines = [line.strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def ci_commands() -> dict[str, str]:
    """``.ci/run``'s commands, each after its ``# The README's ... command:`` comment."""
    lines = CI.read_text(encoding="utf-8").splitlines()
    found = {}
    for n, line in enumerate(lines):
        match = re.fullmatch(r"# The README's (\w+) command:", line.strip())
        if match:
            found[match.group(1)] = lines[n + 1].strip()
    return found


def test_readme_docs_and_ci_run_the_same_two_setup_commands() -> None:
    readme = setup_commands(README)
    assert len(readme) == 2, readme
    demo, tests = readme
    assert "demo" in demo
    assert "nox -s tests" in tests
    assert setup_commands(GETTING_STARTED) == readme
    assert ci_commands() == {"demo": demo, "test": tests}


def test_the_setup_commands_need_only_python3_and_a_virtualenv() -> None:
    # Stock Debian 12 / Ubuntu 24.04: no `python`, and pip refuses to install outside a venv.
    for command in setup_commands(GETTING_STARTED):
        assert command.startswith("python3 -m venv .venv && .venv/bin/pip install ")
        assert re.search(r"(^|\s)python\s", command) is None
        assert " pip install" not in command.replace(".venv/bin/pip install", "")


def test_every_example_is_shown_on_a_page() -> None:
    included = set()
    for page in PAGES:
        text = page.read_text("utf-8")
        included.update(re.findall(r'^--8<-- "(docs/examples/[\w.]+)"$', text, re.M))
        # Outside a ```python fence the program would be rendered as Markdown (its comments
        # as headings): every include is the one line of its fence.
        fenced = re.findall(r'^```python\n--8<-- "docs/examples/[\w.]+"\n```$', text, re.M)
        assert len(fenced) == text.count("--8<--"), f"{page.name}: an include outside a fence"
    examples = {str(path.relative_to(ROOT)) for path in (DOCS / "examples").glob("*.py")}
    assert examples - included == set(), "examples no page shows"
    assert included - examples == set(), "pages include missing examples"
