"""A stand-in runner for batch tests: quick, and told when to fail or dawdle.

    python -m fake_runner --output_dir=D [--sleep=S] [--fail] [--label=TEXT]

Writes D/started, sleeps, then appends to D/finished.txt and writes D/done.json.
A run that is already done is left alone, as the real runners do.
"""

import argparse
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--output_dir", required=True)
parser.add_argument("--sleep", type=float, default=0.0)
parser.add_argument("--fail", action="store_true")
parser.add_argument("--label", default="")
args = parser.parse_args()
os.makedirs(args.output_dir, exist_ok=True)
done = os.path.join(args.output_dir, "done.json")
if os.path.exists(done):
    print("already complete")
    sys.exit(0)
open(os.path.join(args.output_dir, "started"), "w").close()
print(f"working on {args.output_dir}", flush=True)
time.sleep(args.sleep)
if args.fail:
    print("failing on purpose", file=sys.stderr)
    sys.exit(3)
with open(os.path.join(args.output_dir, "finished.txt"), "a") as f:
    f.write(args.label + "\n")
with open(done, "w") as f:
    f.write("{}")
