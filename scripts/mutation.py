"""`make mutation`: mutmut over the core modules, one module at a time, and a per-module score table.

mutmut (3.x, the `mutation` extra) copies shared/ and tests/ into ./mutants and, for each mutant, runs
only the tests that reached the mutated function during its stats run ([tool.mutmut] in pyproject.toml:
the core areas' tests). Running a module at a time keeps a run interruptible and its figures apart; a
module whose functions hundreds of tests reach is restricted to the functions holding its rules
(CORE_MODULES says which and why), and `--minutes` caps each module's run (the rest: unchecked).

A surviving mutant is either a gap in the tests (write the test) or excused in EXCUSED below, by function
and mutated line, with why: equivalent (no test could tell it from the original: out of the score) or
acceptable (a test could, but only a forbidden or unreasonable one: it counts as a survivor). The score is
killed / (mutants - equivalent), timeouts counted as killed (the bug was noticed).

    python scripts/mutation.py                              # every core module, fewest mutants first
    python scripts/mutation.py shared/alerts/policy.py      # one module
    python scripts/mutation.py --minutes 5 --max-children 2 # each module at most 5 minutes, 2 at once
    python scripts/mutation.py --report-only                # the table from the last runs, no mutmut run
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from shared.text_enum import TextEnum

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = Path(sys.executable).with_name("mutmut")


@dataclass(frozen=True)
class Module:
    """A source file to mutate; `functions` (mutmut's names: `x_name`, `xǁClassǁmethod`) restricts the run
    to those, `()` takes every function. A restriction says `why`."""

    path: str
    functions: tuple[str, ...] = ()
    why: str = ""

    def patterns(self) -> list[str]:
        """The mutant name patterns `mutmut run` takes (mutants are named module.function__mutmut_N)."""
        prefix = self.path.removesuffix(".py").replace("/", ".") + "."
        return [f"{prefix}{f}__mutmut_*" for f in self.functions] or [prefix + "*"]

    def selects(self, mutant: str) -> bool:
        return any(fnmatch.fnmatchcase(mutant, pattern) for pattern in self.patterns())


_TIMING = "the timing arithmetic of issue 11: the marks, the stamps and the phases computed from them"
_HEAVY = (
    "its functions are reached by hundreds of round and config tests (a mutant costs seconds on the shared "
    "2-core machine): the functions that hold the module's rules, not its plumbing"
)

# The core modules of issue 11, in the order a full run takes them (fewest mutants first).
CORE_MODULES: tuple[Module, ...] = (
    Module("shared/credentials/values.py"),
    Module("shared/verdict/decide.py"),
    Module("shared/credentials/refs.py"),
    Module("shared/verdict/result.py"),
    Module("shared/probe/dns.py"),
    Module(
        "shared/probe/attempt.py",
        ("x__span", "x__phases", "x__blackbox_phases", "x__timeout_phase"),
        _TIMING,
    ),
    Module("shared/verdict/overload.py"),
    Module("shared/verdict/diagnose.py"),
    Module("shared/credentials/provider.py"),
    Module(
        "shared/config/reader.py",
        ("xǁConfigErrorǁ__init__", "xǁReaderǁerror", "xǁReaderǁint", "xǁReaderǁseconds"),
        _HEAVY,
    ),
    Module(
        "shared/state/store.py",
        ("xǁStoreǁacquire_lease", "xǁStoreǁholds", "xǁStoreǁrelease", "x_parse_document"),
        "the lease (who may write) and reading the document",
    ),
    Module(
        "shared/state/file.py",
        ("xǁFileStoreǁ_create_lease", "xǁFileStoreǁ_create_exclusive", "xǁFileStoreǁ_atomic_write"),
        "the lease file and the atomic write",
    ),
    Module(
        "shared/state/document.py",
        ("x_salvage", "x__record_problem", "x__objects", "x__count", "x__moment"),
        "what is kept and what dropped from a damaged document (the per-field tables are data)",
    ),
    Module(
        "shared/logs.py",
        (
            "x_secret_forms",
            "x__base64_forms",
            "x__percent_lower",
            "x_register_secret",
            "x_register_login",
            "x_redact_text",
            "x_redact",
            "x__trie_pattern",
            "x__add_forms",
            "x__redact_processor",
            "xǁ_RedactFilterǁfilter",
            "x_guard_stdlib_logging",
        ),
        "the redaction: every form of a secret, the one pattern they are matched with, and where it is masked "
        "(log values, stdlib records); not configure/write_event's line plumbing",
    ),
    Module(
        "shared/alerts/outbox.py",
        ("xǁOutboxǁadd", "x__candidate", "x_deliver", "x__send"),
        "the queue and the delivery rules, and a crashing channel (not the document plumbing)",
    ),
    Module(
        "shared/probe/transport.py",
        (
            "xǁMarksǁstage",
            "xǁ_ResponseReaderǁdata_received",
            "xǁ_ResponseReaderǁon_headers_complete",
            "xǁ_ResponseReaderǁ_finish",
            "x__connect",
            "xǁExchangeǁsend",
            "xǁExchangeǁbody",
        ),
        _TIMING,
    ),
    Module(
        "shared/config/load.py",
        ("x_split_addr", "x__read_resolve", "x__read_alerting", "x_find_config", "x_load_config"),
        _HEAVY,
    ),
    Module(
        "shared/alerts/policy.py",
        (
            "x_decide",
            "x__step",
            "x__judged",
            "x__notify",
            "x_severity_of",
            "xǁWindowǁactive",
            "xǁWindowǁcovers",
            "x_note_id",
            "x__make",
            "x__older",
        ),
        "the alert state machine, maintenance windows, notification ids and what a notification carries "
        "(not the to/from_dict plumbing)",
    ),
    Module(
        "shared/alerts/channels/dingtalk.py",
        ("x_sign", "xǁDingTalkǁsend", "x__why"),
        "signing, delivery outcomes and what of an error may be shown (not the markdown)",
    ),
    Module(
        "shared/config/urls.py",
        (
            "x__q",
            "x_join_url",
            "x_check_doubled_segments",
            "x_check_request_path",
            "x_check_host",
            "x_check_dns_name",
            "x__split",
            "x_is_ip",
            "xǁEndpointǁurl_for",
        ),
        "the URL rules every endpoint goes through (not the per-product URL builders)",
    ),
    Module(
        "shared/alerts/channels/email.py",
        ("xǁEmailǁsend", "xǁEmailǁbuild", "xǁEmailǁ_send"),
        "the SMTP session and its outcomes, the message's headers (not the HTML part's inline CSS, nor config)",
    ),
    Module("shared/verdict/codes.py"),
)
CORE_BY_PATH = {m.path: m for m in CORE_MODULES}

# mutmut's exit codes of a checked mutant (mutmut.stats.status_by_exit_code).
KILLED = {1, 3}
SURVIVED = {0}
NO_TESTS = {5, 33}
TIMEOUT = {36, -24, 24, 152, 255}


class Verdict(TextEnum):
    """Why a survivor is not a gap in the tests."""

    EQUIVALENT = "equivalent"  # no test could tell it from the original: out of the score
    ACCEPTABLE = "acceptable"  # a test could, but only a forbidden one (timed, a real DNS lookup): it counts


@dataclass(frozen=True)
class Excused:
    """A survivor that is not a gap: `function` (mutmut's mangled name without the mutant number) and the
    mutated line as mutmut prints it after `+`, stripped."""

    function: str
    line: str
    why: str
    verdict: Verdict = Verdict.EQUIVALENT


_NO_HOST_IN_REMEDY = "the remedy of this code has no {host} placeholder: the context it drops is never read"
_FIRST_OF_MOST_COMMON = (
    "Counter.most_common(n)[0] is the same element for every n >= 1 and for None (ties keep insertion order)"
)

_DONE_FETCH_KEPT = (
    "the finished fetch stays in _inflight (one per reference, replaced by the next fetch); resolve treats a "
    "done future as no fetch in flight, so nothing behaves differently"
)
_NO_DURATION_TEXT = (
    "no value YAML gives (a list, a mapping, a date, bytes, true/false) has a str() the duration pattern "
    "matches, nor does 'XXXX': each is refused as before"
)
_TEMP_NAME = (
    "the temporary file's name still starts with a dot, which is all list_objects looks at (a name without "
    "it is killed by test_a_listing_during_a_write_shows_no_temporary_file)"
)
_OTHER_FOLDER = (
    "the temporary file in the system temp folder: moving it into the state folder fails (EXDEV) only when "
    "the two are different file systems, which a test here cannot arrange"
)
_REQUIRED_FIELD = (
    "a batch record always has `ids` and `attempts` (written so by deliver, and required by "
    "shared/state/document.py when a stored one is read): the default is never used"
)
_TIMED = "the alert step's time budget on the monotonic clock: only a timed test could tell (forbidden)"
_SEEN_IS_A_TIMEOUT = (
    "_overload is only called with a diagnosis that _timed_out accepted, never None: the `else` is unreachable"
)
_HOST_UNREAD_BY_TARGET = (
    "with expect_private false (None is as false), target_verdict reads `host` only for zones_down, whose "
    "remedy has no {host}; overload's own zones_down message is built without it"
)

EXCUSED: tuple[Excused, ...] = (
    Excused(
        "shared.verdict.decide.x_target_verdict",
        "top = Counter(a.error_code for a in bad if a.error_code).most_common(None)[0][0]",
        _FIRST_OF_MOST_COMMON,
    ),
    Excused(
        "shared.verdict.decide.x_target_verdict",
        "top = Counter(a.error_code for a in bad if a.error_code).most_common(2)[0][0]",
        _FIRST_OF_MOST_COMMON,
    ),
    Excused(
        "shared.verdict.decide.x_address_verdict",
        'return Status.DEGRADED, diagnose(Code.SLOW, f"{total_ms:.0f} ms > {latency_slo_ms:.0f} ms", )',
        _NO_HOST_IN_REMEDY,
    ),
    Excused(
        "shared.verdict.decide.x_target_verdict",
        'return Status.DEGRADED, diagnose(Code.ZONES_DOWN, f"{len(bad)} of {len(addresses)} down ({detail})", '
        "host=None)",
        _NO_HOST_IN_REMEDY,
    ),
    Excused(
        "shared.verdict.decide.x_target_verdict",
        'return Status.DEGRADED, diagnose(Code.ZONES_DOWN, f"{len(bad)} of {len(addresses)} down ({detail})", )',
        _NO_HOST_IN_REMEDY,
    ),
    Excused(
        "shared.verdict.decide.x_target_verdict",
        "return Status.DEGRADED, diagnose(Code.DNS_PUBLIC_ADDRESS, f\"{host} -> {', '.join(public)}\", host=None)",
        _NO_HOST_IN_REMEDY,
    ),
    Excused(
        "shared.verdict.decide.x_target_verdict",
        "return Status.DEGRADED, diagnose(Code.DNS_PUBLIC_ADDRESS, f\"{host} -> {', '.join(public)}\", )",
        _NO_HOST_IN_REMEDY,
    ),
    Excused(
        "shared.verdict.diagnose.x_for_status",
        'text = body[:2048].decode("UTF-8", "replace").lower()',
        "codec names are case-insensitive: UTF-8 and utf-8 are the same codec",
    ),
    Excused(
        "shared.probe.attempt.x__blackbox_phases",
        '"transfer": _span(marks.first_byte, marks.body_end if (marks.body_end is not None) or True else None),',
        "`body_end if body_end is not None else None` is `body_end` either way",
    ),
    *(
        Excused("shared.verdict.overload.x__overload", line, _SEEN_IS_A_TIMEOUT)
        for line in (
            'observed = f" (the probe saw {seen.code}: {seen.message})" if (seen is not None) or True else ""',
            'observed = f" (the probe saw {seen.code}: {seen.message})" if seen is not None else "XXXX"',
        )
    ),
    *(
        Excused(
            "shared.verdict.overload.x__target",
            f"status, diagnosis = target_verdict(known, host={host}, expect_private={private})",
            _HOST_UNREAD_BY_TARGET,
        )
        for host, private in (
            ("None", "False"),
            ('"XXthe hostXX"', "False"),
            ('"THE HOST"', "False"),
            ('"the host"', "None"),
        )
    ),
    Excused(
        "shared.credentials.provider.xǁTokenProviderǁ__init__",
        'self._context: Any = ""',
        "the control plane reads the context with getattr(context, 'credentials', None): '' has none, like None",
    ),
    *(
        Excused("shared.credentials.provider.xǁTokenProviderǁ_fetched", line, _DONE_FETCH_KEPT)
        for line in (
            "if self._inflight.get(None, (None, None))[1] is future:",
            "if self._inflight.get(ref, None)[1] is future:",
            "if self._inflight.get((None, None))[1] is future:",
            "if self._inflight.get(ref, )[1] is future:",
            "if self._inflight.get(ref, (None, None))[2] is future:",
        )
    ),
    Excused(
        "shared.credentials.provider.xǁTokenProviderǁ_fetched",
        "if self._inflight.get(ref, (None, None))[1] is not future:",
        "drops another event loop's fetch of the same reference, so that loop's next caller fetches again: "
        "only two loops (threads) fetching one reference at once show it",
        Verdict.ACCEPTABLE,
    ),
    Excused(
        "shared.credentials.provider.xǁTokenProviderǁ_fetched",
        "if future.cancelled():",
        "a failed fetch whose every caller timed out would log asyncio's 'exception was never retrieved' at "
        "garbage collection: seen only through gc timing",
        Verdict.ACCEPTABLE,
    ),
    *(
        Excused("shared.config.reader.xǁReaderǁseconds", line, _NO_DURATION_TEXT)
        for line in (
            'text = value if isinstance(value, str) else str(value) if isinstance(value, (int, float)) else "XXXX"',
            "text = value if isinstance(value, str) else str(value) if (isinstance(value, (int, float))) or True "
            'else ""',
            "m = _DURATION.match(text.strip()) if (not isinstance(value, bool)) or True else None",
        )
    ),
    *(
        Excused(
            "shared.state.store.xǁStoreǁholds",
            f"if mine is None or max(self._lease_numbers(), default={default}) != mine:",
            "with no lease objects left, `mine` (a number >= 1) differs from 0 and from None; with default 1 and "
            "mine 1, the record read next is absent and holds is False all the same",
        )
        for default in ("None", "1")
    ),
    Excused(
        "shared.state.store.xǁStoreǁholds",
        'return bool(record) and record.get("owner") == owner and float(record.get("expires", 1)) > now',
        "only a damaged record lacks `expires`, and the clock is epoch seconds: 1 > now is as false as 0 > now",
    ),
    Excused(
        "shared.state.store.xǁStoreǁrelease",
        "self._write_lease(mine, None)",
        "both backends read a lease object that is not a JSON object as no record, which acquire_lease and "
        "holds treat exactly like a released one",
    ),
    *(
        Excused(
            "shared.state.store.xǁStoreǁacquire_lease",
            "if current is not None and not current.get(" + key + ') and float(current.get("expires", 0)) > now:',
            "release() writes `expires: 0` beside `released: true`: a released record is expired either way",
        )
        for key in ("None", '"XXreleasedXX"', '"RELEASED"')
    ),
    Excused(
        "shared.state.store.xǁStoreǁacquire_lease",
        'if current is not None and not current.get("released") and float(current.get("expires", 1)) > now:',
        "only a damaged record lacks `expires`, and the clock is epoch seconds: 1 > now is as false as 0 > now",
    ),
    *(
        Excused(
            "shared.state.store.xǁStoreǁacquire_lease",
            f"if max(self._lease_numbers(), {default}) != mine:",
            "the lease just created is among the numbers, so the list is never empty and its default never used",
        )
        for default in ("default=None", "", "default=1")
    ),
    *(
        Excused(
            "shared.state.store.xǁStoreǁrelease",
            "self._write_lease(mine, {**record, " + marks + "})",
            "a released record says so twice (`released: true` and `expires: 0`), and either one alone frees the "
            "lease for acquire_lease; holds() of the releasing owner is already false (it forgot its number)",
        )
        for marks in (
            '"XXreleasedXX": True, "expires": 0',
            '"RELEASED": True, "expires": 0',
            '"released": False, "expires": 0',
            '"released": True, "XXexpiresXX": 0',
            '"released": True, "EXPIRES": 0',
            '"released": True, "expires": 1',
        )
    ),
    *(
        Excused("shared.state.file.xǁFileStoreǁ_atomic_write", line, _TEMP_NAME)
        for line in (
            'fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=None)',
            'fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", )',
            'fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".TMP-", suffix=".json")',
            'fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix="XX.jsonXX")',
            'fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".JSON")',
        )
    ),
    Excused(
        "shared.state.file.xǁFileStoreǁ_create_lease",
        'fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".TMP-LEASE-")',
        _TEMP_NAME,
    ),
    *(
        Excused("shared.state.file.xǁFileStoreǁ_atomic_write", line, _OTHER_FOLDER, Verdict.ACCEPTABLE)
        for line in (
            'fd, tmp = tempfile.mkstemp(dir=None, prefix=".tmp-", suffix=".json")',
            'fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json")',
        )
    ),
    Excused(
        "shared.state.file.xǁFileStoreǁ_create_exclusive",
        "os.unlink(None)  # an empty lease file would block every round until someone removed it",
        "the cleanup after a lease write fails on a file system without hard links (a full disk there): "
        "no test here can fill a disk that has no hard links",
        Verdict.ACCEPTABLE,
    ),
    *(
        Excused(
            "shared.state.file.xǁFileStoreǁ_create_lease",
            line,
            _OTHER_FOLDER,
            Verdict.ACCEPTABLE,
        )
        for line in (
            'fd, tmp = tempfile.mkstemp(dir=None, prefix=".tmp-lease-")',
            'fd, tmp = tempfile.mkstemp(prefix=".tmp-lease-")',
        )
    ),
    Excused(
        "shared.state.file.xǁFileStoreǁ_create_lease",
        'tmp = ""',
        "tmp stays unset only when mkstemp failed; os.unlink('') then raises an OSError the cleanup swallows",
    ),
    *(
        Excused(
            "shared.state.document.x__moment",
            line,
            "Python 3.11+ (which mutmut runs on) reads a trailing Z itself; on 3.10 the replace matters, and "
            "tests/state/test_document_mutants.py's Z times fail there without it",
        )
        for line in (
            'parsed = datetime.fromisoformat(v.replace("XXZXX", "+00:00"))',
            'parsed = datetime.fromisoformat(v.replace("z", "+00:00"))',
        )
    ),
    # shared/logs.py
    *(
        Excused(
            "shared.logs.x__base64_forms",
            f'if len(text.rstrip("=")) >= _MIN_CORE or (core is data and {bound}):',
            "tells only for a whole encoding of 4 characters: secret_forms() called directly with a value under 4 "
            "bytes, which no caller does (register_secret drops it; register_login keeps 8 characters and more)",
            Verdict.ACCEPTABLE,
        )
        for bound in ("len(text) > 4", "len(text) >= 5")
    ),
    Excused(
        "shared.logs.x__base64_forms",
        "for shift in range(4):",
        "a fourth core, the secret without its first 3 bytes, encodes to a suffix of the first core: more text "
        "masked (the tail of a secret quoted alone), never less",
        Verdict.ACCEPTABLE,
    ),
    *(
        Excused(
            "shared.logs.x__base64_forms",
            "for text in (" + forms + "):",
            "'X' is stripped too only from an encoding ending in 'X', which has no padding ('X' cannot precede '='): "
            "the encoding itself stays a form and a prefix of it is added: more text masked, never less",
            Verdict.ACCEPTABLE,
        )
        for forms in (
            'std, std.rstrip("XX=XX"), std.translate(_URLSAFE), std.translate(_URLSAFE).rstrip("=")',
            'std, std.rstrip("="), std.translate(_URLSAFE), std.translate(_URLSAFE).rstrip("XX=XX")',
        )
    ),
    Excused(
        "shared.logs.x_secret_forms",
        'forms = {value, quote(data, safe="XXXX"), quote(data), quote_plus(data)}',
        "letters are never percent-escaped: safe='XXXX' escapes exactly what safe='' does",
    ),
    Excused(
        "shared.logs.x_secret_forms",
        "if len(data) >= _MIN_CORE / 2:",
        "_MIN_CORE is 8: a length compares with 8 / 2 (4.0) exactly as with 8 // 2 (4)",
    ),
    *(
        Excused(function, line, "codec names are case-insensitive")
        for function, line in (
            ("shared.logs.x_secret_forms", 'data = value.encode("UTF-8", "surrogatepass")'),
            ("shared.logs.x_register_login", 'forms |= _base64_forms(blob.encode("UTF-8", "surrogatepass"))'),
        )
    ),
    *(
        Excused(
            function,
            "_known.add(None)",
            "_known only spares recomputing the forms of a value or login seen before: _add_forms adds nothing "
            "new then",
        )
        for function in ("shared.logs.x_register_secret", "shared.logs.x_register_login")
    ),
    Excused(
        "shared.logs.x_register_secret",
        "forms |= secret_forms(v) if (len(v) >= 4) or True else set()",
        "both values are 4 characters or more here: the stripped one was checked above, the given one is no shorter",
    ),
    *(
        Excused("shared.logs.x__trie_pattern", f'node[""] = {value}', 'only `"" in node` is read, never the value')
        for value in ("False", "None")
    ),
    Excused(
        "shared.logs.x__trie_pattern",
        'body = branches[0] if (len(branches) == 1) and False else "(?:" + "|".join(branches) + ")"',
        "a single branch in a non-capturing group, (?:x), matches exactly what x does",
    ),
    Excused(
        "shared.logs.x__add_forms",
        "if forms < _forms:",
        "forms equal to the known ones recompile the same pattern: only time is lost",
    ),
    Excused(
        "shared.logs.x_redact",
        'def redact(value: Any, key: str = "XXXX") -> Any:',
        "the default key is only looked at for a secret-like name: 'XXXX' is none, as '' is none",
    ),
    Excused(
        "shared.logs.x_redact",
        "kind = None",
        "a fast path: with no type at hand, every value goes through the isinstance branches below, which give "
        "the same result (plain values as they are, a string through redact_text), only slower",
    ),
    Excused(
        "shared.logs.x_redact",
        "if value is None and isinstance(value, (bool, int, float)):",
        "a fast path: None, a bool or a number is none of what the later branches take (str/bytes, dict, "
        "list/tuple, exception) and reaches the same `return value`",
    ),
    *(
        Excused("shared.alerts.outbox.x_deliver", line, _REQUIRED_FIELD)
        for line in (
            'frozen = {i: ch for ch, rec in outbox.inflight.items() for i in rec.get("ids", None)}',
            'frozen = {i: ch for ch, rec in outbox.inflight.items() for i in rec.get("ids", )}',
            'batch = [n for n in outbox.pending if rec and n.id in rec.get("ids", None)]',
            'batch = [n for n in outbox.pending if rec and n.id in rec.get("ids", )]',
            'attempts = (int(rec.get("attempts", None)) if rec else 0) + 1',
            'attempts = (int(rec.get("attempts", )) if rec else 0) + 1',
            'attempts = (int(rec.get("attempts", 1)) if rec else 0) + 1',
        )
    ),
    Excused("shared.alerts.outbox.x_deliver", 'rec = ""', "rec is only tested for truth: '' is as false as None"),
    Excused(
        "shared.alerts.outbox.x_deliver",
        'if float(state.get("blocked_until") or 1) > stamp:',
        "stamp is epoch seconds: a channel never blocked is as unblocked at 1 as at 0",
    ),
    *(
        Excused("shared.alerts.outbox.x_deliver", line, _TIMED, Verdict.ACCEPTABLE)
        for line in ("budget_s: float = 61.0,", "if time.monotonic() - started >= budget_s:")
    ),
    Excused(
        "shared.state.store.xǁStoreǁacquire_lease",
        "if old <= mine:",
        "`numbers` was listed before `mine` = max(numbers) + 1 was created: every old number is below it",
    ),
    *(
        Excused(
            "shared.state.store.xǁStoreǁacquire_lease",
            'if not self._create_lease(mine, {"owner": owner, "expires": now + ttl_s, ' + key + ": now}):",
            "`acquired` is written for a person reading the lease object; no code reads it",
            Verdict.ACCEPTABLE,
        )
        for key in ('"XXacquiredXX"', '"ACQUIRED"')
    ),
    Excused(
        "shared.state.store.xǁStoreǁacquire_lease",
        "break  # another contender created it first: look at the new holder",
        "after losing a create race the new holder is looked at again; break gives up at once: the same answer "
        "unless the winner released its lease between the two reads (a three-process race)",
        Verdict.ACCEPTABLE,
    ),
    # shared/config/urls.py
    Excused(
        "shared.config.urls.x_check_dns_name",
        'if not _RE_HOST_OK.match(host.replace("_", "XX-XX")):',
        "the replaced text only meets the character pattern, which takes '-' and 'XX-XX' alike: the same names "
        "match, and the messages and length rule read `host`, not the replaced text",
    ),
    # shared/alerts/channels/dingtalk.py
    *(
        Excused(
            "shared.alerts.channels.dingtalk.xǁDingTalkǁsend",
            line,
            "quote() never escapes letters: safe='XXXX' escapes exactly what safe='' does, for every value",
        )
        for line in (
            'query = "access_token=" + quote(token, safe="XXXX")',
            "query += f\"&timestamp={ts}&sign={quote(sign(secret, ts), safe='XXXX')}\"",
        )
    ),
    *(
        Excused(
            "shared.alerts.channels.dingtalk.xǁDingTalkǁsend",
            f'f"{{self.url}}?{{query}}", content=body, headers={{"{name}": "application/json; charset=utf-8"}}',
            "HTTP header names are case-insensitive (RFC 9110 5.1): httpx sends the name as written, so only a "
            "test of the raw bytes could tell, and no server reads them so",
            Verdict.ACCEPTABLE,
        )
        for name in ("content-type", "CONTENT-TYPE")
    ),
    # shared/probe/transport.py
    Excused(
        "shared.probe.transport.x__connect",
        "done.add_done_callback(lambda f: loop.remove_writer(fd) if (f.cancelled()) or True else None)",
        "a connect that ends uncancelled ends in writable(), which already removed the writer, and this callback "
        "(added before the caller awaits) runs before the caller can hand the fd on: removing it again is a no-op",
    ),
    Excused(
        "shared.probe.transport.xǁ_ResponseReaderǁdata_received",
        "if self.finished and self.error:",
        "a shortcut: after the response is complete every parser callback and both parser errors are ignored "
        "anyway, and after an error the transport is aborted, so no more bytes arrive",
    ),
    # shared/verdict/result.py
    *(
        Excused(
            "shared.verdict.result.x_epoch_of",
            f'moment = datetime.fromisoformat(text.replace("{z}", "+00:00"))',
            "killed on python 3.10, FC's runtime, whose fromisoformat refuses 'Z' (tests/verdict/"
            "test_result_mutants.py runs there in make test-pythons); mutmut runs on 3.11, which reads 'Z' itself",
            Verdict.ACCEPTABLE,
        )
        for z in ("XXZXX", "z")
    ),
    # shared/alerts/channels/email.py
    *(
        Excused(
            "shared.alerts.channels.email.xǁEmailǁbuild",
            line,
            "render.plain without rows computes render.all_facts(message) itself: the same rows (a function of "
            "the message alone), only computed twice",
        )
        for line in ("msg.set_content(render.plain(message, None))", "msg.set_content(render.plain(message, ))")
    ),
    # shared/alerts/outbox.py
    *(
        Excused(
            "shared.alerts.outbox.xǁOutboxǁadd",
            f"frozen = {{i for rec in self.inflight.values() for i in {ids}}}",
            _REQUIRED_FIELD,
        )
        for ids in ('rec.get("ids", None)', 'rec.get("ids", )')
    ),
    *(
        Excused(
            "shared.alerts.outbox.x_deliver",
            f"for name in [c for c, rec in outbox.inflight.items() if not waiting.intersection({ids})]:",
            _REQUIRED_FIELD,
        )
        for ids in ('rec.get("ids", None)', 'rec.get("ids", )')
    ),
    *(
        Excused(
            "shared.alerts.outbox.x_deliver",
            f'state.setdefault("sends", {default}).append(stamp)  # pruned to the window above, so it stays small',
            "under the same `if channel.rate_limit:` the pruning line has just set state['sends']: the default is "
            "never used",
        )
        for default in ("None", "")
    ),
    *(
        Excused(
            "shared.alerts.outbox.x__send",
            f'logs.get_logger({name}).error("channel_crashed", channel=channel.name, error=exc)',
            "the logger's name is not in the line: shared/logs.py configures no logger-name processor, and "
            "structlog's PrintLoggerFactory ignores it",
        )
        for name in ("None", '"XXvpcprobe.alertsXX"', '"VPCPROBE.ALERTS"')
    ),
)


@dataclass
class ModuleScore:
    module: Module
    killed: int = 0
    survived: list[str] = field(default_factory=list)  # neither excused nor reached by a test
    no_tests: list[str] = field(default_factory=list)
    timeout: int = 0
    unchecked: int = 0
    excused: list[tuple[str, Excused]] = field(default_factory=list)
    diffs: dict[str, str] = field(default_factory=dict)

    def excused_as(self, verdict: Verdict) -> list[tuple[str, Excused]]:
        return [(name, e) for name, e in self.excused if e.verdict is verdict]

    @property
    def total(self) -> int:
        return self.killed + len(self.survived) + len(self.no_tests) + self.timeout + len(self.excused)

    @property
    def score(self) -> float | None:
        """Killed (timeouts included) over the non-equivalent mutants checked."""
        checked = self.total - len(self.excused_as(Verdict.EQUIVALENT))
        return None if checked == 0 else (self.killed + self.timeout) / checked


def forget_plain_copy(module: Module) -> None:
    """mutmut copies a file it does not mutate into ./mutants; if that file joins `only_mutate` later, the
    copy's newer mtime makes mutmut take it as already mutated, with no mutants. Drop such a copy."""
    copy = ROOT / "mutants" / module.path
    if copy.exists() and not copy.with_name(copy.name + ".meta").exists():
        copy.unlink()


STOP_TRIES, STOP_WAIT_S = 5, 20.0  # interrupting a capped run: how often, and how long to wait each time


def run_module(module: Module, max_children: int, log: Path, minutes: float | None = None) -> int:
    """One `mutmut run` over the module's selected mutants; its (long, spinner-filled) output goes to `log`.

    After `minutes`, mutmut is interrupted (it stops its workers and keeps every result so far): the
    mutants it did not reach are reported as unchecked, and a later run of the module takes them."""
    forget_plain_copy(module)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(MUTMUT), "run", "--max-children", str(max_children), *module.patterns()],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        try:
            return proc.wait(timeout=None if minutes is None else minutes * 60)
        except subprocess.TimeoutExpired:
            pass
        # An interrupt during mutmut's stats or clean run is pytest's to swallow: ask until it stops.
        for _ in range(STOP_TRIES):
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=STOP_WAIT_S)
                return 0
            except subprocess.TimeoutExpired:
                continue
        proc.kill()
        proc.wait()
        return 0


# What mutmut prints when the unmutated tests failed (its stats run, or the clean run before the mutants).
UNMUTATED_RUN_FAILED = ("failed to collect stats", "Failed to run clean test")
CLEAN_RUN_TRIES = 3


def run_with_retries(module: Module, max_children: int, log: Path, minutes: float | None) -> int:
    """run_module, again when the unmutated tests failed: on a busy machine a timing test can miss its
    bound once; a real failure fails every try."""
    for _ in range(CLEAN_RUN_TRIES):
        code = run_module(module, max_children, log, minutes)
        output = log.read_text(errors="replace")
        if code == 0 or not any(marker in output for marker in UNMUTATED_RUN_FAILED):
            return code
        print(f"   the unmutated tests failed on {module.path}, trying again", flush=True)
    return code


def mutant_diff(name: str) -> str:
    """The mutated lines (`-`/`+`) of one mutant, from `mutmut show`."""
    shown = subprocess.run([str(MUTMUT), "show", name], cwd=ROOT, capture_output=True, text=True).stdout
    return "\n".join(line for line in shown.splitlines() if line[:1] in "-+" and line[:3] not in ("---", "+++"))


def excuse(name: str, diff: str) -> Excused | None:
    function = name.rsplit("__mutmut_", 1)[0]
    added = [line[1:].strip() for line in diff.splitlines() if line.startswith("+")]
    return next((e for e in EXCUSED if e.function == function and e.line in added), None)


def score_module(module: Module) -> ModuleScore:
    meta = ROOT / "mutants" / (module.path + ".meta")
    result = ModuleScore(module)
    if not meta.exists():
        return result
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    for name, code in sorted(codes.items()):
        if not module.selects(name):
            continue
        if code is None:
            result.unchecked += 1
        elif code in KILLED:
            result.killed += 1
        elif code in TIMEOUT:
            result.timeout += 1
        else:
            diff = result.diffs[name] = mutant_diff(name)
            excused = excuse(name, diff)
            if excused is not None:
                result.excused.append((name, excused))
            else:
                (result.no_tests if code in NO_TESTS else result.survived).append(name)
    return result


def table(scores: list[ModuleScore]) -> str:
    rows = [
        "| module | mutants | killed | survived | acceptable | no tests | equivalent | timeout | score |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scores:
        score = "not run" if s.score is None else f"{s.score:.0%}"
        if s.unchecked:
            score += f" ({s.unchecked} unchecked)"
        name = s.module.path + (" (restricted)" if s.module.functions else "")
        rows.append(
            f"| {name} | {s.total} | {s.killed} | {len(s.survived)} | {len(s.excused_as(Verdict.ACCEPTABLE))} | "
            f"{len(s.no_tests)} | {len(s.excused_as(Verdict.EQUIVALENT))} | {s.timeout} | {score} |"
        )
    return "\n".join(rows)


def _diff_block(diff: str) -> str:
    return "".join(f"    {line}\n" for line in diff.splitlines())


def survivors(scores: list[ModuleScore]) -> str:
    lines: list[str] = []
    for s in scores:
        for name in s.survived + s.no_tests:
            kind = "survived" if name in s.survived else "no test reaches it"
            lines.append(f"- `{name}` ({kind})\n" + _diff_block(s.diffs[name]))
        for name, e in s.excused:
            lines.append(f"- `{name}`: {e.verdict}: {e.why}\n" + _diff_block(s.diffs[name]))
    return "".join(lines)


def restrictions(modules: list[Module]) -> str:
    return "".join(f"- {m.path}: only {', '.join(m.functions)}: {m.why}\n" for m in modules if m.functions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="source files (default: the core modules)")
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested at once (default 1)")
    parser.add_argument("--minutes", type=float, help="stop each module's run after this long (default: no limit)")
    parser.add_argument("--report-only", action="store_true", help="score the last runs without running mutmut")
    parser.add_argument("--report", type=Path, help="also write the table and survivors to this markdown file")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if not (ROOT / m).is_file()]
    if unknown:
        parser.error(f"not a source file: {', '.join(unknown)}")
    modules = [CORE_BY_PATH.get(m, Module(m)) for m in args.modules] or list(CORE_MODULES)
    if not MUTMUT.exists():
        parser.error(f"{MUTMUT} not found: pip install -e '.[mutation]'")
    scores: list[ModuleScore] = []
    failed: list[str] = []
    for module in modules:
        if not args.report_only:
            print(f"== {module.path}", flush=True)
            log = ROOT / "mutants" / (module.path.replace("/", "_") + ".log")
            log.parent.mkdir(exist_ok=True)
            if run_with_retries(module, args.max_children, log, args.minutes) != 0:
                # e.g. the unmutated tests fail ("Failed to run clean test"): the other modules still run
                print(f"mutmut failed on {module.path}: see {log.relative_to(ROOT)}", file=sys.stderr)
                failed.append(module.path)
                continue
        scores.append(score_module(module))
        print(table(scores[-1:]).splitlines()[-1], flush=True)
    report = f"{table(scores)}\n\nRestricted:\n\n{restrictions(modules) or 'none'}\n"
    report += f"\nSurvivors:\n\n{survivors(scores) or 'none'}\n"
    if failed:
        report += f"\nNot scored (mutmut failed): {', '.join(failed)}\n"
    print("\n" + report)
    if args.report:
        args.report.write_text(report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
