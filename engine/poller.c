/* Readiness: waiting until an fd is ready for <poll.h> events, for a library that makes its own
 * non-blocking calls and only needs to be told when to try again (a TLS library's "want read",
 * a resolver's socket). corio_poll is one wait, an op like any other. */
#include "future.h"

#include <errno.h>
#include <poll.h>

/* The events a readiness wait may ask for; errors and hang-ups are reported regardless. */
#define POLL_ASKABLE (POLLIN | POLLOUT | POLLPRI | POLLRDHUP)

/* ---- one wait: IORING_OP_POLL_ADD ------------------------------------------------------------ */

static struct corio__op poll_op(int fd, unsigned events)
{
    return (struct corio__op){
        .opcode = CORIO__OP_POLL, .fd = fd, .op_flags = events & POLL_ASKABLE};
}

int corio_poll(int fd, unsigned events, int64_t deadline)
{
    const struct corio__op op = poll_op(fd, events);
    return (int)corio__future_run(&op, deadline, CORIO__FK_OP);
}

int corio_poll_start(struct corio_future *f, int fd, unsigned events, int64_t deadline)
{
    const struct corio__op op = poll_op(fd, events);
    return corio__future_start(corio__fut(f), &op, deadline, CORIO__FK_OP);
}
