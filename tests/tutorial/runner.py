"""Run a Markdown tutorial's commands in order and check that they print what it says.

The conventions a tutorial (``docs/tutorial.md``) is written in:

Commands and what they print
    A fenced block whose info string is ``console`` holds commands, each on a line starting with ``$ `` (a line
    ending in ``\\`` continues on the next one), each followed by the lines it is expected to print. Every command
    runs in ``bash`` in the tutorial's working folder, with stdout and stderr together (as on a terminal), and
    must exit 0. Its expected lines are checked *loosely*:

    - each expected line must be found in the output, in the order written (other lines may come in between:
      an excerpt is enough);
    - a line matches when, with runs of whitespace collapsed to one space on both sides (table columns line up
      differently at other terminal widths), the expected text is a *substring* of the printed line;
    - ``...`` inside an expected line matches any text (``run ... succeeded in ...s``); a line that is only
      ``...`` stands for "more lines" and checks nothing;
    - blank expected lines, and lines made only of a table's borders (``┏━┳┓┡╇┩└┴┘``...), check nothing: the page
      can show a whole table as printed while only its rows are checked.

    ``cd DIR`` and ``export NAME=VALUE`` carry over to the commands after them (the folder and the exported
    variables are read back from the shell after each command); plain ``NAME=VALUE`` without ``export`` does not.

Hidden instructions (HTML comments: a rendered page does not show them)
    ``<!-- tutorial: write PATH -->`` before a fenced block: write the block's text to ``PATH`` (relative to the
    current folder; folders are created), as the reader would save it with an editor.

    ``<!-- tutorial: merge PATH -->`` before a YAML block: merge the block into the YAML file ``PATH`` key by key
    (mappings merged recursively, anything else replaced), as the reader would edit those keys in place.

    ``<!-- tutorial: background NAME [timeout=S] -->`` before a ``console`` block with one command: start it in
    the background (a server the reader leaves running in a terminal of its own) and wait, up to ``S`` seconds
    (default 60), until its expected lines have been printed. It is stopped by ``<!-- tutorial: stop NAME -->``
    (SIGINT, as Ctrl-C; SIGKILL after 30 s) or at the end of the tutorial.

    ``<!-- tutorial: output NAME [timeout=S] -->`` before a fenced block (e.g. ``text``): wait, up to ``S``
    seconds (default 60), until the background process ``NAME`` has printed the block's lines, matched as above,
    after what it had printed when the tutorial's previous command started (or the previous wait ended).

    ``<!-- tutorial: exit N -->`` before a ``console`` block: its commands must exit with status ``N`` instead.

    ``<!-- tutorial: replace OLD with NEW -->``: from here on, replace the text ``OLD`` by ``NEW`` in commands,
    files written and expected lines; ``$NAME`` in ``NEW`` is the test's variable (ports and endpoints the test
    chose: the tutorial shows the reader's, e.g. ``http://127.0.0.1:9000``).

    ``<!-- tutorial: check NAME ARGS -->``: call the test's check ``NAME`` with ``ARGS`` (what a command cannot
    show, e.g. that a webhook arrived at the test's receiver).

    ``<!-- tutorial: setup`` ... ``-->`` (several lines): shell commands run as they are, unchecked but for
    their exit status (what the reader does by hand that is not worth showing).

Commands the runner maps (:data:`COMMAND_MAP`, a test may pass its own): ``make demo`` becomes
``lakeforge demo lakeforge-demo`` with a small data set (the Makefile target installs the virtual environment,
then runs exactly that command with 50 machines and 14 days), and ``source .venv/bin/activate`` does nothing
(the runner puts the virtual environment's ``bin`` first on ``PATH``). Other fenced blocks (``yaml``, ``text``,
``bash`` ...) without an instruction before them are for reading only.

Failures raise :class:`TutorialError` with the section, the Markdown line, the command, what was expected (the
first line not found marked) and what was printed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

COMMAND_MAP: dict[str, str] = {
    "make demo": "lakeforge demo lakeforge-demo --machines 10 --days 10",
    "source .venv/bin/activate": "true",
}
DEFAULT_TIMEOUT = 180.0  # seconds a command may take
OUTPUT_LIMIT = 6000  # characters of a command's output shown in a failure

_MARKER = re.compile(r"^<!--\s*tutorial:\s*(?P<verb>[a-z]+)(?P<args>.*?)\s*(?P<end>-->)?\s*$")
_FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<info>[^\s`]*)")
_OPTION = re.compile(r"\b(?P<key>timeout)=(?P<value>[0-9.]+)")
_STATE_SCRIPT = '\n__tutorial_rc=$?; pwd > "$TUTORIAL_STATE/cwd"; env -0 > "$TUTORIAL_STATE/env"; exit $__tutorial_rc\n'


class TutorialError(AssertionError):
    """A step of the tutorial did not do what the tutorial says."""


@dataclass
class Command:
    text: str  # as written (continuation lines joined with newlines)
    expected: list[str]
    line: int


@dataclass
class Step:
    """One thing to do, in document order."""

    kind: str  # commands | write | merge | background | output | stop | replace | check | setup
    line: int
    section: str
    commands: list[Command] = field(default_factory=list)
    path: str = ""  # write, merge
    body: str = ""  # write, merge, setup; output: the expected text
    name: str = ""  # background, output, stop, check
    args: str = ""  # check; replace: "OLD with NEW"
    timeout: float = 60.0
    exit_status: int = 0

    def where(self) -> str:
        return f"{self.section or '(before the first heading)'} (line {self.line})"


# -- parsing -----------------------------------------------------------------------------------------
def parse(markdown: str) -> list[Step]:
    """The steps of a tutorial, in order (see the module's docstring for the conventions)."""
    lines = markdown.splitlines()
    steps: list[Step] = []
    section = ""
    pending: Step | None = None  # an instruction waiting for its fenced block
    exit_status = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        number = i + 1
        if line.startswith("#") and not line.startswith("#!"):
            section = line.lstrip("#").strip()
            i += 1
            continue
        marker = _MARKER.match(line.strip())
        if marker:
            verb, args = marker["verb"], marker["args"].strip()
            if verb == "setup":
                body: list[str] = []
                if marker["end"] is None:
                    i += 1
                    while i < len(lines) and lines[i].strip() != "-->":
                        body.append(lines[i])
                        i += 1
                    if i == len(lines):
                        raise TutorialError(f"line {number}: <!-- tutorial: setup is not closed by -->")
                elif args:
                    body.append(args)
                steps.append(Step("setup", number, section, body="\n".join(body)))
                i += 1
                continue
            if marker["end"] is None:
                raise TutorialError(f"line {number}: the instruction {verb!r} must end with --> on its line")
            options = {m["key"]: float(m["value"]) for m in _OPTION.finditer(args)}
            words = _OPTION.sub("", args).split()
            timeout = options.get("timeout", 60.0)
            if verb in ("write", "merge"):
                _need(words, 1, verb, number)
                pending = Step(verb, number, section, path=words[0])
            elif verb == "background":
                _need(words, 1, verb, number)
                pending = Step("background", number, section, name=words[0], timeout=timeout)
            elif verb == "output":
                _need(words, 1, verb, number)
                pending = Step("output", number, section, name=words[0], timeout=timeout)
            elif verb == "exit":
                _need(words, 1, verb, number)
                exit_status = int(words[0])
            elif verb == "stop":
                _need(words, 1, verb, number)
                steps.append(Step("stop", number, section, name=words[0]))
            elif verb == "check":
                if not words:
                    raise TutorialError(f"line {number}: check needs the check's name")
                steps.append(Step("check", number, section, name=words[0], args=" ".join(words[1:])))
            elif verb == "replace":
                if " with " not in args:
                    raise TutorialError(f"line {number}: write <!-- tutorial: replace OLD with NEW -->")
                steps.append(Step("replace", number, section, args=args))
            else:
                raise TutorialError(f"line {number}: unknown instruction {verb!r}")
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence:
            body_lines: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].startswith(fence["fence"]):
                body_lines.append(lines[i])
                i += 1
            if i == len(lines):
                raise TutorialError(f"line {number}: the fenced block is not closed")
            i += 1
            info = fence["info"]
            if pending is not None:
                step, pending = pending, None
                if step.kind in ("write", "merge", "output"):
                    step.body = "\n".join(body_lines) + "\n"
                else:  # background
                    step.commands = _console(body_lines, number)
                    if len(step.commands) != 1:
                        raise TutorialError(f"line {number}: a background block holds exactly one command")
                steps.append(step)
            elif info == "console":
                steps.append(Step("commands", number, section, commands=_console(body_lines, number),
                                  exit_status=exit_status))
                exit_status = 0
            continue
        i += 1
    if pending is not None:
        raise TutorialError(f"line {pending.line}: the instruction {pending.kind!r} has no fenced block after it")
    return steps


def _need(words: list[str], count: int, verb: str, number: int) -> None:
    if len(words) != count:
        raise TutorialError(f"line {number}: {verb} takes {count} argument(s), got {words}")


def _console(lines: list[str], first: int) -> list[Command]:
    """``$ command`` lines (``\\`` continues one) and the expected lines after each."""
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            text = [line[2:]]
            number = first + 1 + i
            while text[-1].endswith("\\") and i + 1 < len(lines):
                i += 1
                text.append(lines[i])
            commands.append(Command("\n".join(text), [], number))
        elif commands:
            if line.strip():
                commands[-1].expected.append(line)
        elif line.strip():
            raise TutorialError(f"line {first + 1 + i}: output before the first '$ ' command of the block: {line!r}")
        i += 1
    return commands


# -- matching ----------------------------------------------------------------------------------------
_BORDER = re.compile(r"^[\s\u2500-\u257f]*$")  # box drawing: a table's rules and corners


def _normalize(text: str) -> str:
    return " ".join(text.split())


def _checks_nothing(line: str) -> bool:
    return _normalize(line) in ("", "...") or _BORDER.match(line) is not None


def _pattern(expected: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in _normalize(expected).split("...")))


def missing_line(expected: list[str], output: str) -> int | None:
    """The index of the first expected line not found (in order) in ``output``; None when all are."""
    printed = [_normalize(line) for line in output.splitlines()]
    position = 0
    for index, line in enumerate(expected):
        if _checks_nothing(line):
            continue
        pattern = _pattern(line)
        while position < len(printed) and not pattern.search(printed[position]):
            position += 1
        if position == len(printed):
            return index
        position += 1
    return None


def _describe(expected: list[str], missing: int | None) -> str:
    return "\n".join(f"{'>>> ' if i == missing else '    '}{line}" for i, line in enumerate(expected))


def _tail(text: str) -> str:
    return text if len(text) <= OUTPUT_LIMIT else "[...]\n" + text[-OUTPUT_LIMIT:]


# -- running -----------------------------------------------------------------------------------------
@dataclass
class Background:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    mark: int = 0  # output offset: where the next ``output`` wait starts

    def text(self) -> str:
        return self.log.read_text(errors="replace")


class Runner:
    """Runs parsed steps in ``workdir`` with ``env`` (PATH must lead to the lakeforge to test).

    ``variables``: what ``$NAME`` means in a replace instruction; ``checks``: the check instructions' functions
    (called with the instruction's arguments); ``command_map``: whole commands replaced before running;
    ``record``: print every command's output (to write the tutorial's expected lines)."""

    def __init__(self, workdir: Path, env: Mapping[str, str], *, variables: Mapping[str, str] | None = None,
                 checks: Mapping[str, Callable[[str], None]] | None = None,
                 command_map: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT,
                 record: Callable[[str], None] | None = None) -> None:
        self.cwd = workdir
        self.env = dict(env)
        self.variables = dict(variables or {})
        self.checks = dict(checks or {})
        self.command_map = dict(COMMAND_MAP if command_map is None else command_map)
        self.timeout = timeout
        self.record = record
        self.replacements: list[tuple[str, str]] = []
        self.background: dict[str, Background] = {}
        self.timings: list[tuple[str, float]] = []
        self._state = Path(tempfile.mkdtemp(prefix="tutorial-state-"))

    # the whole tutorial
    def run(self, steps: list[Step]) -> None:
        try:
            for step in steps:
                started = time.perf_counter()
                getattr(self, f"_do_{step.kind}")(step)
                self.timings.append((f"{step.where()} {step.kind}", time.perf_counter() - started))
        finally:
            self.close()

    def close(self) -> None:
        """Stop the background processes (the runner can be used no more)."""
        for name in list(self.background):
            self._stop(name)
        shutil.rmtree(self._state, ignore_errors=True)

    def _fail(self, step: Step, what: str, *, command: str | None = None, expected: list[str] | None = None,
              missing: int | None = None, output: str | None = None) -> TutorialError:
        parts = [f"tutorial step failed: {step.where()}: {what}"]
        if command is not None:
            parts.append(f"command:\n    $ {command}")
        if expected:
            parts.append(f"expected (in order; >>> not found):\n{_describe(expected, missing)}")
        if output is not None:
            parts.append(f"printed:\n{_tail(output)}")
        return TutorialError("\n".join(parts))

    def _sub(self, text: str) -> str:
        for old, new in self.replacements:
            text = text.replace(old, new)
        return text

    # steps
    def _do_replace(self, step: Step) -> None:
        old, _, new = step.args.partition(" with ")
        value = re.sub(r"\$(\w+)", lambda m: self._variable(step, m[1]), new.strip())
        self.replacements.append((old.strip(), value))

    def _variable(self, step: Step, name: str) -> str:
        if name not in self.variables:
            raise self._fail(step, f"the test gives no variable ${name} (it has: {sorted(self.variables)})")
        return self.variables[name]

    def _do_write(self, step: Step) -> None:
        path = self.cwd / self._sub(step.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self._sub(step.body))

    def _do_merge(self, step: Step) -> None:
        path = self.cwd / self._sub(step.path)
        if not path.exists():
            raise self._fail(step, f"merge into {path}: no such file")
        current = yaml.safe_load(path.read_text()) or {}
        change = yaml.safe_load(self._sub(step.body)) or {}
        if not isinstance(current, dict) or not isinstance(change, dict):
            raise self._fail(step, f"merge into {path}: both must be YAML mappings")
        path.write_text(yaml.safe_dump(merge(current, change), sort_keys=False))

    def _do_setup(self, step: Step) -> None:
        self._exec(step, step.body, [], exit_status=0, line=step.line)

    def _do_commands(self, step: Step) -> None:
        for command in step.commands:
            self._exec(step, command.text, command.expected, exit_status=step.exit_status, line=command.line)

    def _do_check(self, step: Step) -> None:
        check = self.checks.get(step.name)
        if check is None:
            raise self._fail(step, f"the test has no check {step.name!r} (it has: {sorted(self.checks)})")
        try:
            check(self._sub(step.args))
        except AssertionError as exc:
            raise self._fail(step, f"check {step.name} {step.args}: {exc}") from None

    def _mapped(self, text: str) -> str:
        text = self._sub(text)
        return self.command_map.get(" ".join(text.split()), text)

    def _exec(self, step: Step, text: str, expected: list[str], *, exit_status: int, line: int) -> None:
        script = self._mapped(text)
        for background in self.background.values():  # output waits look at what came after this command started
            background.mark = len(background.text())
        env = {**self.env, "TUTORIAL_STATE": str(self._state)}
        try:
            done = subprocess.run(["bash", "--noprofile", "--norc", "-c", script + _STATE_SCRIPT], cwd=self.cwd,
                                  env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            output = (exc.output or b"").decode(errors="replace")
            raise self._fail(step, f"line {line}: still running after {self.timeout:.0f}s", command=text,
                             output=output) from None
        output = done.stdout.decode(errors="replace")
        if self.record is not None:
            self.record(f"$ {text}\n{output}[exit {done.returncode}]\n")
        self._read_state()
        expected = [self._sub(e) for e in expected]
        if done.returncode != exit_status:
            raise self._fail(step, f"line {line}: exit status {done.returncode}, expected {exit_status}",
                             command=text, expected=expected, output=output)
        missing = missing_line(expected, output)
        if missing is not None:
            raise self._fail(step, f"line {line}: the output differs", command=text, expected=expected,
                             missing=missing, output=output)

    def _read_state(self) -> None:
        cwd, env = self._state / "cwd", self._state / "env"
        if cwd.exists():
            self.cwd = Path(cwd.read_text().strip())
        if env.exists():
            found = dict(item.split("=", 1) for item in env.read_text().split("\0") if "=" in item)
            for name in ("TUTORIAL_STATE", "PWD", "OLDPWD", "SHLVL", "_"):
                found.pop(name, None)
            self.env = found
        for path in (cwd, env):
            path.unlink(missing_ok=True)

    def _do_background(self, step: Step) -> None:
        command = step.commands[0]
        if step.name in self.background:
            raise self._fail(step, f"a background process {step.name!r} is running already")
        log = self._state / f"{step.name}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(["bash", "--noprofile", "--norc", "-c", self._mapped(command.text)],
                                       cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=sink,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        background = self.background[step.name] = Background(step.name, process, log)
        self._wait(step, background, [self._sub(e) for e in command.expected], command=command.text)

    def _do_output(self, step: Step) -> None:
        background = self.background.get(step.name)
        if background is None:
            raise self._fail(step, f"no background process {step.name!r} is running")
        self._wait(step, background, [self._sub(e) for e in step.body.splitlines()], command=None)

    def _wait(self, step: Step, background: Background, expected: list[str], *, command: str | None) -> None:
        deadline = time.monotonic() + step.timeout
        while True:
            output = background.text()[background.mark:]
            missing = missing_line(expected, output)
            if missing is None:
                background.mark += len(output)
                return
            if background.process.poll() is not None:
                output = background.text()[background.mark:]
                if missing_line(expected, output) is None:
                    return
                raise self._fail(step, f"{background.name} exited with status {background.process.returncode}",
                                 command=command, expected=expected, missing=missing, output=output)
            if time.monotonic() > deadline:
                raise self._fail(step, f"{background.name} did not print this within {step.timeout:.0f}s",
                                 command=command, expected=expected, missing=missing, output=output)
            time.sleep(0.2)

    def _do_stop(self, step: Step) -> None:
        if step.name not in self.background:
            raise self._fail(step, f"no background process {step.name!r} is running")
        self._stop(step.name)

    def _stop(self, name: str) -> None:
        background = self.background.pop(name)
        process = background.process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)  # its own session (start_new_session): only what it started
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def merge(base: dict[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    """``change`` merged into ``base``: mappings key by key, recursively; anything else replaced."""
    out = dict(base)
    for key, value in change.items():
        current = out.get(key)
        out[key] = merge(current, value) if isinstance(current, dict) and isinstance(value, Mapping) else value
    return out
