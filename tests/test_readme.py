"""The README is the front door: short, its program one of the documentation's examples, its
links alive.

Its ```python blocks are example files of ``docs/examples/`` (their code after the module
docstring), so ``tests/docs/test_examples.py`` runs each one against the fake WeChat and checks
what it prints; its first block is the first program. Its two set-up commands are checked by
``tests/docs/test_site.py`` against ``.ci/run`` and the getting-started page.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```python\n(.*?)^```", TEXT, re.M | re.S)
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.py"))
#: Markdown links and images whose target is a file of the repository: ``[text](path#anchor)``.
LINK = re.compile(r"\]\((?!https?://|#)(?P<path>[^)#\s]+)(?:#(?P<anchor>[^)\s]+))?\)")


def code_of(example: Path) -> str:
    """An example's program as a page shows it without its module docstring."""
    source = example.read_text(encoding="utf-8")
    docstring = ast.get_docstring(ast.parse(source), clean=False)
    if docstring is not None:
        quoted = source.index(docstring) + len(docstring)
        source = source[source.index('"""', quoted) + 3 :]
    return source.lstrip("\n")


def slug(heading: str) -> str:
    """The anchor MkDocs (and GitHub) gives a heading: lower case, punctuation gone, dashes."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"[\s]+", "-", text)


def test_the_readme_is_short() -> None:
    assert len(TEXT.splitlines()) < 250


def test_the_first_block_is_the_first_program_of_the_docs() -> None:
    assert BLOCKS, "the README shows no program"
    assert BLOCKS[0] == code_of(ROOT / "docs" / "examples" / "first_program.py")


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_every_python_block_is_a_complete_example(number: int) -> None:
    block = BLOCKS[number]
    matches = [example.name for example in EXAMPLES if code_of(example) == block]
    assert matches, f"README block {number + 1} is no file of docs/examples/ (so nothing runs it)"
    compile(block, f"README block {number + 1}", "exec")  # no top-level await, no hidden names
    assert "\n# Output:\n" in block


def test_links_point_at_files_and_headings_that_exist() -> None:
    links = list(LINK.finditer(TEXT))
    assert len(links) >= 20
    for link in links:
        target = ROOT / link["path"]
        assert target.exists(), f"the README links to a missing {link['path']}"
        if link["anchor"]:
            headings = re.findall(r"^#+ (.+)$", target.read_text(encoding="utf-8"), re.M)
            assert link["anchor"] in {slug(h) for h in headings}, link.group(0)
