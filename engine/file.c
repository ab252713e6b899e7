/* File operations: read, write, readv, writev (also on pipes and sockets), openat, close, fsync,
 * statx, and the loops over short transfers. */
#include "future.h"

#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static struct corio__op rw_op(uint8_t opcode, int fd, const void *buf, size_t len, int64_t off)
{
    return (struct corio__op){.opcode = opcode,
                              .fd = fd,
                              .addr = buf,
                              .len = corio__clamp_len(len),
                              .off = (uint64_t)off};
}

static struct corio__op rwv_op(uint8_t opcode, int fd, const struct iovec *iov, int iovcnt,
                               int64_t off)
{
    return (struct corio__op){.opcode = opcode,
                              .fd = fd,
                              .addr = iov,
                              .len = iovcnt < 0 ? UINT32_MAX : (uint32_t)iovcnt,
                              .off = (uint64_t)off};
}

ssize_t corio_read(int fd, void *buf, size_t len, int64_t off, int64_t deadline)
{
    struct corio__op op = rw_op(CORIO__OP_READ, fd, buf, len, off);
    return (ssize_t)corio__future_run(&op, deadline, CORIO__FK_OP);
}

int corio_read_start(struct corio_future *f, int fd, void *buf, size_t len, int64_t off,
                     int64_t deadline)
{
    struct corio__op op = rw_op(CORIO__OP_READ, fd, buf, len, off);
    return corio__future_start(corio__fut(f), &op, deadline, CORIO__FK_OP);
}

ssize_t corio_write(int fd, const void *buf, size_t len, int64_t off, int64_t deadline)
{
    struct corio__op op = rw_op(CORIO__OP_WRITE, fd, buf, len, off);
    return (ssize_t)corio__future_run(&op, deadline, CORIO__FK_OP);
}

int corio_write_start(struct corio_future *f, int fd, const void *buf, size_t len, int64_t off,
                      int64_t deadline)
{
    struct corio__op op = rw_op(CORIO__OP_WRITE, fd, buf, len, off);
    return corio__future_start(corio__fut(f), &op, deadline, CORIO__FK_OP);
}

ssize_t corio_readv(int fd, const struct iovec *iov, int iovcnt, int64_t off, int64_t deadline)
{
    struct corio__op op = rwv_op(CORIO__OP_READV, fd, iov, iovcnt, off);
    return (ssize_t)corio__future_run(&op, deadline, CORIO__FK_OP);
}

int corio_readv_start(struct corio_future *f, int fd, const struct iovec *iov, int iovcnt,
                      int64_t off, int64_t deadline)
{
    struct corio__op op = rwv_op(CORIO__OP_READV, fd, iov, iovcnt, off);
    return corio__future_start(corio__fut(f), &op, deadline, CORIO__FK_OP);
}

ssize_t corio_writev(int fd, const struct iovec *iov, int iovcnt, int64_t off, int64_t deadline)
{
    struct corio__op op = rwv_op(CORIO__OP_WRITEV, fd, iov, iovcnt, off);
    return (ssize_t)corio__future_run(&op, deadline, CORIO__FK_OP);
}

int corio_writev_start(struct corio_future *f, int fd, const struct iovec *iov, int iovcnt,
                       int64_t off, int64_t deadline)
{
    struct corio__op op = rwv_op(CORIO__OP_WRITEV, fd, iov, iovcnt, off);
    return corio__future_start(corio__fut(f), &op, deadline, CORIO__FK_OP);
}

/* Loops @opcode over [buf, buf + len) until done, EOF (reads) or an error. */
static ssize_t rw_all(uint8_t opcode, int fd, const void *buf, size_t len, int64_t off,
                      size_t *done, int64_t deadline)
{
    size_t got = 0;
    ssize_t r = 0;
    while (got < len) {
        struct corio__op op = rw_op(opcode, fd, (const char *)buf + got, len - got,
                                    off < 0 ? -1 : off + (int64_t)got);
        r = (ssize_t)corio__future_run(&op, deadline, CORIO__FK_OP);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (done)
        *done = got;
    if (r < 0)
        return r;
    if (r == 0 && got < len && opcode == CORIO__OP_WRITE)
        return -EIO; /* a write that makes no progress would loop forever */
    return (ssize_t)got;
}

ssize_t corio_read_all(int fd, void *buf, size_t len, int64_t off, size_t *done,
                       int64_t deadline)
{
    return rw_all(CORIO__OP_READ, fd, buf, len, off, done, deadline);
}

ssize_t corio_write_all(int fd, const void *buf, size_t len, int64_t off, size_t *done,
                        int64_t deadline)
{
    return rw_all(CORIO__OP_WRITE, fd, buf, len, off, done, deadline);
}

static struct corio__op openat_op(int dirfd, const char *path, int flags, mode_t mode)
{
    return (struct corio__op){.opcode = CORIO__OP_OPENAT,
                              .fd = dirfd,
                              .addr = path,
                              .op_flags = (uint32_t)(flags | O_CLOEXEC),
                              .aux = (uint32_t)mode};
}

int corio_openat(int dirfd, const char *path, int flags, mode_t mode, int64_t deadline)
{
    struct corio__op op = openat_op(dirfd, path, flags, mode);
    return (int)corio__future_run(&op, deadline, CORIO__FK_OP);
}

int corio_openat_start(struct corio_future *f, int dirfd, const char *path, int flags,
                       mode_t mode, int64_t deadline)
{
    struct corio__op op = openat_op(dirfd, path, flags, mode);
    return corio__future_start(corio__fut(f), &op, deadline, CORIO__FK_OP);
}

/* A close that first ends the ops other coroutines (or the caller's own futures) have pending
 * on @fd, where the kernel can cancel by fd: otherwise they would wait until their deadlines on
 * a file nobody can reach any more, and a receive could still take data sent after the close. */
static struct corio__op close_op(int fd)
{
    uint32_t cancel = corio__here_has(CORIO_FEAT_CANCEL_FD) ? CORIO__CLOSE_CANCEL : 0;
    return (struct corio__op){.opcode = CORIO__OP_CLOSE, .fd = fd, .aux = cancel};
}

int corio_close(int fd)
{
    /* Outside a coroutine (clean-up after corio_run, a loop's end): close(2), which never waits
     * long for anything corio makes. A direct descriptor has no meaning outside its ring. */
    if (!corio__tls_task) {
        if (fd >= 0 && (fd & CORIO_FD_FIXED))
            return -EPERM;
        return close(fd) == 0 ? 0 : -errno;
    }
    const struct corio__op op = close_op(fd);
    return (int)corio__future_run(&op, CORIO_FOREVER, CORIO__FK_CLOSE);
}

int corio_close_start(struct corio_future *f, int fd)
{
    const struct corio__op op = close_op(fd);
    return corio__future_start(corio__fut(f), &op, CORIO_FOREVER, CORIO__FK_CLOSE);
}

int corio_fsync(int fd, int datasync, int64_t deadline)
{
    const struct corio__op op = {.opcode = CORIO__OP_FSYNC, .fd = fd, .op_flags = datasync != 0};
    return (int)corio__future_run(&op, deadline, CORIO__FK_OP);
}

int corio_fsync_start(struct corio_future *f, int fd, int datasync, int64_t deadline)
{
    const struct corio__op op = {.opcode = CORIO__OP_FSYNC, .fd = fd, .op_flags = datasync != 0};
    return corio__future_start(corio__fut(f), &op, deadline, CORIO__FK_OP);
}

static struct corio__op statx_op(int dirfd, const char *path, int flags, unsigned mask,
                                 struct statx *out)
{
    return (struct corio__op){.opcode = CORIO__OP_STATX,
                              .fd = dirfd,
                              .addr = path,
                              .op_flags = (uint32_t)flags,
                              .aux = mask,
                              .addr2 = out};
}

int corio_statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *out,
                int64_t deadline)
{
    struct corio__op op = statx_op(dirfd, path, flags, mask, out);
    return (int)corio__future_run(&op, deadline, CORIO__FK_OP);
}

int corio_statx_start(struct corio_future *f, int dirfd, const char *path, int flags,
                      unsigned mask, struct statx *out, int64_t deadline)
{
    struct corio__op op = statx_op(dirfd, path, flags, mask, out);
    return corio__future_start(corio__fut(f), &op, deadline, CORIO__FK_OP);
}
