"""Per-call counts of the scheduler's work, from callgrind dumps (bench/callgrind.sh): how often
a call polls a task, wakes one, spawns one, parks or unparks a worker thread, and enters the
kernel through the syscalls a proxy makes. Exact, like the instruction counts: callgrind counts
every call of every function.

    callcounts.py DUMP CALLS [DUMP CALLS]…   (prints one column per dump)
"""

import re
import sys

# What is counted: a label and the functions (a regular expression over callgrind's function
# names) whose calls make it.
COUNTED = [
    ("task polls", r"^tokio::runtime::task::raw::poll(<|'|$)"),
    ("task wake-ups (waker.wake)", r"^tokio::runtime::task::waker::wake_by_(val|ref)(<|'|$)"),
    ("tasks spawned", r"^tokio::runtime::scheduler::multi_thread::handle::Handle::bind_new_task(<|'|$)"),
    ("work handed to the blocking pool", r"^tokio::runtime::blocking::pool::Spawner::spawn_task(<|'|$)"),
    ("worker parks (going idle)", r"^tokio::runtime::scheduler::multi_thread::worker::Context::park_internal(<|'|$)"),
    ("worker unparks (a sleeping worker woken)", r"^tokio::runtime::scheduler::multi_thread::park::Unparker::unpark(<|'|$)"),
    ("epoll_wait", r"^(__GI_)?epoll_wait$"),
    ("futex and other raw syscalls", r"^syscall$"),
    ("writev / write / send", r"^(__GI_)?(__)?(libc_)?(writev|write|send|sendto|sendmsg)$"),
    ("readv / read / recv", r"^(__GI_)?(__)?(libc_)?(readv|read|recv|recvfrom|recvmsg)$"),
    # glibc's malloc for a binary on the system allocator, mimalloc's entry point for ai-service.
    ("allocations", r"^(malloc|mi_malloc_aligned)$"),
    ("reallocations", r"^(realloc|mi_realloc_aligned)$"),
]


def counts(path):
    names = {}  # compressed id -> name
    totals = {}
    cfn = None
    name_re = re.compile(r"^c?fn=\((\d+)\)(?: (.*))?$")
    for line in open(path, errors="replace"):
        if line.startswith("cfn="):
            m = name_re.match(line.rstrip("\n"))
            if m:
                if m.group(2) is not None:
                    names[m.group(1)] = m.group(2)
                cfn = names.get(m.group(1))
        elif line.startswith("fn="):
            m = name_re.match(line.rstrip("\n"))
            if m and m.group(2) is not None:
                names[m.group(1)] = m.group(2)
        elif line.startswith("calls=") and cfn is not None:
            n = int(line[6:].split()[0])
            totals[cfn] = totals.get(cfn, 0) + n
    return totals


def main(args):
    if len(args) < 2 or len(args) % 2:
        sys.exit(__doc__)
    columns = []
    for path, calls in zip(args[::2], args[1::2]):
        totals = counts(path)
        row = []
        for _, pattern in COUNTED:
            rx = re.compile(pattern)
            row.append(sum(n for name, n in totals.items() if rx.search(name)) / int(calls))
        columns.append(row)
    print("| per call | " + " | ".join(f"dump {i + 1}" for i in range(len(columns))) + " |")
    print("|---|" + "---|" * len(columns))
    for i, (label, _) in enumerate(COUNTED):
        print(f"| {label} | " + " | ".join(f"{col[i]:.2f}" for col in columns) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
