"""MkDocs hooks: bring the benchmark results into the site, include files with shifted headings.

* Every file of ``benchmarks/results/`` but the Markdown and quick-run ones is published under
  ``assets/benchmarks/`` (the chart the performance page shows), so the page always shows the
  last committed run.
* ``<!-- include: PATH shift=N -->`` on a line of its own is replaced by the Markdown file PATH
  (from the repository root) with its headings moved N levels down and its title (a first line
  that is a level-1 heading) left out, so another document (the benchmarks' README, the
  changelog) becomes a section of a page.
* ``<!-- docstring-block: PATH -->`` is replaced by the first literal block (the indented lines
  after a line ending in ``::``) of the module docstring of PATH, as a code block: the error
  tree of ``wechat_kf/_errors.py`` is drawn once, in the code.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent.parent
RESULTS = ROOT / "benchmarks" / "results"
INCLUDE = re.compile(r"^<!-- include: (?P<path>\S+) shift=(?P<shift>\d) -->$", re.M)
HEADING = re.compile(r"^(#{1,6}) ", re.M)
FENCE = re.compile(r"^(```|~~~)", re.M)
LIST_ITEM = re.compile(r"^[-*] ")
DOCSTRING_BLOCK = re.compile(r"^<!-- docstring-block: (?P<path>\S+) -->$", re.M)


def on_files(files: Files, config: Any, **kwargs: Any) -> Files:
    for result in sorted(RESULTS.iterdir()):
        if result.is_file() and result.suffix != ".md" and "-quick." not in result.name:
            path = f"assets/benchmarks/{result.name}"
            files.append(File.generated(config, path, abs_src_path=str(result)))
    return files


def shifted(text: str, levels: int) -> str:
    """``text`` with every Markdown heading outside code blocks ``levels`` deeper, and a blank
    line before a list that follows a paragraph line (GitHub renders that as a list; MkDocs'
    Markdown only after a blank line)."""
    out: list[str] = []
    in_code = False
    for line in text.splitlines():
        if FENCE.match(line):
            in_code = not in_code
        elif not in_code and HEADING.match(line):
            line = "#" * levels + line
        elif not in_code and LIST_ITEM.match(line) and out and _paragraph(out[-1]):
            out.append("")
        out.append(line)
    return "\n".join(out) + "\n"


def literal_block(path: Path) -> str:
    """The first ``::`` literal block of the module docstring of ``path``, dedented."""
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    lines = docstring.splitlines()
    start = next(n for n, line in enumerate(lines) if line.endswith("::")) + 1
    while not lines[start].strip():
        start += 1
    end = start
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(" ")):
        end += 1
    return textwrap.dedent("\n".join(lines[start:end])).strip("\n")


def _paragraph(line: str) -> bool:
    """Whether ``line`` is a line of plain paragraph text (not a list item, table, indent)."""
    return bool(line.strip()) and not LIST_ITEM.match(line) and not line.startswith((" ", "|"))


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    def include(match: re.Match[str]) -> str:
        text = (ROOT / match["path"]).read_text(encoding="utf-8")
        if text.startswith("# "):
            text = text.partition("\n")[2]
        return shifted(text, int(match["shift"]))

    def docstring_block(match: re.Match[str]) -> str:
        return "```text\n" + literal_block(ROOT / match["path"]) + "\n```"

    markdown = DOCSTRING_BLOCK.sub(docstring_block, markdown)
    return INCLUDE.sub(include, markdown)
