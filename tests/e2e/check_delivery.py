#!/usr/bin/env python3
"""Check what an LMTP server delivered through Postfix against what Postfix sent it.

Inputs: the manifest of send_messages.py, the capture directory of lmtp_capture.py,
the test accounts, Postfix's log file and the delivery agent's log file. Checks, per
accepted transaction and per delivered copy:

  (a) the header fields that the delivery agent added: in "zoha" mode exactly
      Return-Path: <sender>, Delivered-To: recipient and Zoha's Received field, in this
      order; in "generic" mode (a stand-in such as Dovecot) any whole header fields that
      start with Return-Path: <sender>;
  (b) the rest of the file on disk equals the captured bytes with CRLF turned into LF, and
      the message that Courier IMAP serves, less the added fields, equals the captured bytes;
  (c) IMAP RFC822.SIZE equals the ,W= value of the file name, and ,S= equals the file size;
  (d) Postfix logged status=sent for every known recipient and for the capture recipient,
      and status=bounced for the unknown one, with no deferral;
  (e) files are owned by the account, mode 0600, the Maildir directories mode 0700, and
      tmp/ is empty; the number of copies per account and the Delivered-To addresses
      match the recipients.

Prints a summary and the first failures; exits 1 if any check failed.
"""

import argparse
import collections
import email.utils
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import time

CAPTURE_RECIPIENT = "capture@capture.test"
UNKNOWN_RECIPIENT = "nosuch@example.org"
MAX_SHOWN_PER_CHECK = 4

ZOHA_FILE_NAME = re.compile(r"^\d+\.M\d+P\d+Q\d+\.zoha\.test,S=\d+,W=\d+(:2,[A-Za-z]*)?$")
ZOHA_RECEIVED = re.compile(
    r"^Received: from (?P<lhlo>\S+) \((?P<peer>[^()]*)\)\s+by zoha\.test \(Zoha\) "
    r"with LMTP id (?P<id>\S+)\s+for <(?P<recipient>[^>]*)>; (?P<date>.+)$"
)
POSTFIX_DELIVERY = re.compile(
    r"postfix/(?P<agent>[\w-]+)\[\d+\]: (?P<queue_id>\w+): to=<(?P<recipient>[^>]*)>,"
    r".* status=(?P<status>\w+) \((?P<detail>.*)\)$"
)


class Failures:
    """Collect failed checks by check name, keeping every message for the report."""

    def __init__(self):
        self.by_check = collections.Counter()
        self.messages = []

    def add(self, check, message):
        self.by_check[check] += 1
        self.messages.append(f"[{check}] {message}")

    def __bool__(self):
        return bool(self.messages)


def first_difference(expected, actual, context=40):
    """Describe where two byte strings first differ, with a little context from each."""
    limit = min(len(expected), len(actual))
    offset = next((i for i in range(limit) if expected[i] != actual[i]), limit)
    start = max(0, offset - context)
    return (
        f"first difference at byte {offset} (expected {len(expected)} bytes, got {len(actual)}):\n"
        f"      expected: {expected[start : offset + context]!r}\n"
        f"      actual:   {actual[start : offset + context]!r}"
    )


def split_fields(data, eol, count):
    """Return up to COUNT leading header fields of DATA and the offset after them.

    A field is a line ending in EOL plus its continuation lines, which start with a space
    or a tab. Stops early at an empty line or at a line that is not a field start.
    """
    fields = []
    position = 0
    while len(fields) < count:
        end = data.find(eol, position)
        if end <= position or data[position : position + 1] in (b" ", b"\t"):
            break
        end += len(eol)
        while data[end : end + 1] in (b" ", b"\t"):
            next_end = data.find(eol, end)
            if next_end < 0:
                break
            end = next_end + len(eol)
        fields.append(data[position:end])
        position = end
    return fields, position


def unfold(field, eol):
    """Return one header field as a str on one line, continuation line breaks removed."""
    text = field.decode("utf-8", "replace")
    return text.replace(eol.decode(), "").rstrip()


def delivered_to_address(field, eol):
    """Return the address of a Delivered-To field, with or without angle brackets."""
    value = unfold(field, eol).split(":", 1)[1].strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    return value


def strip_added_fields(data, eol, sender, expected_body, mode):
    """Split a delivered message into the fields the delivery agent added and the rest.

    Returns (recipient or None, rest, list of problems). In "zoha" mode the first three
    fields must be Return-Path, Delivered-To and Received in Zoha's form. In "generic" mode
    the added fields are whatever precedes EXPECTED_BODY, which must be whole fields and
    start with Return-Path.
    """
    problems = []
    return_path = b"Return-Path: <" + sender.encode() + b">" + eol
    if mode == "zoha":
        fields, offset = split_fields(data, eol, 3)
        if len(fields) < 3:
            return None, data, [f"fewer than three header fields: {data[:200]!r}"]
        if fields[0] != return_path:
            problems.append(f"field 1 is {fields[0]!r}, expected {return_path!r}")
        recipient = None
        if fields[1].lower().startswith(b"delivered-to:"):
            recipient = delivered_to_address(fields[1], eol)
        else:
            problems.append(f"field 2 is {fields[1][:120]!r}, expected Delivered-To")
        received = unfold(fields[2], eol)
        match = ZOHA_RECEIVED.match(received)
        if not match:
            problems.append(f"field 3 is not Zoha's Received form: {received[:300]!r}")
        else:
            if recipient is not None and match["recipient"] != recipient:
                problems.append(f"Received names <{match['recipient']}>, Delivered-To names <{recipient}>")
            try:
                email.utils.parsedate_to_datetime(match["date"])
            except (TypeError, ValueError):
                problems.append(f"Received date is not an RFC 5322 date: {match['date']!r}")
        return recipient, data[offset:], problems

    if not data.startswith(return_path):
        problems.append(f"does not start with {return_path!r}: {data[:80]!r}")
    if not data.endswith(expected_body):
        return None, data, problems + ["does not end with the captured message"]
    prefix = data[: len(data) - len(expected_body)]
    fields, offset = split_fields(prefix, eol, 1000)
    if offset != len(prefix):
        problems.append(f"added text is not whole header fields: {prefix[offset : offset + 120]!r}")
    recipient = None
    for field in fields:
        if field.lower().startswith(b"delivered-to:"):
            recipient = delivered_to_address(field, eol)
    return recipient, expected_body, problems


def lf_to_crlf_size(data):
    """Return the size of DATA when each LF is sent as CRLF, as IMAP's RFC822.SIZE counts."""
    return len(data) + data.count(b"\n")


def crlf_digest(data):
    return hashlib.sha256(data.replace(b"\n", b"\r\n")).hexdigest()


class Account:
    def __init__(self, specification):
        name, uid, gid, home, maildir = specification.split(":", 4)
        self.name, self.uid, self.gid, self.home, self.maildir = name, int(uid), int(gid), home, maildir


class Checker:
    def __init__(self, arguments):
        self.arguments = arguments
        self.mode = arguments.header_mode
        self.failures = Failures()
        with open(arguments.manifest) as file:
            self.manifest = json.load(file)
        self.by_id = {entry["id"]: entry for entry in self.manifest}
        self.accounts = [Account(spec) for spec in arguments.account]
        self.captures = {}
        self.copies = collections.defaultdict(list)  # (test id, account) -> recipients found
        self.files_by_digest = collections.defaultdict(list)  # (account, digest) -> W values
        self.identical_on_disk = collections.Counter()  # test id -> copies equal to the capture
        self.identical_over_imap = collections.Counter()
        self.disk_copies = collections.Counter()  # account -> files found

    def accepted_entries(self):
        return [entry for entry in self.manifest if entry.get("queue_id")]

    def expected_recipients(self, entry, account):
        rejected = entry.get("rcpt_rejected", {})
        return [
            recipient
            for recipient, owner in entry["accounts"].items()
            if owner == account and recipient not in rejected
        ]

    # Captures

    def load_captures(self):
        for entry in self.accepted_entries():
            path = os.path.join(self.arguments.captures, entry["id"] + ".eml")
            try:
                with open(path, "rb") as file:
                    self.captures[entry["id"]] = file.read()
            except FileNotFoundError:
                self.failures.add("capture", f"{entry['id']} ({entry['source']}): no capture at {path}")

    # Files on disk

    def check_directories(self, account):
        for directory in (account.maildir, *(os.path.join(account.maildir, d) for d in ("tmp", "new", "cur"))):
            try:
                info = os.lstat(directory)
            except FileNotFoundError:
                self.failures.add("e-perms", f"{account.name}: {directory} is missing")
                continue
            if not stat.S_ISDIR(info.st_mode):
                self.failures.add("e-perms", f"{account.name}: {directory} is not a directory")
            if (info.st_uid, info.st_gid) != (account.uid, account.gid):
                self.failures.add(
                    "e-perms",
                    f"{account.name}: {directory} owned by {info.st_uid}:{info.st_gid}, "
                    f"expected {account.uid}:{account.gid}",
                )
            if stat.S_IMODE(info.st_mode) != 0o700:
                self.failures.add(
                    "e-perms", f"{account.name}: {directory} has mode {stat.S_IMODE(info.st_mode):04o}, expected 0700"
                )
        tmp = os.path.join(account.maildir, "tmp")
        leftovers = os.listdir(tmp) if os.path.isdir(tmp) else []
        if leftovers:
            self.failures.add("e-tmp", f"{account.name}: {len(leftovers)} files left in {tmp}: {leftovers[:5]}")

    def check_disk(self, account):
        self.check_directories(account)
        for subdirectory in ("new", "cur"):
            directory = os.path.join(account.maildir, subdirectory)
            if not os.path.isdir(directory):
                continue
            for name in sorted(os.listdir(directory)):
                self.check_file(account, os.path.join(directory, name))

    def check_file(self, account, path):
        name = os.path.basename(path)
        info = os.lstat(path)
        where = f"{account.name}: {path}"
        if not stat.S_ISREG(info.st_mode):
            self.failures.add("e-perms", f"{where} is not a regular file")
            return
        self.disk_copies[account.name] += 1
        if (info.st_uid, info.st_gid) != (account.uid, account.gid):
            self.failures.add(
                "e-perms", f"{where} owned by {info.st_uid}:{info.st_gid}, expected {account.uid}:{account.gid}"
            )
        if stat.S_IMODE(info.st_mode) != 0o600:
            self.failures.add("e-perms", f"{where} has mode {stat.S_IMODE(info.st_mode):04o}, expected 0600")
        if self.mode == "zoha" and not ZOHA_FILE_NAME.match(name):
            self.failures.add("c-name", f"{where}: name does not match <sec>.M<usec>P<pid>Q<n>.zoha.test,S=,W=")

        with open(path, "rb") as file:
            data = file.read()
        size_match = re.search(r",S=(\d+)", name)
        wire_match = re.search(r",W=(\d+)", name)
        if not size_match or not wire_match:
            self.failures.add("c-sizes", f"{where}: no ,S= or ,W= in the name")
        else:
            if int(size_match[1]) != len(data):
                self.failures.add("c-sizes", f"{where}: S={size_match[1]} but the file has {len(data)} bytes")
            if int(wire_match[1]) != lf_to_crlf_size(data):
                self.failures.add(
                    "c-sizes", f"{where}: W={wire_match[1]} but the size with CRLF line ends is {lf_to_crlf_size(data)}"
                )
            self.files_by_digest[(account.name, crlf_digest(data))].append(int(wire_match[1]))

        if b"\r\n" in data and self.mode == "zoha":
            self.failures.add("b-disk", f"{where}: contains CRLF; Maildir files must use LF line ends")
        test_id = self.test_id_of(data)
        if test_id is None:
            self.failures.add("a-headers", f"{where}: no Return-Path naming a test sender: {data[:100]!r}")
            return
        capture = self.captures.get(test_id)
        if capture is None:
            return
        expected_body = capture.replace(b"\r\n", b"\n")
        sender = self.by_id[test_id]["sender"]
        recipient, rest, problems = strip_added_fields(data, b"\n", sender, expected_body, self.mode)
        for problem in problems:
            self.failures.add("a-headers", f"{where} ({test_id}): {problem}")
        self.copies[(test_id, account.name)].append(recipient)
        if rest == expected_body:
            self.identical_on_disk[test_id] += 1
        else:
            self.failures.add(
                "b-disk",
                f"{where} ({test_id}, {self.by_id[test_id]['source']}): differs from the capture with CRLF as LF; "
                + first_difference(expected_body, rest),
            )

    def test_id_of(self, data):
        match = re.match(rb"Return-Path: <([^@>]+)@example\.net>\r?\n", data)
        if match and match[1].decode() in self.by_id:
            return match[1].decode()
        return None

    def check_copy_counts(self):
        for entry in self.accepted_entries():
            for account in self.accounts:
                expected = self.expected_recipients(entry, account.name)
                found = self.copies.get((entry["id"], account.name), [])
                if len(found) != len(expected):
                    self.failures.add(
                        "e-count",
                        f"{entry['id']} ({entry['source']}, {entry['shape']} recipients): "
                        f"{len(found)} copies for {account.name}, expected {len(expected)}",
                    )
                elif self.mode == "zoha" and collections.Counter(found) != collections.Counter(expected):
                    missing = collections.Counter(expected) - collections.Counter(found)
                    extra = collections.Counter(found) - collections.Counter(expected)
                    self.failures.add(
                        "a-delivered-to",
                        f"{entry['id']}: Delivered-To addresses for {account.name} differ from the RCPT addresses; "
                        f"missing {sorted(missing)[:5]}, unexpected {sorted(map(str, extra))[:5]}",
                    )

    # Courier IMAP

    def fetch_over_imap(self, account):
        """Return [(sequence number, RFC822.SIZE, body)] as Courier's imapd serves them."""
        commands = b"a1 SELECT INBOX\r\na2 FETCH 1:* (RFC822.SIZE BODY.PEEK[])\r\na3 LOGOUT\r\n"
        environment = ["env", "-i", f"HOME={account.home}", f"AUTHENTICATED={account.name}"]
        command = [
            "setpriv",
            f"--reuid={account.uid}",
            f"--regid={account.gid}",
            "--clear-groups",
            *environment,
            self.arguments.imapd,
            account.maildir,
        ]
        completed = subprocess.run(command, input=commands, capture_output=True, timeout=600)
        output = completed.stdout
        if b"\r\na2 OK" not in output:
            tail = output[-300:]
            self.failures.add("imap", f"{account.name}: FETCH did not complete; output ends {tail!r}")
        return parse_fetch_responses(output)

    def check_imap(self, account):
        messages = self.fetch_over_imap(account)
        if len(messages) != self.disk_copies[account.name]:
            self.failures.add(
                "imap",
                f"{account.name}: IMAP lists {len(messages)} messages, the Maildir has {self.disk_copies[account.name]}",
            )
        for sequence, size, body in messages:
            where = f"{account.name}: IMAP message {sequence}"
            if size is None or body is None:
                self.failures.add("imap", f"{where}: response lacks RFC822.SIZE or BODY[]")
                continue
            if len(body) != size:
                self.failures.add("c-sizes", f"{where}: RFC822.SIZE {size} but BODY[] has {len(body)} bytes")
            wire_sizes = self.files_by_digest.get((account.name, hashlib.sha256(body).hexdigest()))
            if wire_sizes:
                wire_size = wire_sizes.pop()
                if wire_size != size:
                    self.failures.add("c-sizes", f"{where}: RFC822.SIZE {size} but the file name has W={wire_size}")
            else:
                self.failures.add("c-sizes", f"{where}: BODY[] is no file of the Maildir with LF as CRLF")
            test_id = self.test_id_of(body)
            if test_id is None or test_id not in self.captures:
                self.failures.add("a-headers", f"{where}: no Return-Path naming a captured test sender: {body[:100]!r}")
                continue
            capture = self.captures[test_id]
            _, rest, _ = strip_added_fields(body, b"\r\n", self.by_id[test_id]["sender"], capture, self.mode)
            if rest == capture:
                self.identical_over_imap[test_id] += 1
            else:
                self.failures.add(
                    "b-imap",
                    f"{where} ({test_id}, {self.by_id[test_id]['source']}): differs from the capture; "
                    + first_difference(capture, rest),
                )

    # Postfix's log

    def read_postfix_statuses(self):
        """Return {queue id: {recipient: [status, ...]}} from Postfix's log."""
        statuses = collections.defaultdict(lambda: collections.defaultdict(list))
        with open(self.arguments.postfix_log, errors="replace") as file:
            for line in file:
                match = POSTFIX_DELIVERY.search(line)
                if match:
                    statuses[match["queue_id"]][match["recipient"]].append((match["status"], match["detail"]))
        return statuses

    def check_postfix_log(self):
        # postlogd writes the log asynchronously, so give the last lines a few seconds.
        for _ in range(50):
            statuses = self.read_postfix_statuses()
            if all(self.final_statuses_logged(entry, statuses) for entry in self.accepted_entries()):
                break
            time.sleep(0.2)
        for entry in self.accepted_entries():
            logged = statuses.get(entry["queue_id"], {})
            rejected = entry.get("rcpt_rejected", {})
            for recipient in entry["recipients"] + [CAPTURE_RECIPIENT]:
                if recipient in rejected:
                    continue
                expected = "bounced" if recipient == UNKNOWN_RECIPIENT else "sent"
                history = logged.get(recipient, [])
                where = f"{entry['id']} queue id {entry['queue_id']} to=<{recipient}>"
                if not history:
                    self.failures.add("d-log", f"{where}: no delivery status in Postfix's log")
                    continue
                final_status, detail = history[-1]
                if final_status != expected:
                    self.failures.add("d-log", f"{where}: status={final_status} ({detail}), expected {expected}")
                for status, detail in history[:-1]:
                    self.failures.add("d-log", f"{where}: status={status} ({detail}) before the final status")

    def final_statuses_logged(self, entry, statuses):
        logged = statuses.get(entry["queue_id"], {})
        required = set(entry["recipients"] + [CAPTURE_RECIPIENT]) - set(entry.get("rcpt_rejected", {}))
        return all(
            logged.get(recipient) and logged[recipient][-1][0] in ("sent", "bounced") for recipient in required
        )

    # Delivery agent's log

    def check_agent_log(self):
        if not self.arguments.agent_log or not os.path.exists(self.arguments.agent_log):
            return
        with open(self.arguments.agent_log, errors="replace") as file:
            for line in file:
                if "panicked" in line or "RUST_BACKTRACE" in line:
                    self.failures.add("agent-log", f"{self.arguments.agent_log}: {line.strip()}")

    # Report

    def report(self):
        entries = self.manifest
        accepted = self.accepted_entries()
        rejected = [entry for entry in entries if "rejected" in entry]
        corpus_sources = sorted({entry["source"] for entry in entries if entry["kind"] == "corpus"})
        generated_sources = sorted({entry["source"] for entry in entries if entry["kind"] == "generated"})
        expected_copies = sum(
            len(self.expected_recipients(entry, account.name)) for entry in accepted for account in self.accounts
        )
        found_copies = sum(len(found) for found in self.copies.values())
        title = self.arguments.title
        print(f"== {title}: summary")
        print(f"   messages: {len(corpus_sources)} from the corpora, {len(generated_sources)} generated")
        print(f"   transactions sent to Postfix: {len(entries)}, accepted {len(accepted)}, rejected {len(rejected)}")
        for entry in rejected:
            rejection = entry["rejected"]
            print(f"     rejected {entry['id']} {entry['source']} at {rejection['stage']}: "
                  f"{rejection['code']} {rejection['text']}")
        for entry in entries:
            for recipient, reply in entry.get("rcpt_rejected", {}).items():
                print(f"     {entry['id']} RCPT <{recipient}> rejected: {reply}")
        print(f"   copies expected: {expected_copies}, found on disk: {found_copies}")
        print(f"   copies byte-identical to the capture: on disk {sum(self.identical_on_disk.values())}, "
              f"over IMAP {sum(self.identical_over_imap.values())}")

        per_source = collections.defaultdict(lambda: [0, 0, 0])  # source -> [expected, disk, imap]
        for entry in accepted:
            expected = sum(len(self.expected_recipients(entry, a.name)) for a in self.accounts)
            counts = per_source[entry["source"]]
            counts[0] += expected
            counts[1] += self.identical_on_disk[entry["id"]]
            counts[2] += self.identical_over_imap[entry["id"]]
        all_sources = corpus_sources + generated_sources
        delivered = [s for s in all_sources if s in per_source]
        identical = [s for s in delivered if per_source[s][0] == per_source[s][1] == per_source[s][2]]
        corpus_identical = [s for s in identical if s in corpus_sources]
        print(f"   corpus messages delivered: {sum(1 for s in delivered if s in corpus_sources)} "
              f"of {len(corpus_sources)}, byte-identical in every copy on disk and over IMAP: {len(corpus_identical)}")
        print(f"   generated messages byte-identical in every copy: "
              f"{len([s for s in identical if s in generated_sources])} of {len(generated_sources)}")
        if self.failures:
            print(f"   FAILED checks: {dict(self.failures.by_check)}")
            for check in self.failures.by_check:
                messages = [m for m in self.failures.messages if m.startswith(f"[{check}] ")]
                for message in messages[:MAX_SHOWN_PER_CHECK]:
                    print("   - " + message)
                if len(messages) > MAX_SHOWN_PER_CHECK:
                    print(f"   ... and {len(messages) - MAX_SHOWN_PER_CHECK} more [{check}] failures")
            if self.arguments.failures_file:
                print(f"   every failure is listed in {self.arguments.failures_file}")
        else:
            print("   all checks passed")
        if self.arguments.failures_file:
            with open(self.arguments.failures_file, "w") as file:
                file.write("\n".join(self.failures.messages) + "\n")

    def run(self):
        self.load_captures()
        self.check_postfix_log()
        for account in self.accounts:
            self.check_disk(account)
        self.check_copy_counts()
        for account in self.accounts:
            self.check_imap(account)
        self.check_agent_log()
        self.report()
        return 1 if self.failures else 0


def parse_fetch_responses(output):
    """Parse the untagged FETCH responses of an IMAP session transcript.

    Returns [(sequence number, RFC822.SIZE, BODY[] bytes)]. Literals are taken by their
    announced byte count, so any byte, CR, LF or NUL, survives unchanged.
    """
    messages = []
    position = 0
    start_pattern = re.compile(rb"\* (\d+) FETCH \(")
    while True:
        match = start_pattern.search(output, position)
        if not match:
            return messages
        sequence = int(match[1])
        position = match.end()
        size = body = None
        while position < len(output) and output[position : position + 1] != b")":
            name_end = output.find(b" ", position)
            name = output[position:name_end]
            position = name_end + 1
            value, position = parse_value(output, position)
            if name == b"RFC822.SIZE":
                size = int(value)
            elif name.startswith(b"BODY["):
                body = value
            if output[position : position + 1] == b" ":
                position += 1
        messages.append((sequence, size, body))


def parse_value(output, position):
    """Parse one IMAP value at POSITION and return (bytes, position after it)."""
    first = output[position : position + 1]
    if first == b"{":
        close = output.index(b"}", position)
        length = int(output[position + 1 : close])
        start = close + 3  # past "}\r\n"
        return output[start : start + length], start + length
    if first == b'"':
        end = position + 1
        while output[end : end + 1] != b'"':
            end += 2 if output[end : end + 1] == b"\\" else 1
        return output[position + 1 : end], end + 1
    if first == b"(":
        depth, end = 0, position
        while True:
            character = output[end : end + 1]
            depth += {b"(": 1, b")": -1}.get(character, 0)
            end += 1
            if depth == 0:
                return output[position:end], end
    end = position
    while output[end : end + 1] not in (b" ", b")", b""):
        end += 1
    return output[position:end], end


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--captures", required=True, help="directory written by lmtp_capture.py")
    parser.add_argument("--account", action="append", required=True, help="NAME:UID:GID:HOME:MAILDIR")
    parser.add_argument("--postfix-log", required=True)
    parser.add_argument("--agent-log", help="log file of the delivery agent, scanned for panics")
    parser.add_argument("--header-mode", choices=["zoha", "generic"], default="zoha")
    parser.add_argument("--imapd", default="/usr/bin/imapd")
    parser.add_argument("--title", default="delivery check")
    parser.add_argument("--failures-file", help="file to write every failure to")
    arguments = parser.parse_args()
    sys.exit(Checker(arguments).run())


if __name__ == "__main__":
    main()
