#!/usr/bin/env python3
"""Send the end-to-end test messages to Postfix over SMTP and write a manifest.

Every message goes out once per recipient shape (1, 3 and 60 recipients, the last two
including the unknown nosuch@example.org), each time with a unique envelope sender
<PASS####@example.net> and the extra recipient capture@capture.test that Postfix
routes to the capture server. The manifest (JSON) records, per transaction, the test
id, the message source, the recipients, the known accounts they map to, and
Postfix's reply: the queue id, or the rejection with its stage and text.
"""

import argparse
import glob
import json
import os
import re
import smtplib
import sys

CPYTHON_CORPUS = "/usr/lib/python3.11/test/test_email/data/msg_*.txt"
ENMIME_CORPUS = [
    "/usr/share/gocode/src/github.com/jhillyerd/enmime/testdata/mail/*.raw",
    "/usr/share/gocode/src/github.com/jhillyerd/enmime/testdata/low-quality/*.raw",
]
CAPTURE_RECIPIENT = "capture@capture.test"
UNKNOWN_RECIPIENT = "nosuch@example.org"
ACCOUNTS = ["alice", "bob", "carol"]
DOMAIN = "example.org"

BARE_LF = re.compile(rb"(?<!\r)\n")


def to_crlf(data):
    """Turn bare LF line ends into CRLF and leave existing CRLF and bare CR alone."""
    return BARE_LF.sub(b"\r\n", data)


def recipient_shapes():
    """Return the recipient lists by shape name, without capture@capture.test."""
    sixty = []
    for account in ACCOUNTS:
        count = 19 if account == "carol" else 20
        sixty += [f"{account}+{n}@{DOMAIN}" for n in range(1, count + 1)]
    sixty.append(UNKNOWN_RECIPIENT)
    assert len(sixty) == 60
    return {
        "1": [f"alice@{DOMAIN}"],
        "3": [f"alice@{DOMAIN}", f"bob@{DOMAIN}", UNKNOWN_RECIPIENT],
        "60": sixty,
    }


def account_of(recipient):
    """Return the test account that RECIPIENT delivers to, or None for an unknown address."""
    local_part, _, domain = recipient.partition("@")
    base = local_part.split("+", 1)[0]
    if domain == DOMAIN and base in ACCOUNTS:
        return base
    return None


def generated_messages():
    """Return (name, bytes, MAIL parameters) for the messages this test builds itself."""
    messages = []

    latin1 = (
        b"From: J\xf6rg M\xfcller <joerg@example.net>\r\n"
        b"To: alice@example.org\r\n"
        b"Subject: caf\xe9 cr\xe8me br\xfbl\xe9e\r\n"
        b"\r\n"
        b"Raw Latin-1 body: \xe0 \xe9 \xee \xf5 \xfc \xff\r\n"
    )
    messages.append(("latin1-8bitmime", latin1, ["BODY=8BITMIME"]))
    messages.append(("latin1-no-body-param", latin1, []))

    messages.append(
        (
            "nul-byte",
            b"Subject: a NUL byte in the body\r\n\r\nbefore\x00after\r\n\x00\r\nend\r\n",
            [],
        )
    )

    long_header = b"X-Long: " + b"h" * 2992 + b"\r\n"
    long_body = b"".join(bytes([ord("a") + n]) * length + b"\r\n" for n, length in enumerate([999, 1500, 5000]))
    messages.append(("long-lines", b"Subject: lines over 998 octets\r\n" + long_header + b"\r\n" + long_body, []))

    dots = b"..test\r\n..\r\n.\r\n...\r\n. leading dot and space\r\nmiddle . dot\r\n.\r\n"
    messages.append(("leading-dots", b"Subject: lines starting with dots\r\n\r\n" + dots, []))

    messages.append(("bare-cr", b"Subject: bare CR\r\n\r\none\rtwo\r\nthree\r\r\n", []))
    messages.append(("headers-only", b"Subject: no body at all\r\n", []))
    messages.append(("no-final-newline", b"Subject: no final line end\r\n\r\nlast line", []))
    messages.append(
        (
            "utf8-smtputf8",
            "From: Jörg <jörg@example.net>\r\nSubject: Grüße, 日本語\r\n\r\nUTF-8 body: ½ € ✓\r\n".encode(),
            ["SMTPUTF8", "BODY=8BITMIME"],
        )
    )

    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!?\r\n"
    big_body = line * (5 * 1024 * 1024 // len(line))
    messages.append(("big-5mb", b"Subject: about 5 MB\r\n\r\n" + big_body, []))
    return messages


def corpus_messages():
    """Return (path, bytes, MAIL parameters) for every corpus file, sorted by path."""
    paths = sorted(glob.glob(CPYTHON_CORPUS))
    for pattern in ENMIME_CORPUS:
        paths += sorted(glob.glob(pattern))
    messages = []
    for path in paths:
        with open(path, "rb") as file:
            data = to_crlf(file.read())
        parameters = ["BODY=8BITMIME"] if any(byte >= 0x80 for byte in data) else []
        messages.append((path, data, parameters))
    return messages


def send_one(server, sender, recipients, data, parameters, smtputf8):
    """Send one transaction and return a dict with the queue id or the rejection."""
    result = {"rcpt_rejected": {}}
    with smtplib.SMTP(server[0], server[1], local_hostname="sender.test", timeout=300) as smtp:
        smtp.ehlo()
        mail_options = list(parameters)
        if smtputf8 and not smtp.has_extn("smtputf8"):
            mail_options.remove("SMTPUTF8")
        code, text = smtp.mail(sender, mail_options)
        if code != 250:
            return {"rejected": {"stage": "MAIL", "code": code, "text": text.decode(errors="replace")}}
        accepted = 0
        for recipient in recipients:
            code, text = smtp.rcpt(recipient)
            if code == 250:
                accepted += 1
            else:
                result["rcpt_rejected"][recipient] = f"{code} {text.decode(errors='replace')}"
        if accepted == 0:
            result["rejected"] = {"stage": "RCPT", "code": code, "text": text.decode(errors="replace")}
            return result
        try:
            code, text = smtp.data(data)
        except smtplib.SMTPDataError as error:
            code, text = error.smtp_code, error.smtp_error
        text = text.decode(errors="replace")
        if code != 250:
            result["rejected"] = {"stage": "DATA", "code": code, "text": text}
            return result
        match = re.search(r"queued as (\w+)", text)
        result["queue_id"] = match.group(1) if match else None
        result["reply"] = f"{code} {text}"
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smtp", required=True, help="Postfix SMTP address, 127.0.0.1:PORT")
    parser.add_argument("--pass-name", required=True, help="prefix of the test ids, e.g. tcp")
    parser.add_argument("--manifest", required=True, help="output JSON file")
    parser.add_argument("--save-dir", help="directory to store each message as sent")
    arguments = parser.parse_args()

    host, port = arguments.smtp.rsplit(":", 1)
    server = (host, int(port))
    shapes = recipient_shapes()
    messages = [("corpus", *m) for m in corpus_messages()] + [("generated", *m) for m in generated_messages()]

    manifest = []
    number = 0
    for kind, source, data, parameters in messages:
        for shape, recipients in shapes.items():
            number += 1
            test_id = f"{arguments.pass_name}{number:04d}"
            sender = f"{test_id}@example.net"
            if arguments.save_dir:
                with open(os.path.join(arguments.save_dir, test_id + ".sent"), "wb") as file:
                    file.write(data)
            result = send_one(
                server, sender, recipients + [CAPTURE_RECIPIENT], data, parameters, "SMTPUTF8" in parameters
            )
            entry = {
                "id": test_id,
                "kind": kind,
                "source": source,
                "shape": shape,
                "sender": sender,
                "recipients": recipients,
                "accounts": {r: account_of(r) for r in recipients},
                "size": len(data),
                **result,
            }
            manifest.append(entry)
            if "rejected" in entry:
                rejection = entry["rejected"]
                print(
                    f"{test_id}: Postfix rejected {source} at {rejection['stage']}: "
                    f"{rejection['code']} {rejection['text']}",
                    file=sys.stderr,
                )

    with open(arguments.manifest, "w") as file:
        json.dump(manifest, file, indent=1)
    accepted = sum(1 for entry in manifest if "queue_id" in entry)
    print(f"sent {len(manifest)} transactions ({len(messages)} messages x {len(shapes)} shapes), {accepted} accepted")


if __name__ == "__main__":
    main()
