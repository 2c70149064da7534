"""A second process that saves visits to a store (tests/dashboard/store/test_store_faults.py).

    python saver.py FOLDER URL PSEUDONYM N [--slow]

Prints "saved <id>" per visit; with --slow, each photo's image write sleeps 0.2 s and prints
"writing" first, so the test can kill the process in the middle of a save.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))  # the project root

from dashboard import history  # noqa: E402


def main() -> None:
    folder, url, pseudonym, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    spec = importlib.util.spec_from_file_location("dashboard_conftest", HERE.parent / "conftest.py")
    fakes = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = fakes  # its dataclasses look themselves up there
    spec.loader.exec_module(fakes)
    if "--slow" in sys.argv:
        real = history.clean_image

        def slow(image, *args, **kwargs):
            print("writing", flush=True)
            time.sleep(0.2)
            return real(image, *args, **kwargs)

        history.clean_image = slow
    store = history.HistoryStore(folder, url=url)
    for k in range(n):
        a = fakes.make_assessment(pseudonym=pseudonym, visit_date=dt.date(2026, 1, 1) + dt.timedelta(days=k),
                                  n_photos=3, seed=k)  # fmt: skip
        print(f"saved {store.save(a, assessor=pseudonym)}", flush=True)


if __name__ == "__main__":
    main()
