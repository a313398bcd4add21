"""Seed the demo tenant at another size, for page screenshots and timings.

    DATABASE_URL=... DEBUG=1 .venv/bin/python bench/pages_seed.py --customers 20000 --weeks 10

The story (signals, playbooks, a campaign, pipeline history, engagement) is the one
`make demo` seeds: demo/seed.py. Run it on an empty database.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proactive.settings")
django.setup()

from demo.seed import demo_seed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--weeks", type=int, default=10, help="weeks of pipeline history")
    args = parser.parse_args()
    tenant = demo_seed(customers=args.customers, days=args.days, weeks=args.weeks)
    print("seeded", tenant.slug)


if __name__ == "__main__":
    main()
