#!/usr/bin/env python3
"""Run an LMTP server that stores each message exactly as the client sent it.

The end-to-end test gives every message one extra recipient in a domain that Postfix
routes here, so this server receives the same bytes that Postfix's LMTP client sends
to Zoha. Each DATA body is stored dot-unstuffed with its CRLF line ends as
DIR/<sender local part>.eml, where the sender is the test's unique envelope sender;
DIR/index.jsonl gets one line per transaction with the envelope.

The server accepts every recipient and replies after DATA once per recipient (RFC 2033).
It advertises the extensions that change what Postfix sends (8BITMIME, SMTPUTF8), as
Zoha does, so Postfix applies the same conversions to both copies.
It does not advertise CHUNKING because Postfix's LMTP client never sends BDAT.
"""

import argparse
import json
import os
import socket
import socketserver
import sys
import threading

INDEX_LOCK = threading.Lock()


class LineReader:
    """Reader of CRLF-terminated lines from a socket, in which a bare LF or CR does not end a line."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""
        self.position = 0

    def read_line(self):
        """Return the next line including its CRLF, or what is left (maybe b"") at end of input."""
        while True:
            end = self.buffer.find(b"\r\n", self.position)
            if end >= 0:
                line = self.buffer[self.position : end + 2]
                self.position = end + 2
                return line
            chunk = self.sock.recv(65536)
            # Keep the unread tail only, so the buffer does not grow with the message.
            self.buffer = self.buffer[self.position :] + chunk
            self.position = 0
            if not chunk:
                line, self.buffer = self.buffer, b""
                return line


def address_in(argument):
    """Return the address between the first < and the following > of a MAIL or RCPT argument."""
    start = argument.find("<")
    end = argument.find(">", start + 1)
    if start < 0 or end < 0:
        return None
    return argument[start + 1 : end]


class CaptureHandler(socketserver.BaseRequestHandler):
    """Serve one LMTP session."""

    def handle(self):
        self.reader = LineReader(self.request)
        self.reset()
        self.send("220 capture.test LMTP capture server ready")
        while True:
            line = self.reader.read_line()
            if not line:
                return
            command = line.rstrip(b"\r\n").decode("utf-8", "replace")
            verb, _, argument = command.partition(" ")
            verb = verb.upper()
            if verb == "LHLO":
                self.send(
                    "250-capture.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n"
                    "250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 104857600"
                )
            elif verb == "MAIL":
                self.reset()
                self.sender = address_in(argument)
                self.mail_parameters = argument.split(">", 1)[-1].strip()
                self.send("250 2.1.0 OK")
            elif verb == "RCPT":
                self.recipients.append(address_in(argument))
                self.send("250 2.1.5 OK")
            elif verb == "DATA":
                if self.sender is None or not self.recipients:
                    self.send("503 5.5.1 MAIL and RCPT first")
                    continue
                self.send("354 2.0.0 send the message, end with <CRLF>.<CRLF>")
                body = self.read_data()
                if body is None:
                    return
                self.store(body)
                for recipient in self.recipients:
                    self.send(f"250 2.0.0 <{recipient}> captured")
                self.reset()
            elif verb == "RSET":
                self.reset()
                self.send("250 2.0.0 OK")
            elif verb == "NOOP":
                self.send("250 2.0.0 OK")
            elif verb == "QUIT":
                self.send("221 2.0.0 bye")
                return
            else:
                self.send("500 5.5.2 command not recognized")

    def reset(self):
        self.sender = None
        self.mail_parameters = ""
        self.recipients = []

    def send(self, reply):
        self.request.sendall(reply.encode() + b"\r\n")

    def read_data(self):
        """Read DATA up to CRLF.CRLF and return the body dot-unstuffed, or None at end of input."""
        lines = []
        while True:
            line = self.reader.read_line()
            if not line.endswith(b"\r\n"):
                return None
            if line == b".\r\n":
                return b"".join(lines)
            if line.startswith(b"."):
                line = line[1:]
            lines.append(line)

    def store(self, body):
        directory = self.server.capture_dir
        local_part = (self.sender or "").split("@", 1)[0]
        safe_name = "".join(c for c in local_part if c.isalnum() or c in "-_") or "empty-sender"
        path = os.path.join(directory, safe_name + ".eml")
        with open(path, "wb") as file:
            file.write(body)
        record = {
            "sender": self.sender,
            "parameters": self.mail_parameters,
            "recipients": self.recipients,
            "size": len(body),
            "file": os.path.basename(path),
        }
        with INDEX_LOCK, open(os.path.join(directory, "index.jsonl"), "a") as index:
            index.write(json.dumps(record) + "\n")


class CaptureServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="127.0.0.1:PORT to listen on")
    parser.add_argument("--dir", required=True, help="directory for the captured messages")
    arguments = parser.parse_args()

    host, port = arguments.listen.rsplit(":", 1)
    if not host.startswith("127."):
        sys.exit(f"refusing to listen on {host}: the capture server is for loopback only")
    os.makedirs(arguments.dir, exist_ok=True)
    server = CaptureServer((host, int(port)), CaptureHandler)
    server.capture_dir = arguments.dir
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.serve_forever()


if __name__ == "__main__":
    main()
