"""ansible-rulebook event source for relflow's benchmarks: `noops` events
{"skip": i} that match no rule, then `limit` events {"n": i, "out": out}, all
at once, then stays open (an ended source would stop the rulebook before its
actions finish). With `started` set, writes the time (ns since the epoch) it
began emitting to that file first."""
import asyncio
import time


async def main(queue, args):
    if args.get("started"):
        with open(args["started"], "w") as f:
            f.write(str(time.time_ns()))
    for i in range(int(args.get("noops", 0))):
        await queue.put({"skip": i})
    for n in range(int(args["limit"])):
        await queue.put({"n": n, "out": args["out"]})
    await asyncio.Event().wait()
