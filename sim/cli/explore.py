"""``llmsim-explore``: the explorer in the browser (sim/studies/explore/), served on this machine.

    llmsim-explore [--port 8050] [--host 127.0.0.1]

Prints the URL to open and serves until Ctrl-C (one line, exit status 130). Every script and style
the page needs comes from the installed Python packages (Dash serves its own bundles), so it works
with no network.
"""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys

from sim.cli.common import ArgumentParser, one_line_errors
from sim.config.overrides import EXIT_BAD_INPUT, EXIT_INTERRUPTED


def parse(argv: list[str]) -> argparse.Namespace:
    parser = ArgumentParser(prog="llmsim-explore", description="the llmsim explorer, a local web app")
    parser.add_argument("--port", type=int, default=8050, help="port to serve on (default 8050; 0 = any free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    return parser.parse_args(argv)


def free_port(host: str, port: int) -> int:
    """``port`` if it can be bound on ``host`` (0: any free one), an IPv4 or IPv6 address or name; OSError otherwise."""
    family, _, _, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                  flags=socket.AI_PASSIVE)[0]  # "": every interface
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind(address)
        return sock.getsockname()[1]


@one_line_errors("llmsim-explore")
def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    args = parse(sys.argv[1:] if argv is None else argv)
    if not 0 <= args.port <= 65535:
        print(f"llmsim-explore: error: --port {args.port} is not a port (0-65535)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    try:
        port = free_port(args.host, args.port)
    except OSError as err:
        fix = "choose another --port" if isinstance(err, PermissionError) or err.errno == errno.EADDRINUSE else \
            "check --host (an address of this machine, such as 127.0.0.1)"
        print(f"llmsim-explore: error: cannot serve on {args.host}:{args.port}: {err.strerror or err}; {fix}",
              file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    from sim.studies.explore.app import make_app

    app = make_app()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request is noise here
    where = f"[{args.host}]" if ":" in args.host else args.host  # an IPv6 address in a URL is bracketed
    print(f"llmsim-explore: serving on http://{where}:{port}/ (Ctrl-C to stop)", flush=True)
    app.run(host=args.host, port=port, debug=False)
    # The server returns only when stopped: Flask's server takes the Ctrl-C itself, so the command
    # says so here, in one line and with the status every command gives an interrupt.
    print("llmsim-explore: interrupted", file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
