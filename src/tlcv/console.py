"""What reaches the console: tlcv's own lines, once. Libraries (Lightning above all) log at
INFO when they are imported: device banners, tips that advertise services, lines repeated by
their own handler and the root's. tlcv keeps them at WARNING unless ``--verbose`` (or
``TLCV_VERBOSE=1``, which worker processes inherit) asks for them. Torch-free."""

from __future__ import annotations

import logging
import os

LIBRARIES = ("lightning", "pytorch_lightning", "lightning_fabric", "lightning_utilities")


def verbose() -> bool:
    return os.environ.get("TLCV_VERBOSE", "") not in ("", "0")


def set_verbose() -> None:
    """``--verbose``: library lines come back, here and in worker processes."""
    os.environ["TLCV_VERBOSE"] = "1"
    quiet_libraries()


def quiet_libraries() -> None:
    """Apply the verbosity to every library logger that exists now (call it again after a
    library is imported: Lightning sets its loggers to INFO on import). Verbose: each line
    once, through the root handler only."""
    level = logging.INFO if verbose() else logging.WARNING
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in LIBRARIES]
    for name in [*LIBRARIES, *names]:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if logging.root.handlers:  # the root prints: a library's own handler would repeat it
            for handler in list(logger.handlers):
                if type(handler) is logging.StreamHandler:
                    logger.removeHandler(handler)
            logger.propagate = True
