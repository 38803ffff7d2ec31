"""The docs runner itself: it must fail a document whose answers differ from what the text promises."""
from __future__ import annotations

import subprocess

from tests.docs_blocks import blocks_of, problems, script_for

DOC = """# Title

```bash
X=hello
echo "$X world"   # expect: hello world
```

<!-- docs-test: skip (needs production hosts) -->
```bash
exit 1
```

```bash
# expect-status: 409
echo '{"status": 409}'
# expect: "status":409
```
"""


def _run(tmp_path, text: str):
    (tmp_path / "doc.md").write_text(text)
    blocks, skipped = blocks_of(tmp_path / "doc.md", tmp_path)
    log = tmp_path / "status.log"
    log.write_text("")
    done = subprocess.run(["bash", "-c", script_for(blocks, {8001: 18001}, log)], capture_output=True, text=True)
    return blocks, skipped, done, log


def test_blocks_run_in_one_shell_and_answers_are_checked(tmp_path):
    blocks, skipped, done, log = _run(tmp_path, DOC)
    assert [b.line for b in blocks] == [3, 13]
    assert skipped == ["doc.md:9: (needs production hosts)"]
    assert blocks[0].expects == ["hello world"] and blocks[1].allowed_statuses == {409}
    assert problems(blocks, done.stdout, log.read_text().splitlines()) == []


def test_a_wrong_answer_a_failing_block_and_an_unexpected_status_are_reported(tmp_path):
    text = DOC.replace('echo "$X world"', 'echo "$X there"')
    blocks, _, done, log = _run(tmp_path, text)
    assert problems(blocks, done.stdout, log.read_text().splitlines()) == [
        "doc.md:3: output lacks 'hello world'"]
    failing = DOC.replace("X=hello", "false")
    blocks, _, done, log = _run(tmp_path, failing)
    found = problems(blocks, done.stdout, log.read_text().splitlines())
    assert "doc.md:13: did not run (an earlier block failed)" in found
    assert "the script stopped before its end" in found
    # A curl answer of 404 that the block does not expect fails it (the status log is what curl writes).
    assert problems(blocks[:1], "\n@@docs-block@@doc.md:3\nhello world\n@@docs-block@@end\n",
                    ["doc.md:3 404"]) == ["doc.md:3: a curl answered HTTP 404"]


def test_documented_ports_are_replaced_by_the_system_under_test(tmp_path):
    text = "```bash\necho http://127.0.0.1:8001/v1 localhost:8001 18001  # expect: 127.0.0.1:18001/v1\n```\n"
    blocks, _, done, log = _run(tmp_path, text)
    assert "127.0.0.1:18001/v1 localhost:18001 18001" in done.stdout
    assert problems(blocks, done.stdout, []) == []
