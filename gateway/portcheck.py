"""`make run` checks its port before it touches anything.

Without this, a second `make run` re-seeded the demo (which used to revoke the running demo's
key) and only then failed on the busy port. Binding the way uvicorn will (SO_REUSEADDR) tells
"in use" from "free" exactly, including a listener on 0.0.0.0 when we want 127.0.0.1.

    python -m gateway.portcheck HOST PORT   # exit 1 with a hint when the port is taken
"""

import errno
import socket
import sys


def port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def main(argv: list[str]) -> int:
    host, port = argv[0], int(argv[1])
    if port_in_use(host, port):
        sys.stderr.write(
            f"port {port} is in use: is the gateway already running? "
            f"Use another port: PORT={port + 1} make run\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
