"""The tutorial runner itself (tests/tutorial/runner.py), on tiny Markdown pages: a checker that cannot fail would
let docs/tutorial.md rot in silence. Fast: bash and echo, no lakeforge."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from tests.tutorial.runner import Runner, TutorialError, missing_line, parse

REPO = Path(__file__).resolve().parents[2]
FENCE = "```"


def page(text: str) -> str:
    """Markdown written with ''' for fences (a fence inside this file's strings would confuse editors)."""
    return textwrap.dedent(text).replace("'''", FENCE)


def run(tmp_path: Path, markdown: str, **options: object) -> Runner:
    runner = Runner(tmp_path, {"PATH": "/usr/bin:/bin"}, **options)  # type: ignore[arg-type]
    runner.run(parse(page(markdown)))
    return runner


def test_a_wrong_expected_output_fails_with_the_step_the_command_and_what_was_printed(tmp_path: Path) -> None:
    markdown = """
        # Tutorial
        ## 2. Greetings
        '''console
        $ echo hello world
        goodbye world
        '''
        """
    with pytest.raises(TutorialError) as failure:
        run(tmp_path, markdown)
    message = str(failure.value)
    assert "2. Greetings (line 4): line 5: the output differs" in message
    assert "$ echo hello world" in message
    assert ">>> goodbye world" in message
    assert message.endswith("printed:\nhello world\n")


def test_every_expected_line_must_be_found_in_order(tmp_path: Path) -> None:
    markdown = """
        '''console
        $ printf 'one\\ntwo\\nthree\\n'
        three
        one
        '''
        """
    with pytest.raises(TutorialError, match=r">>> one"):
        run(tmp_path, markdown)


def test_expected_lines_match_loosely() -> None:
    printed = "run 2024-01-01T00:00:00-ab12 succeeded in 1.25s\n│ 101        │ 48    │ 39.5      │\nthe end\n"
    assert missing_line(["run ... succeeded in ...s"], printed) is None  # ... is any text
    assert missing_line(["succeeded"], printed) is None  # a substring of a line is enough
    assert missing_line(["│ 101 │ 48 │ 39.5 │"], printed) is None  # whitespace runs are one space
    assert missing_line(["┏━━━━┳━━━┓", "", "...", "the end"], printed) is None  # borders, blanks, ... check nothing
    assert missing_line(["run ... failed"], printed) == 0
    assert missing_line(["the end", "succeeded"], printed) == 1  # in order
    assert missing_line(["(exit ...)"], "(exit 1)") is None  # other characters are literal, not a regex
    assert missing_line(["a.c"], "abc") == 0


def test_exit_status_is_checked_unless_the_page_expects_another(tmp_path: Path) -> None:
    with pytest.raises(TutorialError, match="exit status 3, expected 0"):
        run(tmp_path, """
            '''console
            $ echo about to fail; exit 3
            about to fail
            '''
            """)
    run(tmp_path, """
        <!-- tutorial: exit 3 -->
        '''console
        $ echo failing on purpose; exit 3
        failing on purpose
        '''
        '''console
        $ true
        '''
        """)


def test_cd_and_exported_variables_carry_over_to_later_commands(tmp_path: Path) -> None:
    runner = run(tmp_path, """
        '''console
        $ mkdir -p sub/dir && cd sub
        $ export GREETING="hello there"
        $ LOCAL=1
        '''
        Later:
        '''console
        $ cd dir && pwd
        /sub/dir
        $ echo "$GREETING, ${LOCAL:-not exported}"
        hello there, not exported
        $ echo a \\
          b
        a b
        '''
        """)
    assert runner.cwd == tmp_path / "sub" / "dir"
    assert runner.env["GREETING"] == "hello there"


def test_files_are_written_merged_and_placeholders_replaced(tmp_path: Path) -> None:
    run(tmp_path, """
        <!-- tutorial: replace http://127.0.0.1:9000 with $ENDPOINT -->
        <!-- tutorial: write conf/app.yml -->
        '''yaml
        name: plant
        storage: {endpoint_url: http://127.0.0.1:9000, region: us-east-1}
        sources: {telemetry: {format: csv}}
        '''
        <!-- tutorial: merge conf/app.yml -->
        '''yaml
        sources: {telemetry: {delimiter: ";"}}
        schedules: [hourly]
        '''
        '''console
        $ cat conf/app.yml
        name: plant
        endpoint_url: http://127.0.0.1:9000
        format: csv
        delimiter: ;
        - hourly
        $ echo http://127.0.0.1:9000
        http://localhost:4321
        '''
        """, variables={"ENDPOINT": "http://localhost:4321"})
    text = (tmp_path / "conf" / "app.yml").read_text()
    assert "http://localhost:4321" in text and "http://127.0.0.1:9000" not in text


def test_setup_blocks_run_unseen_and_must_succeed(tmp_path: Path) -> None:
    run(tmp_path, """
        <!-- tutorial: setup
        mkdir -p data
        echo prepared > data/note.txt
        -->
        <!-- tutorial: setup test -s data/note.txt -->
        '''console
        $ cat data/note.txt
        prepared
        '''
        """)
    with pytest.raises(TutorialError, match="exit status 1, expected 0"):
        run(tmp_path, "<!-- tutorial: setup test -e missing.txt -->\n")


def test_a_background_process_is_waited_for_and_stopped(tmp_path: Path) -> None:
    runner = Runner(tmp_path, {"PATH": "/usr/bin:/bin"})
    steps = parse(page("""
        <!-- tutorial: background server timeout=20 -->
        '''console
        $ echo starting; sleep 1; echo ready; sleep 60
        ready
        '''
        '''console
        $ touch job
        '''
        <!-- tutorial: output server timeout=1 -->
        '''text
        never printed
        '''
        """))
    with pytest.raises(TutorialError) as failure:
        runner.run(steps)
    assert "server did not print this within 1s" in str(failure.value)
    assert ">>> never printed" in str(failure.value)
    assert not runner.background  # stopped, even though the tutorial failed


def test_output_waits_for_what_a_background_process_prints_after_the_previous_command_started(
        tmp_path: Path) -> None:
    runner = run(tmp_path, """
        <!-- tutorial: background watcher -->
        '''console
        $ echo watching; while [ ! -e flag ]; do sleep 0.1; done; echo saw the flag; sleep 60
        watching
        '''
        '''console
        $ touch flag
        '''
        <!-- tutorial: output watcher timeout=20 -->
        '''text
        saw the flag
        '''
        <!-- tutorial: stop watcher -->
        """)
    assert not runner.background


def test_checks_and_command_map_are_the_tests(tmp_path: Path) -> None:
    seen: list[str] = []

    def webhook(args: str) -> None:
        seen.append(args)
        assert args != "fail", "the receiver got nothing"

    markdown = """
        '''console
        $ make demo
        mapped demo
        '''
        <!-- tutorial: check webhook firing run_failed -->
        """
    run(tmp_path, markdown, checks={"webhook": webhook}, command_map={"make demo": "echo mapped demo"})
    assert seen == ["firing run_failed"]
    with pytest.raises(TutorialError, match="check webhook fail: the receiver got nothing"):
        run(tmp_path, "<!-- tutorial: check webhook fail -->\n", checks={"webhook": webhook})
    with pytest.raises(TutorialError, match="the test has no check 'pager'"):
        run(tmp_path, "<!-- tutorial: check pager x -->\n")


@pytest.mark.parametrize(("markdown", "error"), [
    ("<!-- tutorial: teleport somewhere -->\n", "unknown instruction 'teleport'"),
    ("<!-- tutorial: write a.txt -->\nno block follows\n", "has no fenced block after it"),
    ("'''console\n$ echo open\n", "is not closed"),
    ("'''console\nstray output\n$ echo x\n'''\n", "output before the first '$ ' command"),
    ("<!-- tutorial: replace a by b -->\n", "replace OLD with NEW"),
])
def test_malformed_pages_are_refused(markdown: str, error: str) -> None:
    with pytest.raises(TutorialError, match=re.escape(error)):
        parse(page(markdown))


def test_docs_tutorial_parses_into_a_runnable_page() -> None:
    """The quick check of docs/tutorial.md (its run is the slow test_tutorial.py): every instruction is known,
    every background process is stopped, and only the variables and checks the test provides are used."""
    steps = parse((REPO / "docs" / "tutorial.md").read_text())
    kinds = {step.kind for step in steps}
    assert {"commands", "write", "merge", "background", "output", "stop", "replace", "check"} <= kinds
    started = [step.name for step in steps if step.kind == "background"]
    stopped = [step.name for step in steps if step.kind == "stop"]
    assert sorted(started) == sorted(stopped)
    assert {step.name for step in steps if step.kind == "check"} <= {"webhook"}
    used = {name for step in steps if step.kind == "replace" for name in re.findall(r"\$(\w+)", step.args)}
    assert used <= {"TUTORIAL_S3_ENDPOINT", "TUTORIAL_WEBHOOK_URL", "TUTORIAL_PORT"}
    commands = [c.text for step in steps if step.kind == "commands" for c in step.commands]
    assert commands[0] == "make demo" and len(commands) > 30
