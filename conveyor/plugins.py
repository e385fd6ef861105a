"""Pulumi plugin executables for Python programs, written in Python.

Pulumi's CLI finds a language host named `pulumi-language-python` and, for
dynamic providers, `pulumi-resource-pulumi-python` on PATH. Neither ships in the
PyPI wheel, and the Go module of the official host is not served by the module
mirror this project can reach, so we provide both as console scripts of this
package (see `[project.scripts]`). The language host reuses the SDK's own
in-process runtime server (the one the Automation API uses for inline programs)
and points it at the project's `main` directory instead of an inline function.
"""

from __future__ import annotations

import io
import os
import runpy
import sys
from concurrent import futures
from pathlib import Path
from threading import Event

def _unbuffered_stdout() -> None:
    """Plugins announce their port on stdout; the CLI waits for that line."""
    sys.stdout = io.TextIOWrapper(open(1, "wb", buffering=0), write_through=True)


def dynamic_provider() -> None:
    """`pulumi-resource-pulumi-python`: the SDK's dynamic provider server."""
    _unbuffered_stdout()
    runpy.run_module("pulumi.dynamic", run_name="__main__")


def _entry_file(program_dir: Path, entry: str) -> Path:
    target = (program_dir / entry).resolve() if entry not in ("", ".") else program_dir
    if target.is_dir():
        target = target / "__main__.py"
    return target


def language_host(argv: list[str] | None = None) -> None:
    """`pulumi-language-python <engine-address>`: run the project's program in-process."""
    import grpc
    from pulumi.automation._server import LanguageServer
    from pulumi.runtime.proto import language_pb2, language_pb2_grpc

    argv = list(sys.argv[1:] if argv is None else argv)
    positional = [a for a in argv if not a.startswith("-")]
    engine_address = positional[-1] if positional else ""

    class ProjectLanguageServer(LanguageServer):
        """The SDK's in-process server, fed the project's entry point per Run."""

        def __init__(self) -> None:
            super().__init__(program=lambda: None)

        def Handshake(self, request, context):
            return language_pb2.LanguageHandshakeResponse()

        def GetProgramDependencies(self, request, context):
            return language_pb2.GetProgramDependenciesResponse()

        def Run(self, request, context):
            program_dir = Path(request.info.program_directory or request.pwd or os.getcwd())
            entry = _entry_file(program_dir, request.info.entry_point or request.program)
            if request.pwd:
                os.chdir(request.pwd)
            root = request.info.root_directory
            for path in (str(program_dir), root):
                if path and path not in sys.path:
                    sys.path.insert(0, path)
            self.program = lambda: runpy.run_path(str(entry), run_name="__main__")
            forwarded = language_pb2.RunRequest()
            forwarded.CopyFrom(request)
            del forwarded.args[:]  # the SDK server reads the engine address from args[0]
            forwarded.args.append(engine_address)
            return super().Run(forwarded, context)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(ProjectLanguageServer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    _unbuffered_stdout()
    print(port)
    try:
        Event().wait()
    except KeyboardInterrupt:
        server.stop(0)
