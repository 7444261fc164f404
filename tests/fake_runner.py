"""A stand-in runner for batch tests: quick, and told when to fail or dawdle.

    python -m fake_runner --output_dir=D [--sleep=S] [--hold=PATH] [--fail] [--label=TEXT]

Takes D's run lock as the real runners do (exit 2 if another process holds it),
writes its pid to D/started, sleeps S seconds and then waits while PATH exists,
then appends to D/finished.txt and writes D/done.json. A run that is already
done is left alone, as the real runners do. SIGTERM ends it with status 130, as
it ends the real runners.
"""

import argparse
import os
import signal
import sys
import time

from lottery_ticket.foundations import runs

def main() -> None:
    """Runs the stand-in: see the module docstring."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--hold", default="")
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(130))
    os.makedirs(args.output_dir, exist_ok=True)
    done = os.path.join(args.output_dir, "done.json")
    if os.path.exists(done):
        print("already complete")
        sys.exit(0)
    try:
        with runs.lock(args.output_dir):
            with open(os.path.join(args.output_dir, "started"), "w") as f:
                f.write(str(os.getpid()))
            print(f"working on {args.output_dir}", flush=True)
            time.sleep(args.sleep)
            while args.hold and os.path.exists(args.hold):
                time.sleep(0.05)
            if args.fail:
                print("failing on purpose", file=sys.stderr)
                sys.exit(3)
            with open(os.path.join(args.output_dir, "finished.txt"), "a") as f:
                f.write(args.label + "\n")
            with open(done, "w") as f:
                f.write("{}")
    except runs.LockedError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
