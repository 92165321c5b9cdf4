"""multiprocessing's named semaphores (sem_open): Lock, Queue, Pool.map and
concurrent.futures.ProcessPoolExecutor, with the start methods named on the command line.

    python3 mp_semaphores.py fork spawn forkserver

Prints, per start method, "<method> Lock+Queue ok", "<method> Pool.map ok",
"<method> ProcessPoolExecutor ok", and with TMPSHM_DIR set the .SEMD files it sees there while a
Lock exists ("<method> files ..."); "done" at the end.
"""
import concurrent.futures as cf
import multiprocessing as mp
import os
import sys


def square(x):
    return x * x


def add(lock, queue, i):
    with lock:
        queue.put(i)


def run(method):
    ctx = mp.get_context(method)
    lock = ctx.Lock()
    d = os.environ.get("TMPSHM_DIR")
    if d:
        seen = sorted(f for f in os.listdir(d) if f.startswith(".SEM"))
        print(method, "files", " ".join(seen), flush=True)
    queue = ctx.Queue()
    procs = [ctx.Process(target=add, args=(lock, queue, i)) for i in range(4)]
    for p in procs:
        p.start()
    got = sorted(queue.get(timeout=60) for _ in procs)
    for p in procs:
        p.join()
    assert got == [0, 1, 2, 3], got
    assert all(p.exitcode == 0 for p in procs)
    print(method, "Lock+Queue ok", flush=True)
    want = [x * x for x in range(50)]
    with ctx.Pool(2) as pool:
        assert pool.map(square, range(50)) == want
    print(method, "Pool.map ok", flush=True)
    with cf.ProcessPoolExecutor(2, mp_context=ctx) as ex:
        assert list(ex.map(square, range(50))) == want
    print(method, "ProcessPoolExecutor ok", flush=True)


def main():
    for method in sys.argv[1:]:
        run(method)
    print("done", flush=True)


if __name__ == "__main__":
    main()
