#!/usr/bin/env python3
"""Runs the shell commands of README.md and the book (docs/src/*.md) and
compares their output with the output the documents show.

Run it through scripts/check-commands.sh, which builds what the commands
need first; that script's header describes the conventions of the
documents. In short: each document runs in one bash session, in a scratch
copy of the clone, against a container started for it; ```sh and ```console
blocks are run; an HTML comment on the line before a fence marks a block
(`<!-- no-run: REASON -->`, `<!-- no-output-check: REASON -->`,
`<!-- file: PATH -->`); `<!-- check-commands: ... -->` sets up the
document's container.

    scripts/check_commands.py [--keep] [DOC.md ...]    # default: every document
"""

import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target").resolve()
RELEASE = TARGET / "release"

# Documents the checker leaves out, each with the reason (printed).
EXCLUDED = {
    "docs/src/SUMMARY.md": "the book's table of contents",
}

FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w,+-]*)")
SHELL_LANGS = {"sh", "bash", "shell", "console"}
MARKER = re.compile(r"^\s*<!--\s*(no-run|no-output-check|file)\s*:\s*(.*?)\s*-->\s*$")
SETUP = re.compile(r"^\s*<!--\s*check-commands:(.*?)-->\s*$")
COMMAND_TIMEOUT = 600


@dataclass
class Command:
    text: str
    line: int
    expected: list = field(default_factory=list)


@dataclass
class Block:
    doc: str
    line: int
    lang: str
    body: list
    marker: tuple = None  # (kind, argument) of the comment before the fence

    def where(self):
        return f"{self.doc}:{self.line}"

    def commands(self):
        """The commands of the block, each with the output lines it shows."""
        if self.lang == "console":
            return console_commands(self.body, self.line)
        return sh_commands(self.body, self.line)


def console_commands(body, first):
    """`$ ` lines are commands (a trailing backslash continues one); the
    lines up to the next `$ ` are its output."""
    commands, current = [], None
    for offset, line in enumerate(body, first + 1):
        if current is not None and current.text.endswith("\\"):
            current.text += "\n" + line
        elif line.startswith("$ "):
            current = Command(line[2:], offset)
            commands.append(current)
        elif current is not None:
            current.expected.append(line)
    return commands


def sh_commands(body, first):
    """Every line is a command (a trailing backslash continues one);
    `# ` lines right below a command, with no blank line between, are
    its output. Other comment lines are comments."""
    commands, current, in_output = [], None, False
    for offset, line in enumerate(body, first + 1):
        stripped = line.strip()
        if current is not None and current.text.endswith("\\"):
            current.text += "\n" + line
        elif not stripped:
            current, in_output = None, False
        elif stripped.startswith("#"):
            if current is not None:
                current.expected.append(re.sub(r"^#\s?", "", stripped))
        else:
            current = Command(line, offset)
            commands.append(current)
    return commands


def parse(doc):
    """The fenced blocks of `doc` and its `check-commands` settings."""
    lines = (ROOT / doc).read_text().splitlines()
    blocks, setup, i = [], {}, 0
    while i < len(lines):
        found = SETUP.match(lines[i])
        if found:
            for item in found.group(1).split():
                key, _, value = item.partition("=")
                setup[key] = value
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent, ticks, info = fence.groups()
        lang = info.split(",")[0]
        marker = MARKER.match(lines[i - 1]) if i > 0 else None
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(ticks):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        i += 1
        blocks.append(Block(doc, start, lang, body, marker.groups() if marker else None))
    return blocks, setup


# What may differ between runs in an output line: the container's scratch
# paths, timestamps, durations, hashes, process ids, large counts.
VARIABLE = [
    (re.compile(r"/crabcat-\d+/[\w./-]+"), r"/crabcat-\d+/[\w./-]+"),
    (re.compile(r"\d{4}-\d\d-\d\d(T\d\d:\d\d:\d\d(\.\d+)?Z)?"), r"\d{4}-[0-9T:.Z-]+"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b"), r"[0-9a-f]+"),
    (re.compile(r"\d+(\.\d+)+"), r"\d+(\.\d+)*"),
    (re.compile(r"\d{4,}"), r"\d+"),
]


def pattern(expected):
    """A regex for one shown output line: `…` stands for anything, runs of
    spaces for any spaces, and the values of VARIABLE for any such value."""
    parts = []
    for piece in re.split(r"(…|\s+)", expected.strip()):
        if piece == "…":
            parts.append(".*")
        elif piece and piece.isspace():
            parts.append(r"\s+")
        else:
            tokens = [(piece, False)]
            for regex, replacement in VARIABLE:
                split = []
                for text, done in tokens:
                    if done:
                        split.append((text, done))
                        continue
                    last = 0
                    for match in regex.finditer(text):
                        split.append((text[last : match.start()], False))
                        split.append((replacement, True))
                        last = match.end()
                    split.append((text[last:], False))
                tokens = split
            parts.append("".join(text if done else re.escape(text) for text, done in tokens))
    return re.compile("".join(parts))


def mismatch(expected, actual):
    """None if the shown lines appear in the output, in order (other lines
    may come between them); else the first shown line that does not. An
    output that is one JSON document may also match pretty-printed
    (indented by two spaces), as the documents show the longer ones."""
    missing = missing_line(expected, actual.splitlines())
    if missing is not None:
        try:
            pretty = json.dumps(json.loads(actual), indent=2, ensure_ascii=False)
        except ValueError:
            return missing
        if missing_line(expected, pretty.splitlines()) is None:
            return None
    return missing


def missing_line(expected, lines):
    lines = [line.strip() for line in lines]
    at = 0
    for shown in expected:
        if not shown.strip():
            continue
        regex = pattern(shown)
        while at < len(lines) and not regex.fullmatch(lines[at]):
            at += 1
        if at == len(lines):
            return shown
        at += 1
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def library(package):
    return RELEASE / f"lib{package.replace('-', '_')}.so"


def sample_apps():
    apps = []
    for manifest in sorted((ROOT / "apps").glob("*/Cargo.toml")):
        name = re.search(r'^name\s*=\s*"(.*)"', manifest.read_text(), re.MULTILINE)
        apps.append(name.group(1))
    return apps


class Scene:
    """A scratch copy of the clone, a home directory, and the container a
    document's commands talk to."""

    def __init__(self, work, doc, setup):
        self.dir = work / "crabcat"
        slug = re.sub(r"\W", "-", doc)
        self.home = work / ("home-" + slug)
        self.home.mkdir()
        self.http, self.admin = free_port(), free_port()
        self.setup = setup
        self.container = None
        self.log = work / f"crabcat-{slug}.log"
        for stale in ("data", "slow.out"):
            shutil.rmtree(self.dir / stale, ignore_errors=True)
        for entry in (self.dir / "deploy").iterdir():
            if entry.name != "README.md":
                entry.unlink() if not entry.is_dir() else shutil.rmtree(entry)

    def start(self):
        apps = self.setup.get("apps", ",".join(sample_apps()))
        for app in filter(None, apps.split(",")):
            name, _, package = app.partition(":")
            shutil.copy(library(package or name), self.dir / "deploy" / f"{name}.so")
        for fixture in filter(None, self.setup.get("fixtures", "").split(",")):
            shutil.copy(library(fixture), self.dir / library(fixture).name)
        env = dict(os.environ, CRABCAT__APPS__GUESTBOOK__STATIC_DIR="apps/guestbook/static")
        env.pop("RUST_LOG", None)
        if "token" in self.setup:
            env["CRABCAT__ADMIN__TOKEN"] = self.setup["token"]
        self.container = subprocess.Popen(
            [str(RELEASE / "crabcat"), "serve", "--listen", f"127.0.0.1:{self.http}",
             "--admin-listen", f"127.0.0.1:{self.admin}"],
            cwd=self.dir, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        expected = len(list((self.dir / "deploy").glob("*.so")))
        while time.monotonic() < deadline:
            if self.container.poll() is not None:
                sys.exit(f"the container exited:\n{self.log.read_text()}")
            log = self.log.read_text()
            if "admin API listening" in log and log.count("deployed app=") + log.count("deployment failed") >= expected:
                return
            time.sleep(0.1)
        sys.exit(f"the container did not deploy its apps within 60 s:\n{self.log.read_text()}")

    def stop(self):
        if self.container and self.container.poll() is None:
            self.container.send_signal(signal.SIGTERM)
            try:
                self.container.wait(30)
            except subprocess.TimeoutExpired:
                self.container.kill()
                self.container.wait()

    def rewrite(self, text):
        """The documents' ports, 8080 and 8081, are this container's."""
        text = re.sub(r"(127\.0\.0\.1|localhost):8080\b", rf"\g<1>:{self.http}", text)
        return re.sub(r"(127\.0\.0\.1|localhost):8081\b", rf"\g<1>:{self.admin}", text)

    def env(self):
        return dict(
            os.environ,
            HOME=str(self.home),
            # The toolchain and the crates stay where they are.
            CARGO_HOME=os.environ.get("CARGO_HOME") or str(Path.home() / ".cargo"),
            RUSTUP_HOME=os.environ.get("RUSTUP_HOME") or str(Path.home() / ".rustup"),
            PATH=f"{RELEASE}:{os.environ['PATH']}",
            CARGO_TARGET_DIR=str(TARGET),
            CRABCAT_ADMIN_URL=f"http://127.0.0.1:{self.admin}",
        )


class Shell:
    """One bash session: `cd` and `export` carry over from block to block."""

    def __init__(self, scene, work):
        self.work = work
        self.count = 0
        self.bash = subprocess.Popen(
            ["bash", "--noprofile", "--norc"], cwd=scene.dir, env=scene.env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )

    def run(self, text):
        """Runs `text`; returns its exit code and output (stdout and stderr)."""
        self.count += 1
        out = self.work / f"out-{self.count}"
        self.bash.stdin.write(f"{{ {text}\n}} >{out} 2>&1 </dev/null\necho \"__done__ $?\"\n")
        self.bash.stdin.flush()
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while True:
            ready, _, _ = select.select([self.bash.stdout], [], [], max(0, deadline - time.monotonic()))
            if not ready:
                return None, out.read_text(errors="replace") if out.exists() else ""
            line = self.bash.stdout.readline()
            if not line:
                return -1, "bash exited"
            if line.startswith("__done__ "):
                return int(line.split()[1]), out.read_text(errors="replace")

    def close(self):
        self.bash.stdin.close()
        try:
            self.bash.wait(10)
        except subprocess.TimeoutExpired:
            self.bash.kill()


def write_file(block, scene, shell):
    """A `<!-- file: PATH -->` block: its text becomes PATH, relative to the
    session's current directory."""
    code, cwd = shell.run("pwd")
    path = Path(cwd.strip()) / block.marker[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(block.body) + "\n")


def check_doc(doc, work, failures, skipped):
    blocks, setup = parse(doc)
    shells = [b for b in blocks if b.lang in SHELL_LANGS]
    if not shells:
        return 0
    scene = Scene(work, doc, setup)
    if setup.get("container", "yes") != "no":
        scene.start()
    shell = Shell(scene, work)
    ran = 0
    try:
        for block in blocks:
            kind = block.marker[0] if block.marker else None
            if kind == "file":
                write_file(block, scene, shell)
                continue
            if block.lang not in SHELL_LANGS:
                continue
            if kind == "no-run":
                skipped.append((block.where(), block.marker[1]))
                continue
            ran += 1
            for command in block.commands():
                code, output = shell.run(scene.rewrite(command.text))
                where = f"{doc}:{command.line}"
                if code is None:
                    failures.append((where, command.text, f"timed out after {COMMAND_TIMEOUT} s", output))
                    return ran
                if code != 0:
                    failures.append((where, command.text, f"exit code {code}", output))
                    return ran
                if kind != "no-output-check":
                    shown = [scene.rewrite(line) for line in command.expected]
                    missing = mismatch(shown, output)
                    if missing is not None:
                        failures.append((where, command.text, f"the output lacks the line {missing!r}", output))
                        return ran
    finally:
        shell.close()
        scene.stop()
    return ran


def documents(args):
    if args:
        return [str(Path(a).resolve().relative_to(ROOT)) for a in args]
    summary = (ROOT / "docs/src/SUMMARY.md").read_text()
    chapters = ["docs/src/" + c for c in re.findall(r"\]\(([\w./-]+\.md)\)", summary)]
    rest = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs/src").glob("*.md"))
    return ["README.md"] + chapters + [d for d in rest if d not in chapters]


def copy_clone(dest):
    """The clone's files as git sees them (tracked and new, not ignored),
    with target/ pointing at the real target directory."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / os.fsdecode(name)
        if source.is_file():
            (dest / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / os.fsdecode(name))
    (dest / "target").symlink_to(TARGET)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("docs", nargs="*")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="crabcat-docs-"))
    copy_clone(work / "crabcat")
    failures, skipped, ran, started = [], [], 0, time.monotonic()
    try:
        for doc in documents(args.docs):
            if doc in EXCLUDED:
                print(f"{doc}: left out ({EXCLUDED[doc]})")
                continue
            before = len(skipped)
            count = check_doc(doc, work, failures, skipped)
            ran += count
            if count or len(skipped) > before:
                print(f"{doc}: ran {count} blocks, skipped {len(skipped) - before}", flush=True)
            if failures:
                break
    finally:
        if args.keep or failures:
            print(f"scratch directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for where, reason in skipped:
        print(f"skipped {where}: {reason}")
    for where, command, problem, output in failures:
        print(f"\nFAILED {where}: {problem}\n$ {command}\n{output}", file=sys.stderr)
        sys.exit(1)
    print(f"ran {ran} blocks, skipped {len(skipped)} (marked no-run), in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
