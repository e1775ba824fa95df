"""``avloc serve``: a local web demo of one network (Gradio; ``pip install 'avloc[demo]'``).

avloc serve --model RUN|FILE|PRESET | --run DIR | --checkpoint FILE
            [--port 7860] [--host 127.0.0.1] [--share]
"""

from __future__ import annotations

from typing import Annotated

import typer

from avloc.jobs.serve import MAX_UPLOAD_MB
from avloc_cli.app import (
    CheckpointOption,
    ModelOption,
    RunOption,
    UthOption,
    app,
    network_and_uth,
    pick_model,
    user_errors,
)

EXAMPLE = "Example: avloc serve --run runs/quickstart   (then open http://127.0.0.1:7860)"


@app.command(epilog=EXAMPLE)
def serve(
    model: ModelOption = None,
    run: RunOption = None,
    checkpoint: CheckpointOption = None,
    uth: UthOption = None,
    host: Annotated[
        str,
        typer.Option(
            "--host", help="Address to listen on; 0.0.0.0 shares the demo with your network"
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port")] = 7860,
    share: Annotated[
        bool, typer.Option("--share", help="Also open a temporary public Gradio link")
    ] = False,
    max_seconds: Annotated[
        float,
        typer.Option("--max-video-seconds", min=1.0, help="Longest video part processed, s"),
    ] = 60.0,
    max_upload_mb: Annotated[
        float,
        typer.Option("--max-upload-mb", min=0.1, help="Largest upload taken, MB"),
    ] = MAX_UPLOAD_MB,
) -> None:
    """A web page to try the network: upload an image + audio or a video, see the heatmap."""
    with user_errors():
        from avloc.errors import AvlocError
        from avloc.jobs.serve import build_app
        from avloc.jobs.serve import serve as run_page

        check_host(host)  # before the model loads and anything is printed
        run, checkpoint = pick_model(model, run, checkpoint)
        net, threshold = network_and_uth(run, checkpoint, uth)
        name = (run or checkpoint).name if (run or checkpoint) else "avloc"
        page = build_app(net, threshold, title=f"avloc: {name}", max_seconds=max_seconds)
        where = "this machine only" if host in ("127.0.0.1", "localhost") else f"host {host}"
        typer.echo(
            f"avloc serve: http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port} "
            f"({where}; Uth {threshold:.4f}). To share it: --host 0.0.0.0 for your network, or "
            "--share for a temporary public link. Ctrl+C stops it."
        )
        try:
            run_page(
                page,
                max_upload_mb=max_upload_mb,
                server_name=host,
                server_port=port,
                share=share,
                inbrowser=False,
                quiet=True,
                # avloc's own failures are the page's verdicts; anything else (a malformed API
                # payload's validation errors, internals) stays on the server
                show_error=False,
            )
        except OSError as exc:
            raise AvlocError(f"{host}:{port}: cannot listen there ({exc})") from None


def check_host(host: str) -> None:
    """AvlocError naming ``--host`` unless it is an address (or a host name) of this machine:
    resolved, then bound on a free port and let go."""
    import socket

    from avloc.errors import AvlocError

    try:
        family, kind, _, _, address = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise AvlocError(f"--host {host}: not an address or a known host name ({reason})") from None
    try:
        with socket.socket(family, kind) as probe:
            probe.bind((address[0], 0))
    except OSError as exc:
        raise AvlocError(
            f"--host {host}: not an address of this machine ({exc.strerror or exc})"
        ) from None
