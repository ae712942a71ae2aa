"""Corrupt and adversarial inputs: every bad file or line quarantined with a reason a person can act on (the file,
the line, what is wrong), and the good rows of the same runs in bronze, silver, gold and the warehouse exactly once.

Three sets, landed beside good files:

1. hand-picked corrupt contents (``CORRUPT``), each with what it must become: truncated gzip, a ``.gz`` that is
   not gzip, random bytes, invalid UTF-8, wrong types, a huge line, an empty file, blank lines only, a ragged CSV,
   Parquet files with a wrong schema and a corrupt one, a JSON array, a malformed line, a duplicate key, a BOM, a
   NUL byte, CRLF endings, an unknown extension, deep nesting;
2. adversarial file names (``NAMES``): spaces, unicode, quotes, ``..``, 240 characters, SQL, glob characters next
   to the file they would match, a newline, shell metacharacters, folders with such names; and hidden names
   (``.x``, ``_x``), which are never picked up, by design (Auto Loader's rule);
3. seeded random mutations of generated files (JSON lines, CSV, gzipped JSON lines): bytes flipped, inserted or
   deleted, truncation, lines duplicated or swapped, digits turned into letters, stray CR/LF/NUL; for those the
   rows are conserved (rows in bronze + lines quarantined = the file's lines) and silver holds what its rules and
   dedup say.

The first run takes sets 1 and 2, the second set 3 (so that a mutated id can never displace a good row: keep_first
keeps the earlier batch); a third run must have nothing to do: no file is a poison pill that fails every run.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from tests.reliability.harness import (
    MAX_LINE_BYTES,
    SOURCE,
    DuckDBWarehouse,
    Expected,
    Lake,
    Landing,
    LocalStore,
    Settings,
    assert_exact,
    csv_rows,
    jsonl,
    make_project,
    parquet,
    run_ok,
    seed,
    text_lines,
)

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
SEED = 4242


def corrupt(landing: Landing, rng: random.Random) -> None:
    """The hand-picked cases: contents a real feed sends, each with the one outcome it must have."""
    put = landing.put

    def rows(n: int = 30) -> list[tuple[int, float]]:
        return landing.ids(n)

    data = gzip.compress(jsonl(rows()))
    put("truncated.jsonl.gz", data[: len(data) // 2],
        Expected(quarantined=None, reason=r"^cannot decompress the \.gz file \(truncated", kind="truncated gzip"))
    put("not-gzip.jsonl.gz", jsonl(rows()),
        Expected(quarantined=None, reason=r"^cannot decompress the \.gz file", kind=".gz that is not gzip"))
    noise = rng.randbytes(20_000)
    put("random-bytes.jsonl", noise, Expected(quarantined=text_lines(noise), reason=r"^no line could be read; line",
                                              kind="random bytes"))
    a, b = rows(), rows()
    put("invalid-utf8.jsonl", jsonl(a) + b'{"id": 1, "v": "\xff\xfe"}\n' + jsonl(b),
        Expected(rows=a + b, quarantined=1, reason=r"^not UTF-8: invalid start byte", kind="invalid UTF-8"))
    a = rows()
    bad_v = landing.ids(1)[0][0]
    typed = (b'{"id": "abc", "v": 1.5}\n' + f'{{"id": {bad_v}, "v": "x"}}\n'.encode()
             + b'{"id": 99999999999999999999999, "v": 0.5}\n{"id": {"a": 1}, "v": 2.0}\n')
    put("wrong-types.jsonl", jsonl(a) + typed, Expected(rows=a, rescued=4, kind="JSON lines with wrong types"))
    a, b = rows(), rows()
    huge = json.dumps({"id": 0, "v": 0.5, "pad": "x" * (MAX_LINE_BYTES + 10)}).encode() + b"\n"
    put("huge-line.jsonl", jsonl(a) + huge + jsonl(b),
        Expected(rows=a + b, quarantined=1, reason=r"^line of [\d,]+ bytes is over the limit", kind="huge line"))
    put("empty.jsonl", b"", Expected(quarantined=0, reason=r"^empty file \(0 bytes\)$", kind="empty file"))
    put("blank.jsonl", b"\n  \n\t\n", Expected(quarantined=0, reason=r"^no rows: the file holds only blank lines$",
                                               kind="blank lines only"))
    a = rows()
    put("ragged.csv", csv_rows(a) + b"5,1.0,extra\n6\n",
        Expected(rows=a, quarantined=2, reason=r"^expected 2 columns, found [31]$", kind="CSV with ragged rows"))
    a = rows(3)
    put("wide-last-line.csv", csv_rows(a) + b"5,19.1980,20.0",  # (DuckDB's sniffer took it for the header)
        Expected(rows=a, quarantined=1, reason=r"^expected 2 columns, found 3$", kind="CSV ending in a wider line"))
    a, b = rows(), rows()
    put("hash-lines.csv", csv_rows(a) + b"#11,1.0\n#12,2.0\n" + csv_rows(b)[5:],  # (taken for comments)
        Expected(rows=a + b, rescued=2, kind="CSV lines starting with #"))
    a = rows(10)
    put("bad-header.csv", b"i\xffd,v\n" + csv_rows(a)[5:],  # (its first row was taken for the header)
        Expected(quarantined=10, reason=r"^no line could be read; line 2: the CSV header \(line 1\) cannot be read",
                 kind="CSV with an unreadable header"))
    put("wrong-types.parquet", parquet(pa.table({"id": ["a", "b"], "v": ["x", "y"]})),
        Expected(rescued=2, kind="Parquet with text where numbers belong"))
    put("wrong-schema.parquet", parquet(pa.table({"name": ["a", "b", "c"], "when": [1.5, 2.5, 3.5]})),
        Expected(rescued=3, kind="Parquet with other columns"))
    put("corrupt.parquet", b"PAR1" + rng.randbytes(3000) + b"PAR1",
        Expected(quarantined=None, reason=r"^(Invalid Input|IO) Error: ", kind="corrupt Parquet"))
    a = rows()
    put("array-line.jsonl", jsonl(a) + b"[1, 2, 3]\n",
        Expected(rows=a, quarantined=1, reason=r"^expected a JSON object, found list$", kind="JSON array line"))
    a, b = rows(), rows()
    put("malformed.jsonl", jsonl(a) + b'{"id": 7, "v": \n' + jsonl(b),
        Expected(rows=a + b, quarantined=1, reason=r"^malformed JSON: ", kind="malformed line"))
    a = rows()
    put("duplicate-key.jsonl", jsonl(a) + b'{"id": 8, "id": 9, "v": 0.5}\n',
        Expected(rows=a, quarantined=1, reason=r"^duplicate key 'id'", kind="duplicate key"))
    a = rows()
    put("bom.jsonl", b"\xef\xbb\xbf" + jsonl(a),
        Expected(rows=a[1:], quarantined=1, reason=r"^malformed JSON: Unexpected UTF-8 BOM", kind="UTF-8 BOM"))
    a, b = rows(), rows()
    put("nul.jsonl", jsonl(a) + b'{"id": 10, "v": 1.0}\x00\n' + jsonl(b),
        Expected(rows=a + b, quarantined=1, reason=r"^malformed JSON: Extra data", kind="NUL byte"))
    a = rows()
    put("crlf.jsonl", jsonl(a).replace(b"\n", b"\r\n"), Expected(rows=a, kind="CRLF line ends"))
    text = jsonl(rows())
    put("data.xml", text, Expected(quarantined=text_lines(text), reason=r"^unknown file type '\.xml'",
                                   kind="unknown extension"))
    a = rows()
    put("good.jsonl.gz", gzip.compress(jsonl(a)), Expected(rows=a, kind="gzip"))
    a = rows()
    deep = f'{{"id": {a[-1][0]}, "v": {a[-1][1]}, "nested": '.encode() + b"[" * 5000 + b"]" * 5000 + b"}\n"
    put("deep-nesting.jsonl", jsonl(a[:-1]) + deep,  # deeper than DuckDB reads: the line alone is quarantined
        Expected(rows=a[:-1], quarantined=1, reason=r"^JSON nested too deeply to read$", kind="deeply nested value"))


NAMES = [
    "with space.jsonl", "ünïcødé-测试-😀.jsonl", "quote'single.jsonl", 'quote"double.jsonl', "a..b.jsonl",
    "x" * 234 + ".jsonl", "é" * 117 + ".jsonl", "'; DROP TABLE bronze_events; --.jsonl",
    "Robert'); DELETE FROM silver.events WHERE ('1'='1.jsonl", "a[1].jsonl", "a1.jsonl", "star*.jsonl",
    "starx.jsonl", "q?.jsonl", "qz.jsonl", "br{a,b}.jsonl", "new\nline.jsonl", "tab\tand%20.jsonl",
    "back\\slash.jsonl", "$(touch pwned);`id`.jsonl", "-rf.jsonl", "sub dir/ünï/[x] nested.jsonl",
    "sub dir/a..b/inner.jsonl",
]
HIDDEN = [".hidden.jsonl", "_temporary.jsonl", "..dots.jsonl", "sub/_staging/inner.jsonl", "sub/.git/inner.jsonl"]


def adversarial_names(landing: Landing) -> None:
    for name in NAMES:
        data = landing.ids(5)
        landing.put(name, jsonl(data), Expected(rows=data, kind="adversarial name"))
    a, b = landing.ids(5), landing.ids(5)
    landing.put("bad 'quoted' [1] name.jsonl", jsonl(a) + b"{oops\n" + jsonl(b),
                Expected(rows=a + b, quarantined=1, reason=r"^malformed JSON", kind="bad line, adversarial name"))
    for name in HIDDEN:
        landing.put(name, jsonl(landing.ids(5)), Expected(hidden=True, kind="hidden name"))


# -- seeded mutations ---------------------------------------------------------------------------------------------
def _flip(data: bytes, rng: random.Random, alphabet: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if out:
            out[rng.randrange(len(out))] = rng.choice(alphabet)
    return bytes(out)


def _insert(data: bytes, rng: random.Random, alphabet: bytes) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) + data[at:]


def _delete(data: bytes, rng: random.Random, alphabet: bytes) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + data[at + rng.randint(1, 60):]


def _truncate(data: bytes, rng: random.Random, alphabet: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _lines(op: str) -> Callable[[bytes, random.Random, bytes], bytes]:
    def mutate(data: bytes, rng: random.Random, alphabet: bytes) -> bytes:
        lines = data.split(b"\n")
        if len(lines) < 3:
            return data
        i, j = rng.randrange(1, len(lines) - 1), rng.randrange(1, len(lines) - 1)
        if op == "duplicate":
            lines.insert(j, lines[i])
        else:
            lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines)
    return mutate


def _letters(data: bytes, rng: random.Random, alphabet: bytes) -> bytes:
    digits = [k for k, c in enumerate(data) if 48 <= c <= 57]
    out = bytearray(data)
    for k in rng.sample(digits, min(len(digits), rng.randint(1, 5))):
        out[k] = rng.choice(b"oOlIxe")
    return bytes(out)


def _controls(data: bytes, rng: random.Random, alphabet: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        out.insert(rng.randrange(len(out) + 1), rng.choice(b"\r\n\x00"))
    return bytes(out)


MUTATIONS: dict[str, Callable[[bytes, random.Random, bytes], bytes]] = {
    "flip bytes": _flip, "insert bytes": _insert, "delete a span": _delete, "truncate": _truncate,
    "duplicate a line": _lines("duplicate"), "swap lines": _lines("swap"), "digits to letters": _letters,
    "stray CR/LF/NUL": _controls,
}
ALL_BYTES = bytes(range(256))
CSV_BYTES = bytes(b for b in range(256) if b != ord('"'))  # a quote may legally join lines into one CSV field


def mutations(landing: Landing, rng: random.Random, count: int) -> Counter[str]:
    tried: Counter[str] = Counter()
    for k in range(count):
        fmt = rng.choices(["jsonl", "csv", "jsonl.gz"], weights=[6, 3, 2])[0]
        rows = landing.ids(rng.randint(5, 60))
        plain = csv_rows(rows) if fmt == "csv" else jsonl(rows)
        ops = rng.sample(sorted(MUTATIONS), rng.randint(1, 3))
        for op in ops:
            plain = MUTATIONS[op](plain, rng, CSV_BYTES if fmt == "csv" else ALL_BYTES)
        tried.update(ops)
        tried[f"format {fmt}"] += 1
        data = gzip.compress(plain) if fmt == "jsonl.gz" else plain
        landing.put(f"mutated-{k:03d}.{fmt}", data,
                    Expected(exact=False, lines=text_lines(plain, csv_header=fmt == "csv"),
                             kind=f"mutated {fmt}: {', '.join(ops)}"))
    return tried


@pytest.mark.timeout(1800)
def test_corrupt_and_adversarial_files_are_quarantined_with_a_reason_and_good_rows_land_once(
        tmp_path: Path, mode: Settings, record: dict[str, Any]) -> None:
    rng = random.Random(seed(SEED))
    record["seed"] = seed(SEED)
    project = make_project(tmp_path / "fuzz", max_files_per_batch=6)
    config = yaml.safe_load((project / "lakeforge.yml").read_text())  # batches of nothing but garbage, by design:
    config["sources"][SOURCE]["max_quarantined"] = 1.0  # every one must land what it can (test_limits: the limit)
    (project / "lakeforge.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    landing = Landing(LocalStore(project / "landing"))
    lake = Lake(str(project / "lakehouse"), LocalStore(project / "lakehouse"))
    warehouse = DuckDBWarehouse(project / "warehouse.duckdb")

    landing.good(3)
    corrupt(landing, rng)
    adversarial_names(landing)
    first = run_ok(project)
    assert not [ln for ln in first.err if ln.startswith(("error", "warning"))], first.stderr
    assert_exact(lake, landing, warehouse)

    for k in range(2):  # good files in the same run, in its first batches (CSV batches come first, then by time
        data = landing.ids(200)  # and name), so that keep_first keeps theirs if a mutation made one of their ids
        landing.put(f"a-good-{k}.csv", csv_rows(data), Expected(rows=data))
    tried = mutations(landing, rng, mode.fuzz_mutations)
    second = run_ok(project)
    assert not [ln for ln in second.err if ln.startswith(("error", "warning"))], second.stderr
    idle = run_ok(project, "--json")
    assert idle.json()["status"] == "nothing_to_do", idle.stdout  # no poison pill
    counts = assert_exact(lake, landing, warehouse)

    quarantine = lake.table("quarantine.bronze_events")
    assert quarantine is not None
    reasons = Counter(re.sub(r"(?<![-\w])\d[\d,]*", "N", re.sub(r"""file ["'][^"']*["']""", "file ...", r))[:90]
                      for r in quarantine["_reason"].to_pylist())
    mutated = {p: e for p, e in landing.files.items() if not e.exact}
    bronze = lake.table("bronze.events")
    assert bronze is not None
    per_file = Counter(bronze["_source_file"].to_pylist())
    fates = Counter("all lines in bronze" if not any(p == q for q in quarantine["_source_file"].to_pylist())
                    else ("quarantined whole" if per_file[p] == 0 else "some lines quarantined")
                    for p in mutated)
    record.update({
        "hand_picked": sorted({e.kind for e in landing.files.values() if e.exact and e.kind != "good"
                               and e.kind != "adversarial name"}),
        "adversarial_names": len(NAMES) + 1, "hidden_names_never_ingested": len(HIDDEN),
        "mutated_files": len(mutated), "mutations_tried": dict(sorted(tried.items())),
        "mutated_fates": dict(fates), "quarantine_reasons": dict(reasons.most_common(25)), **counts,
    })
    print(f"\n{len(mutated)} mutated files: {dict(fates)}; {counts}")
