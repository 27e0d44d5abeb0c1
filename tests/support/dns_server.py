"""A real DNS server on loopback (UDP), answering TXT queries from a dict: what
`cadenza doctor` reads DKIM records from in tests, over the real protocol, through the
same dnspython resolver it uses against a team's DNS."""

from __future__ import annotations

import socket
import threading

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class TxtServer:
    def __init__(self, records: dict[str, str] | None = None) -> None:
        self.records = dict(records or {})  # name (no trailing dot) -> TXT text
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stopping = False

    def __enter__(self) -> TxtServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Closing the socket does not wake a thread blocked in recvfrom on Linux (the
        # join used to wait out its 5 s): an empty datagram to itself does.
        self._stopping = True
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:
            waker.sendto(b"", self.sock.getsockname())
        self._thread.join(timeout=5)
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                wire, client = self.sock.recvfrom(4096)
            except OSError:  # closed
                return
            if self._stopping:
                return
            query = dns.message.from_wire(wire)
            response = dns.message.make_response(query)
            question = query.question[0]
            text = self.records.get(question.name.to_text().rstrip("."))
            if question.rdtype == dns.rdatatype.TXT and text is not None:
                chunks = [text[i : i + 255] for i in range(0, len(text), 255)]
                quoted = " ".join(f'"{chunk}"' for chunk in chunks)
                response.answer.append(
                    dns.rrset.from_text(question.name, 60, dns.rdataclass.IN, "TXT", quoted)
                )
            else:
                response.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(response.to_wire(), client)
