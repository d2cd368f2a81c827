"""PyInstaller entry point of the `artifacta-box` binary.

`multiprocessing.freeze_support()` must run before anything parses argv: with `--workers N`
Sanic spawns worker processes by re-running this very executable with multiprocessing's own
arguments, which click would reject. freeze_support() recognises them, runs the worker and
exits; in the normal case it returns at once.
"""

import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from artifacta_box.cli import main

    main(prog_name="artifacta-box")
