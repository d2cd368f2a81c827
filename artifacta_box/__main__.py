"""`python -m artifacta_box` behaves exactly like the `artifacta-box` console script."""

import multiprocessing

if __name__ == "__main__":
    # Must run before click parses argv: in a frozen binary a worker process re-enters here.
    multiprocessing.freeze_support()
    from artifacta_box.cli import main

    main()
