"""What the proxy's resource limits hold: resident memory of a real `caproute serve`.

The probes of issue 10 (items 1 and 2), sent to the real command in its own process
(with the fake API in another), reading the proxy's ``VmRSS`` / ``VmHWM`` (peak) from
``/proc`` (Linux) before and after each:

* a 256 MB request header (refused at 64 KiB with a 431);
* 10,000 headers (431);
* four concurrent 32 MiB bodies of tiny JSON values (413 before parsing);
* an upstream 400 whose gzip body decompresses to 1 GiB (passed through unread);
* 64 idle connections (closed after the keep-alive timeout).

Run: ``.venv/bin/python benchmarks/bench_proxy_limits.py``.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="caproute-bench-")

import httpx2

from bench_proxy import API_KEY, fake_api, free_port, served

HEADERS = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}


def memory(pid: int) -> tuple[float, float]:
    """(resident MB now, peak resident MB so far) of a process."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def send_raw(port: int, head: bytes, body_chunks: int = 0, chunk: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(head)
            for _ in range(body_chunks):
                sock.sendall(chunk)
        except OSError:
            pass
        data = b""
        try:
            while part := sock.recv(65536):
                data += part
        except OSError:
            pass
        return data


def status(answer: bytes) -> str:
    return answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "closed"


def main() -> None:
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n")
    with fake_api() as upstream:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "caproute", "serve", "--port", str(port)]
        command += ["--upstream", upstream, "--log-level", "warning"]
        with served(command, f"{url}/caproute/health") as pid:
            httpx2.get(f"{url}/v1/models", headers=HEADERS)  # warm: the caller's registry
            rows = [("at rest", "", *memory(pid))]

            head = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nx-pad: "
            answer = send_raw(port, head, body_chunks=256 * 16, chunk=b"a" * 65536)
            rows.append(("a 256 MB header", status(answer), *memory(pid)))

            many = "".join(f"x-h{i}: 1\r\n" for i in range(10_000)).encode()
            answer = send_raw(port, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
            rows.append(("10,000 headers", status(answer), *memory(pid)))

            tiny = b'{"model":"claude-haiku-4-5","max_tokens":8,"messages":['
            tiny += b"{}," * ((32 * 1024 * 1024 - 100) // 3) + b"{}]}"
            statuses: list[str] = []

            def post() -> None:
                answer = httpx2.post(
                    f"{url}/v1/messages", content=tiny, headers=HEADERS, timeout=60
                )
                statuses.append(str(answer.status_code))

            threads = [threading.Thread(target=post) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            rows.append(("4 × 32 MiB of tiny JSON values", ",".join(statuses), *memory(pid)))

            idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
            time.sleep(0.5)
            rows.append(("64 idle connections", "", *memory(pid)))
            time.sleep(6)
            closed = 0
            for sock in idle:
                sock.settimeout(0.5)
                with contextlib.suppress(OSError):
                    closed += sock.recv(1) == b""
                sock.close()
            rows.append((f"... 6 s later ({closed}/64 closed by the proxy)", "", *memory(pid)))

        bomb = gzip.compress(b" " * (1 << 30), compresslevel=9)
        fault = (
            "import sys, gzip\n"
            "from caproute.testing import FakeAnthropic\n"
            f"fake = FakeAnthropic(api_key={API_KEY!r}).start()\n"
            "body = open(sys.argv[1], 'rb').read()\n"
            "fake.faults.add('/v1/messages', status=400, body=body, "
            "headers={'content-encoding': 'gzip'}, times=None)\n"
            "print(fake.url, flush=True)\n"
            "sys.stdin.read()\n"
        )
        with tempfile.NamedTemporaryFile(suffix=".gz") as file:
            file.write(bomb)
            file.flush()
            fake = subprocess.Popen(
                [sys.executable, "-c", fault, file.name],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert fake.stdout is not None
            bomb_upstream = fake.stdout.readline().strip()
            try:
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                command = [sys.executable, "-m", "caproute", "serve", "--port", str(port)]
                command += ["--upstream", bomb_upstream, "--log-level", "warning"]
                with served(command, f"{url}/caproute/health") as pid:
                    httpx2.get(f"{url}/v1/models", headers=HEADERS)
                    before = memory(pid)
                    body = {
                        "model": "claude-haiku-4-5",
                        "max_tokens": 8,
                        "messages": [{"role": "user", "content": "hi"}],
                    }
                    with httpx2.stream(
                        "POST", f"{url}/v1/messages", json=body, headers=HEADERS
                    ) as answer:
                        size = sum(len(c) for c in answer.iter_raw())
                    label = f"a 400 whose {len(bomb) // 1024} KB gzip body inflates to 1 GiB"
                    rows.append(("(second proxy) at rest", "", *before))
                    rows.append(
                        (label, f"{answer.status_code}, {size // 1024} KB relayed", *memory(pid))
                    )
            finally:
                fake.terminate()
                fake.wait(10)

    print("| probe | answer | proxy RSS after | proxy peak RSS |")
    print("| --- | --- | ---: | ---: |")
    for name, answer, rss, peak in rows:
        print(f"| {name} | {answer} | {rss:.0f} MB | {peak:.0f} MB |")


if __name__ == "__main__":
    main()
