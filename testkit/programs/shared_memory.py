"""multiprocessing.shared_memory between two processes.

    python3 shared_memory.py TAG

For three names (Python's own random "/psm_..." name, "tmpshm-py-TAG", which Python opens as
"/tmpshm-py-TAG", and "/tmpshm-py-TAG-slash", opened as "//tmpshm-py-TAG-slash"), the parent
creates an 8 MiB block, writes every page, and starts a child (spawn start method) that
attaches by name, checks what the parent wrote and writes an answer the parent then reads;
the parent unlinks the block. With TMPSHM_DIR set it prints the .SHMD files it sees there.
Prints "ok <name> -> <Python's name for it>" per name and "done".
"""
import multiprocessing as mp
import os
import sys
from multiprocessing import shared_memory

SIZE = 8 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")
HELLO = b"parent wrote it!"
ANSWER = b"child wrote this"


def child(name):
    m = shared_memory.SharedMemory(name=name)
    try:
        ok = m.size >= SIZE and bytes(m.buf[:16]) == HELLO
        ok = ok and all(m.buf[i] == 0x5A for i in range(PAGE, SIZE, PAGE))
        m.buf[16:32] = ANSWER
    finally:
        m.close()
    sys.exit(0 if ok else 3)


def main():
    tag = sys.argv[1]
    ctx = mp.get_context("spawn")
    d = os.environ.get("TMPSHM_DIR")
    for name in (None, f"tmpshm-py-{tag}", f"/tmpshm-py-{tag}-slash"):
        m = shared_memory.SharedMemory(name=name, create=True, size=SIZE)
        try:
            # Every page, as a program filling a buffer does.
            m.buf[:SIZE] = b"\x5a" * SIZE
            m.buf[:16] = HELLO
            if d:
                seen = sorted(f for f in os.listdir(d) if f.startswith(".SHMD"))
                print("files", " ".join(seen), flush=True)
            p = ctx.Process(target=child, args=(m.name,))
            p.start()
            p.join()
            if p.exitcode != 0:
                sys.exit(f"the child attached to {m.name!r} exited with {p.exitcode}")
            if bytes(m.buf[16:32]) != ANSWER:
                sys.exit(f"no answer from the child in {m.name!r}")
            print("ok", name, "->", m.name, flush=True)
        finally:
            m.close()
            m.unlink()
    print("done", flush=True)


if __name__ == "__main__":
    main()
