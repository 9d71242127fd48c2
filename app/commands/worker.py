"""`fleetdesk worker`: the outbox worker (events, notifications, scheduled jobs); `fleetdesk dead-letters`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from app.commands.common import CommandError, operator, require_migrated, unit_of_work, up_target
from db.session import make_engine
from services import worker
from services.errors import NotFound


def _run(args: argparse.Namespace) -> None:
    target = up_target()
    require_migrated(target)
    logging.getLogger("services").setLevel(logging.INFO if args.verbose else logging.WARNING)
    engine = make_engine(target.url, pool_size=3, max_overflow=2)
    try:
        with worker.Worker(engine) as running:
            if args.once:
                jobs = running.run_jobs()
                result = running.drain()
                print(f"handled {result.handled:,} events ({result.failed:,} to retry, {result.parked:,} parked); "
                      f"sent {result.messages.sent:,} messages ({result.messages.retrying:,} to retry, "
                      f"{result.messages.failed:,} failed); jobs: "
                      + ", ".join(f"{name} {count:,}" for name, count in jobs.items()))
                return
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: running.stop.set())
            channels = running.channels
            print(f"fleetdesk worker {running.lease}: listening on {worker.CHANNEL}; e-mail via "
                  f"{channels.email.name if channels.email else 'off'}, SMS via "
                  f"{channels.sms.name if channels.sms else 'off'}; Kafka relay "
                  f"{'on' if running.relay is not None else 'off'}", flush=True)
            running.run_forever()
            print("fleetdesk worker: stopped", file=sys.stderr)
    finally:
        engine.dispose()


def _list(args: argparse.Namespace) -> None:
    with unit_of_work() as session:
        frame = worker.dead_letters(session, limit=args.limit)
    if frame.empty:
        print("no dead letters")
        return
    for row in frame.itertuples():
        print(f"{row.id}\t{row.event_type}\t{row.aggregate_type} {row.aggregate_id}\t{row.attempts} attempts\t"
              f"{row.last_error}")


def _replay(args: argparse.Namespace) -> None:
    try:
        with unit_of_work() as session:
            event = worker.replay_dead_letter(session, operator(), args.event_id)
            print(f"event {event.id} ({event.event_type}) is queued again")
    except NotFound as error:
        raise CommandError(str(error)) from None


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("worker", help="deliver outbox events and notifications; run the scheduled jobs")
    run.add_argument("--once", action="store_true", help="do what is due now, then exit")
    run.add_argument("--verbose", action="store_true", help="log every retry and parked event")
    run.set_defaults(func=_run)

    letters = sub.add_parser("dead-letters", help="events the worker parked after repeated failures")
    actions = letters.add_subparsers(dest="action", required=True, parser_class=type(letters))
    listing = actions.add_parser("list", help="the parked events with their last error")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(func=_list)
    replay = actions.add_parser("replay", help="queue a parked event again (after fixing its cause)")
    replay.add_argument("event_id", type=int)
    replay.set_defaults(func=_replay)
