"""qfile_py.py - write and read facteur queue files from Python tests.

Follows the format documented in lib/qfile.h: records of a type letter, a
4-byte big-endian length and the data; V first, the envelope (T, S, R...,
N, I, F, A), content records M, and E (content length, recipient count)
last.  write_queue_file() writes a temp file in QUEUE/incoming, names it by
its queue ID (qid.h: arrival seconds and microseconds in base 62, then the
inode) and renames it into place, as qfile_commit does, so qmgr sees it
whole or not at all.  read_queue_file() parses one back (for checking done
marks and bounce content).
"""

import os
import struct
import time

VERSION = b"facteur-queue 1"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

NOTIFY_NEVER = 0x01
NOTIFY_SUCCESS = 0x02
NOTIFY_FAILURE = 0x04
NOTIFY_DELAY = 0x08

_counter = [0]


def b62(n, width=0):
    out = ""
    while n > 0:
        out = ALPHABET[n % 62] + out
        n //= 62
    out = out or "0"
    return out.rjust(width, "0")


def make_qid(sec, usec, ino):
    return b62(sec, 6) + b62(usec, 4) + b62(ino)


def record(rtype, data):
    return rtype.encode() + struct.pack(">I", len(data)) + data


def rcpt_record(addr, orcpt="", notify=0, status="T"):
    a = addr.encode()
    return record("R", status.encode() + bytes([notify]) + struct.pack(">H", len(a)) + a
                  + orcpt.encode())


def write_queue_file(queue_dir, sender, rcpts, body, arrival=None, ret=None, envid=None,
                     attrs=None, queue="incoming", owner=None):
    """Queue a message.  rcpts: list of addresses or (addr, orcpt, notify)
    tuples; body: str or bytes (LF line ends); arrival: epoch seconds
    (float) for the T record, default now.  Returns the queue ID."""
    if isinstance(body, str):
        body = body.encode()
    now = time.time()
    arrival = now if arrival is None else arrival
    asec = int(arrival)
    ausec = int(round((arrival - asec) * 1e6)) % 1000000
    out = record("V", VERSION)
    out += record("T", struct.pack(">qI", asec, ausec))
    out += record("S", sender.encode())
    n = 0
    for r in rcpts:
        if isinstance(r, str):
            r = (r, "", 0)
        out += rcpt_record(*r)
        n += 1
    if ret:
        out += record("N", ret.encode())
    if envid:
        out += record("I", envid.encode())
    for name, value in (attrs or {}).items():
        out += record("A", name.encode() + b"\0" + value.encode())
    for i in range(0, len(body), 65536):
        out += record("M", body[i:i + 65536])
    out += record("E", struct.pack(">QI", len(body), n))
    _counter[0] += 1
    d = os.path.join(queue_dir, queue)
    tmp = os.path.join(d, ".tmp.%d.%d.%d" % (os.getpid(), _counter[0], int(now * 1e6)))
    with open(tmp, "wb") as f:
        f.write(out)
        f.flush()
        os.fsync(f.fileno())
        ino = os.fstat(f.fileno()).st_ino
        if owner is not None:
            os.fchown(f.fileno(), owner[0], owner[1])
    qid = make_qid(int(now), int((now - int(now)) * 1e6), ino)
    os.rename(tmp, os.path.join(d, qid))
    return qid


def read_queue_file(path):
    """Parse a queue file: dict with sender, rcpts [(addr, status, notify,
    orcpt)], attrs, arrival, content (bytes), complete (E seen)."""
    with open(path, "rb") as f:
        data = f.read()
    out = {"rcpts": [], "attrs": {}, "content": b"", "complete": False, "sender": None}
    i = 0
    while i + 5 <= len(data):
        t = chr(data[i])
        (n,) = struct.unpack(">I", data[i + 1:i + 5])
        d = data[i + 5:i + 5 + n]
        i += 5 + n
        if t == "S":
            out["sender"] = d.decode()
        elif t == "T":
            out["arrival"] = struct.unpack(">qI", d)
        elif t == "R":
            (alen,) = struct.unpack(">H", d[2:4])
            out["rcpts"].append((d[4:4 + alen].decode(), chr(d[0]), d[1], d[4 + alen:].decode()))
        elif t == "A":
            name, _, value = d.partition(b"\0")
            out["attrs"][name.decode()] = value.decode()
        elif t == "M":
            out["content"] += d
        elif t == "E":
            out["complete"] = True
    return out


def list_queue(queue_dir, queue):
    """Valid-looking queue IDs in one queue (no temp files)."""
    try:
        names = os.listdir(os.path.join(queue_dir, queue))
    except FileNotFoundError:
        return []
    return sorted(n for n in names if not n.startswith(".") and "." not in n)
