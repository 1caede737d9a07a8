#!/usr/bin/env python3
"""Checks the links of the documentation: README.md, CHANGELOG.md and the
book's chapters (docs/src/*.md).

Every relative link must point to a file or directory that exists, and
every #anchor to a heading of the target (GitHub's heading slugs, which
mdBook's ids match for the headings we write). Links from the book stay
inside docs/src/, since the rendered book has nothing else, and every
chapter is listed in docs/src/SUMMARY.md. External http(s) and mailto
links are not fetched. Exits 1 and lists the broken links if there are any.

    scripts/check_links.py            # from anywhere in the repository
"""

import re
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "docs" / "src"

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the text may hold `code`.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def prose_lines(text):
    """The lines outside fenced code blocks, with their line numbers."""
    in_fence = None
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line)
        if fence:
            if in_fence is None:
                in_fence = fence.group(1)
            elif fence.group(1) == in_fence:
                in_fence = None
            continue
        if in_fence is None:
            yield number, line


def slug(heading):
    """GitHub's anchor for a heading: the text without markup, lowercased,
    punctuation and symbols dropped, spaces turned into hyphens."""
    text = CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("*", "").strip().lower()
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char in "-_" or char == " " or category[0] in "LNM":
            kept.append(char)
    return "".join(kept).replace(" ", "-")


def anchors(path, cache={}):
    """Every anchor the headings of `path` define, duplicates numbered."""
    if path not in cache:
        seen = {}
        found = set()
        for _, line in prose_lines(path.read_text(encoding="utf-8")):
            match = HEADING.match(line)
            if not match:
                continue
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        cache[path] = found
    return cache[path]


def links(path):
    """(line number, target) of every link in the prose of `path`."""
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        definition = REFERENCE_DEF.match(line)
        if definition:
            yield number, definition.group(1)
            continue
        line = CODE_SPAN.sub("", line)
        for match in INLINE_LINK.finditer(line):
            yield number, match.group(1)


def check(path):
    """The problems with the links of `path`, as printable strings."""
    problems = []
    in_book = BOOK in path.parents
    for number, target in links(path):
        where = f"{path.relative_to(ROOT)}:{number}: {target}"
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            problems.append(f"{where}: no such file")
            continue
        if in_book and BOOK not in resolved.parents and resolved != BOOK:
            problems.append(f"{where}: leaves docs/src/ (the rendered book has no such page)")
            continue
        if anchor:
            if resolved.is_dir() or resolved.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not Markdown")
            elif anchor not in anchors(resolved):
                problems.append(f"{where}: no heading with the anchor #{anchor} in {resolved.relative_to(ROOT)}")
    return problems


def unlisted_chapters():
    """Chapters of docs/src/ that SUMMARY.md does not list (mdBook would skip them)."""
    summary = BOOK / "SUMMARY.md"
    listed = {(BOOK / target.partition("#")[0]).resolve() for _, target in links(summary)}
    return [
        f"{chapter.relative_to(ROOT)}: not listed in docs/src/SUMMARY.md"
        for chapter in sorted(BOOK.glob("*.md"))
        if chapter != summary and chapter.resolve() not in listed
    ]


def main():
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted(BOOK.glob("*.md"))]
    problems = [f"{f.relative_to(ROOT)}: missing" for f in files if not f.exists()]
    files = [f for f in files if f.exists()]
    for path in files:
        problems.extend(check(path))
    problems.extend(unlisted_chapters())
    count = sum(1 for path in files for _ in links(path))
    if problems:
        print(f"{len(problems)} broken link(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"links ok: {count} links in {len(files)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
