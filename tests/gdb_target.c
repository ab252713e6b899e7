/* The program that tests/gdb_coros.sh runs under gdb: coroutines parked in a sleep, a recv and a
 * channel, and a running one that stops the process with SIGTRAP for gdb to look at them
 * (tools/corio-gdb.py). It includes the engine's headers so that its own debug information
 * describes the structs the script reads, whatever the library's build type. */
#include "future.h"
#include "loop.h"

#include <corio.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

/* Referenced so that the compiler emits the types the gdb script reads. */
struct corio_loop *gdb_target_loop_type;
struct corio__future *gdb_target_future_type;
enum corio__opcode gdb_target_opcode_type;

static int sv[2];
static struct corio_chan *ch;

__attribute__((noinline)) static int park_in_sleep(void)
{
    return corio_sleep(corio_now() + CORIO_SEC(60));
}

__attribute__((noinline)) static int wait_for_data(void)
{
    char buf[8];
    return (int)corio_recv(sv[0], buf, sizeof(buf), 0, CORIO_FOREVER);
}

static int sleeper(void *arg)
{
    (void)arg;
    corio_set_name("sleeper");
    return park_in_sleep();
}

static int reader(void *arg)
{
    (void)arg;
    corio_set_name("reader");
    return wait_for_data();
}

static int taker(void *arg)
{
    (void)arg;
    int v;
    corio_set_name("taker");
    return corio_chan_recv(ch, &v, CORIO_FOREVER);
}

static int boss(void *arg)
{
    (void)arg;
    corio_set_name("boss");
    corio_spawn(NULL, NULL, sleeper, NULL);
    corio_spawn(NULL, NULL, reader, NULL);
    corio_spawn(NULL, NULL, taker, NULL);
    corio_sleep(corio_now() + CORIO_MS(20)); /* they all park */
    raise(SIGTRAP);                          /* gdb looks here; without gdb, the process dies */
    corio_loop_stop(corio_loop_current());
    return 0;
}

int main(void)
{
    struct corio_loop *loop;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || corio_chan_new(&ch, sizeof(int), 0) != 0 ||
        corio_loop_new(&loop, NULL) != 0)
        return 77;
    gdb_target_loop_type = loop;
    corio_spawn(NULL, loop, boss, NULL);
    corio_loop_run(loop);
    corio_loop_free(loop);
    return 0;
}
