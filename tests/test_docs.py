"""README.md and docs/*.md against the code: every ``nchl`` command in a bash block parses with the real
argument parser, every script it names exists, every relative link (and its #anchor) resolves, and the
README's command table lists each subcommand once. Cheap (no command is run): it keeps "commands run as
written" from rotting when a flag is renamed or a page moves."""

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from nchl.app.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
SHELL_WORDS = {"do", "then", "else", "time", "!"}
SEPARATORS = {"&&", "||", ";", "|", "&", ";;"}


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def shell_commands(text: str) -> list[list[str]]:
    """The simple commands of every bash block: split at ; && || |, shell keywords and VAR=value
    prefixes dropped, $variables read as 0 (the docs' loops run over seeds)."""
    commands = []
    for lang, body in FENCE.findall(text):
        if lang not in ("bash", "sh", "shell", "console"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split, lexer.commenters = True, "#"
            words: list[str] = []
            for token in [*lexer, ";"]:
                if token in SEPARATORS:
                    while words and (words[0] in SHELL_WORDS or re.fullmatch(r"[A-Za-z_]\w*=\S*", words[0])):
                        words.pop(0)
                    if words:
                        commands.append(words)
                    words = []
                else:
                    words.append("0" if token.startswith("$") else token)
    return commands


def _cases():
    for page in PAGES:
        for words in shell_commands(page.read_text()):
            yield pytest.param(page, words, id=f"{_rel(page)}: {shlex.join(words)[:80]}")


@pytest.mark.parametrize("page, words", list(_cases()))
def test_documented_command_parses(page, words):
    if words[0] == "nchl":
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                build_parser().parse_args(words[1:])
            except SystemExit as e:  # --help and --version exit 0
                assert e.code == 0, f"{_rel(page)}: `{shlex.join(words)}` does not parse: {err.getvalue().strip()}"
    elif words[0] in ("python", "python3", "bash", "sh") and len(words) > 1 and not words[1].startswith("-"):
        assert (ROOT / words[1]).is_file(), f"{_rel(page)}: `{shlex.join(words)}` names a missing script"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", page.read_text()), re.M):
        s = slug(heading)
        out.add(s if s not in seen else f"{s}-{seen[s]}")
        seen[s] = seen.get(s, 0) + 1
    return out


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_relative_links_resolve(page):
    prose = re.sub(r"`[^`\n]*`", "", FENCE.sub("", page.read_text()))
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", prose):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(target)
    assert not broken, f"{_rel(page)}: links that resolve to nothing: {broken}"


def test_readme_command_table_lists_every_subcommand():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    listed = re.findall(r"^\| `nchl ([\w-]+)", (ROOT / "README.md").read_text(), re.M)
    assert sorted(listed) == sorted(sub.choices), "README's command table: one row per subcommand of nchl --help"
