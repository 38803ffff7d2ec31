"""The shell examples of README.md and docs/*.md, as a runnable script with checked answers.

Every ```bash (or sh, shell, console) block of a document runs, in document order, in one bash process (so variables set in
one block are there in the next, as for a reader pasting them into one terminal). A block is skipped
only when the line before its fence says ``<!-- docs-test: skip … -->`` with the reason.

What a block must show is written in the block itself, as comments a reader can read too:

* ``# expect: TEXT`` — TEXT appears in the block's output (whitespace is ignored on both sides, so
  ``"eligible": true`` matches the compact ``"eligible":true`` of a JSON answer);
* ``# expect-status: 409 422`` — these HTTP statuses are expected; every other answer of 400 or more
  from ``curl`` fails the block (a ``curl`` shell function records each status).

The ports 8001–8003 in the text are replaced by those of the system under test.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^```(?:bash|sh|shell|console)\s*$")
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\b(.*?)-->")
EXPECT = re.compile(r"#\s*expect:\s*(.+?)\s*$")
EXPECT_STATUS = re.compile(r"#\s*expect-status:\s*([\d\s]+)$")
MARK = "@@docs-block@@"


@dataclass
class Block:
    document: str
    line: int  # 1-based line of the opening fence
    text: str
    expects: list[str] = field(default_factory=list)
    allowed_statuses: set[int] = field(default_factory=set)

    @property
    def name(self) -> str:
        return f"{self.document}:{self.line}"


def blocks_of(path: Path, root: Path) -> tuple[list[Block], list[str]]:
    """The runnable blocks of one document, and the skipped ones (``name: reason``)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    runnable, skipped = [], []
    index = 0
    while index < len(lines):
        if not FENCE.match(lines[index]):
            index += 1
            continue
        start = index
        index += 1
        body = []
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index])
            index += 1
        index += 1
        name = f"{path.relative_to(root)}:{start + 1}"
        previous = lines[start - 1] if start else ""
        if skip := SKIP.search(previous):
            skipped.append(f"{name}: {skip.group(1).strip() or 'no reason given'}")
            continue
        block = Block(str(path.relative_to(root)), start + 1, "\n".join(body))
        for text_line in body:
            if match := EXPECT_STATUS.search(text_line):
                block.allowed_statuses |= {int(s) for s in match.group(1).split()}
            elif match := EXPECT.search(text_line):
                block.expects.append(match.group(1))
        runnable.append(block)
    return runnable, skipped


def script_for(blocks: list[Block], ports: dict[int, int], status_log: Path) -> str:
    """One bash script: a ``curl`` that logs statuses, then each block after a marker line."""
    parts = [
        "set -eo pipefail",
        f"JZ_STATUS_LOG={shlex.quote(str(status_log))}",
        # Same output as curl; the status of the last response goes to the log with the block's name.
        'curl() { local h; h=$(mktemp); command curl -D "$h" "$@"; local rc=$?; '
        'local s; s=$(grep -E "^HTTP/" "$h" | tail -n1 | cut -d" " -f2); rm -f "$h"; '
        'echo "$JZ_BLOCK ${s:-none}" >> "$JZ_STATUS_LOG"; return $rc; }',
    ]
    for block in blocks:
        text = block.text
        for documented, actual in ports.items():
            text = re.sub(rf"(?<=[:/]){documented}\b", str(actual), text)
        parts.append(f"JZ_BLOCK={shlex.quote(block.name)}")
        # A leading newline: the previous command's output may not end with one (curl's often doesn't).
        parts.append(f"printf '\\n%s\\n' {shlex.quote(MARK + block.name)}")
        parts.append(text)
    parts.append(f"printf '\\n%s\\n' {shlex.quote(MARK + 'end')}")
    return "\n".join(parts) + "\n"


def outputs_by_block(stdout: str) -> dict[str, str]:
    found: dict[str, list[str]] = {}
    current = None
    for line in stdout.splitlines():
        if line.startswith(MARK):
            current = line[len(MARK):]
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return {name: "\n".join(lines) for name, lines in found.items()}


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def problems(blocks: list[Block], stdout: str, status_lines: list[str]) -> list[str]:
    """Everything that did not go as the documents say, one line each."""
    outputs = outputs_by_block(stdout)
    found = []
    statuses: dict[str, list[str]] = {}
    for line in status_lines:
        name, _, status = line.rpartition(" ")
        statuses.setdefault(name, []).append(status)
    for block in blocks:
        if block.name not in outputs:
            found.append(f"{block.name}: did not run (an earlier block failed)")
            continue
        for status in statuses.get(block.name, []):
            if status == "none":
                found.append(f"{block.name}: a curl got no HTTP answer")
            elif int(status) >= 400 and int(status) not in block.allowed_statuses:
                found.append(f"{block.name}: a curl answered HTTP {status}")
        for expected in block.expects:
            if squeeze(expected) not in squeeze(outputs[block.name]):
                found.append(f"{block.name}: output lacks {expected!r}")
    if "end" not in outputs:
        found.append("the script stopped before its end")
    return found
