"""Run localstripe with its state in a file of our choosing: `python -m app.localstripe_main --port P --state FILE`.

localstripe hard-codes /tmp/localstripe.pickle, shared by everyone on the machine; this wrapper points its two
store methods at FILE before starting the server.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path


def _patch_store(state: Path) -> None:
    from localstripe import resources

    def try_load_from_disk(self) -> None:
        try:
            with state.open("rb") as f:
                old = pickle.load(f)
        except (FileNotFoundError, EOFError):
            return
        self.clear()
        self.update(old)

    def dump_to_disk(self) -> None:
        with state.open("wb") as f:
            pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)

    resources.Store.try_load_from_disk = try_load_from_disk
    resources.Store.dump_to_disk = dump_to_disk


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m app.localstripe_main")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--from-scratch", action="store_true")
    args = parser.parse_args()
    args.state.parent.mkdir(parents=True, exist_ok=True)
    _patch_store(args.state)
    from localstripe import server

    sys.argv = ["localstripe", "--port", str(args.port)] + (["--from-scratch"] if args.from_scratch else [])
    server.start()


if __name__ == "__main__":
    main()
