# corio's gdb commands: the coroutines of every loop of a process, or of its core file, and the
# backtrace of a suspended one.
#
#   (gdb) source tools/corio-gdb.py
#   (gdb) corio list            every loop and its coroutines: number, name, state (and what a
#                               waiting one waits for), spawn site, body
#   (gdb) corio bt [LOOP.]N     the backtrace of coroutine N (of loop LOOP, default 1) as listed
#
# The script reads the engine's structs, so it needs their debug information: a build with -g
# (Debug, RelWithDebInfo), or a program that includes the engine's headers.
#
# A suspended coroutine's registers are on its own stack: corio__ctx_switch (engine/ctx_*.S)
# pushed the callee-saved ones there and left the stack pointer in its task's ctx.sp. "corio bt"
# switches them in with an unwinder that makes them the caller's registers of the thread's
# innermost frame, walks the frames from there, and switches them out again. It never writes a
# register, so it works on a core file as on a live process.
import gdb
from gdb.unwinder import Unwinder, register_unwinder

STATES = {1: "ready", 2: "running", 3: "waiting", 4: "returned", 5: "ended (zombie)"}

# What the abort function of a parked coroutine says it waits for (the dump's words, dump.c).
WAITS = {
    "abort_one": "an op",
    "abort_set": "any or all of its ops",
    "join_abort": "a coroutine to end (join)",
    "waitq_abort": "a mutex, semaphore, wait group, event, group or buffer ring",
    "chan_abort": "a channel",
    "sel_abort": "a channel select",
    "send_abort": "a generator to yield",
    "yield_abort": "its generator's driver",
    "acc_abort": "a connection (acceptor)",
    "rx_abort": "data (receiver)",
    "abort_wait": "a blocking call",
}


def offset_of(type_name, field):
    for f in gdb.lookup_type(type_name).fields():
        if f.name == field:
            return f.bitpos // 8
    raise gdb.GdbError("corio: %s has no field %s" % (type_name, field))


def list_items(head, type_name, field):
    """The structs of type @type_name linked through @field in the list whose head is @head."""
    off = offset_of(type_name, field)
    ptr_t = gdb.lookup_type(type_name).pointer()
    head_addr = int(head.address)
    node = head["next"]
    n = 0
    while int(node) != head_addr and int(node) != 0 and n < 1000000:
        yield gdb.Value(int(node) - off).cast(ptr_t).dereference()
        node = node["next"]
        n += 1


def loops():
    try:
        # Cast: a library built without -g has the symbol but not its type.
        head = gdb.parse_and_eval("*(struct corio__list *)&corio__loops")
    except gdb.error as e:
        raise gdb.GdbError("corio: cannot read corio__loops (%s): not a corio program, or no "
                           "debug information for corio's structs" % e)
    return list(list_items(head, "struct corio_loop", "registry"))


def coros(loop):
    return list(list_items(loop["coros"]["all"], "struct corio_coro", "all"))


def symbol(addr):
    addr = int(addr)
    if addr == 0:
        return None
    b = gdb.block_for_pc(addr)
    if b is not None and b.function is not None:
        return b.function.name
    s = gdb.execute("info symbol %#x" % addr, to_string=True).strip()
    return s.split(" ")[0] if s and not s.startswith("No symbol") else "%#x" % addr


def op_text(op):
    """An op as the dump says it: "recv on fd 5", or "timeout" for the ops without an fd."""
    try:
        code = op["opcode"].cast(gdb.lookup_type("enum corio__opcode"))
        name = str(code).replace("CORIO__OP_", "").lower()
    except gdb.error:
        name = "opcode %d" % int(op["opcode"])  # no debug information for the enum
    if name in ("nop", "timeout", "socket"):
        return name
    return "%s on fd %d" % (name, int(op["fd"]))


def describe(co):
    t = co["t"]
    state = int(t["state"])
    text = STATES.get(state, "state %d" % state)
    if state == 3:
        abort = symbol(t["abort"])
        if abort is None:
            text += " for its ops to finish"
        else:
            text += " for " + WAITS.get(abort, abort)
            if abort == "abort_one":
                try:
                    fut_t = gdb.lookup_type("struct corio__future").pointer()
                except gdb.error:
                    fut_t = None  # no debug information for futures: the op goes unnamed
                if fut_t is not None:
                    text += " (%s)" % op_text(t["wait_obj"].cast(fut_t)["op"])
    if bool(t["cancelled"]):
        text += ", cancelled"
    return text


def coro_line(i, co):
    name = co["name"].string()
    line = "  coroutine %d" % (int(co["slot"]) + 1)
    if name:
        line += ' "%s"' % name
    line += ": " + describe(co)
    if int(co["spawn_file"]) != 0:
        line += "; spawned at %s:%d" % (co["spawn_file"].string(), int(co["spawn_line"]))
    line += "; body %s" % symbol(co["fn"])
    return line


class SwitchedIn(Unwinder):
    """While regs is set: the caller of the innermost frame has these registers."""

    def __init__(self):
        super().__init__("corio-coroutine")
        self.regs = None
        self.inner_sp = None

    def __call__(self, pending):
        if self.regs is None or pending.level() != 0:
            return None
        pc_name = "pc" if "aarch64" in pending.architecture().name() else "rip"

        class FrameId:
            def __init__(self, sp, pc):
                self.sp = sp
                self.pc = pc

        # The innermost frame's id takes the coroutine's saved stack pointer, not the thread's:
        # gdb stops a backtrace whose next frame lies below the one before (it takes that for a
        # corrupt stack), and a coroutine's stack may lie anywhere below the thread's.
        info = pending.create_unwind_info(FrameId(self.inner_sp, pending.read_register(pc_name)))
        for reg, val in self.regs.items():
            info.add_saved_register(reg, val)
        return info


UNWINDER = SwitchedIn()
register_unwinder(None, UNWINDER, replace=True)


def saved_regs(co):
    """The registers corio__ctx_switch saved on @co's stack (ctx.h, ctx_*.S)."""
    u64 = gdb.lookup_type("unsigned long")
    sp = int(co["t"]["ctx"]["sp"])
    words = lambda n: [int(gdb.Value(sp + 8 * i).cast(u64.pointer()).dereference()) for i in range(n)]
    arch = gdb.selected_frame().architecture().name()
    mk = lambda v: gdb.Value(v).cast(u64)
    if "aarch64" in arch:
        w = words(12)  # x19..x28, x29 (fp), x30 (lr); then d8..d15 and fpcr: 176 bytes
        regs = {"x%d" % (19 + i): mk(w[i]) for i in range(10)}
        regs.update({"x29": mk(w[10]), "x30": mk(w[11]), "pc": mk(w[11]), "sp": mk(sp + 176)})
        return regs
    w = words(8)  # [mxcsr, x87 cw], r15, r14, r13, r12, rbx, rbp, return address
    return {"r15": mk(w[1]), "r14": mk(w[2]), "r13": mk(w[3]), "r12": mk(w[4]),
            "rbx": mk(w[5]), "rbp": mk(w[6]), "rip": mk(w[7]), "rsp": mk(sp + 64)}


def frame_line(i, f):
    sal = f.find_sal()
    where = ""
    if sal.symtab is not None:
        where = " at %s:%d" % (sal.symtab.filename, sal.line)
    return "#%-2d %#018x in %s ()%s" % (i, f.pc(), f.name() or "??", where)


class CorioCommand(gdb.Command):
    """corio's commands: corio list, corio bt [LOOP.]N."""

    def __init__(self):
        super().__init__("corio", gdb.COMMAND_USER, prefix=True)


class CorioList(gdb.Command):
    """List every loop of the process and its coroutines."""

    def __init__(self):
        super().__init__("corio list", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        for i, loop in enumerate(loops(), 1):
            cs = coros(loop)
            backend = "io_uring" if int(loop["io"]["ring"]) else "epoll"
            print("loop %d (%#x): %s, %d coroutines, %d completions in flight" %
                  (i, int(loop.address), backend, len(cs), int(loop["io"]["inflight"])))
            for co in cs:
                print(coro_line(i, co))


class CorioBt(gdb.Command):
    """Show the backtrace of coroutine [LOOP.]N, as corio list numbers them."""

    def __init__(self):
        super().__init__("corio bt", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        parts = arg.strip().split(".")
        try:
            li, ci = (1, int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
        except ValueError:
            raise gdb.GdbError("usage: corio bt [LOOP.]N")
        ls = loops()
        if not 1 <= li <= len(ls):
            raise gdb.GdbError("corio: no loop %d (%d loops)" % (li, len(ls)))
        match = [c for c in coros(ls[li - 1]) if int(c["slot"]) + 1 == ci]
        if not match:
            raise gdb.GdbError("corio: loop %d has no coroutine %d" % (li, ci))
        co = match[0]
        state = int(co["t"]["state"])
        print(coro_line(li, co))
        if state == 2:
            print("  it is running: its frames are its thread's own (bt on that thread)")
            return
        if state in (4, 5):
            print("  it has ended: it has no frames left to show")
            return
        UNWINDER.regs = saved_regs(co)
        UNWINDER.inner_sp = gdb.Value(int(co["t"]["ctx"]["sp"])).cast(gdb.lookup_type("unsigned long"))
        gdb.invalidate_cached_frames()
        try:
            f, i = gdb.newest_frame().older(), 0
            while f is not None and i < 64:
                print(frame_line(i, f))
                g = f.older()
                if g is None and f.unwind_stop_reason() != gdb.FRAME_UNWIND_OUTERMOST:
                    print("(%s)" % gdb.frame_stop_reason_string(f.unwind_stop_reason()))
                f, i = g, i + 1
        finally:
            UNWINDER.regs = None
            gdb.invalidate_cached_frames()


CorioCommand()
CorioList()
CorioBt()
