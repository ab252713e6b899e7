/* The HTTP server's static files: a GET or HEAD that no route takes is answered with the file it
 * names below the server's root directory (index.html for a directory, 301 to the slash form of
 * a directory named without it), with Last-Modified, If-Modified-Since (304) and one byte range
 * (206, 416). The file's bytes are sent with corio__http_send_range (sendfile.c). */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* A static file being served. */
struct file_job {
    char path[4096 + 16]; /* the decoded path, NUL-terminated; room to append "index.html" */
    ssize_t plen;         /* bytes in path */
    int root_fd;          /* the directory it is below */
    const char *pfx;      /* what the client's path has in front of path (a mount's prefix) */
    size_t pfx_len;       /* bytes in pfx */
    int fd;               /* the open file */
    int64_t deadline;     /* for every file operation of the request */
    struct statx st;      /* type, size and mtime of the file */
};

/* Decodes the target @t (@tl bytes) into @f->path and opens that file below the root. Returns 0,
 * or -1 once an error response has been written. */
static int file_open(struct corio_http_conn *c, const char *t, size_t tl, struct file_job *f)
{
    f->plen = corio_http_decode_path(t, tl, f->path, sizeof(f->path) - 16);
    if (f->plen < 0) {
        /* A path too long for the buffer came from a target as long: 414. A ".." is refused
         * (403) without closing: nothing in the request is malformed. */
        int status = f->plen == -ENOSPC ? 414 : corio_http_status((int)f->plen);
        corio__http_respond_error(c, status, f->plen != -EACCES);
        return -1;
    }
    if (f->path[f->plen - 1] == '/') {
        memcpy(f->path + f->plen, "index.html", 11);
        f->plen += 10;
    }
    /* Symlinks below the root are followed, as nginx does by default; ".." never gets here. */
    const char *rel = f->path[1] ? f->path + 1 : ".";
    f->deadline = corio_now() + c->s->o.body_timeout;
    f->fd = corio_openat(f->root_fd, rel, O_RDONLY | O_NONBLOCK, 0, f->deadline);
    if (f->fd < 0) {
        int fd = f->fd;
        corio__http_respond_error(
            c, fd == -ENOENT || fd == -ENOTDIR || fd == -ENAMETOOLONG ? 404 : 403, false);
        return -1;
    }
    return 0;
}

/* Reads the open file's type, size and mtime into @f->st, and answers for anything that is not a
 * regular file. Returns whether it is one. */
static bool file_stat(struct corio_http_conn *c, struct file_job *f)
{
    int err = corio_statx(f->fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE | STATX_MTIME, &f->st,
                          f->deadline);
    if (err < 0) {
        corio__http_respond_error(c, 500, false);
        return false;
    }
    if (S_ISDIR(f->st.stx_mode)) {
        /* A directory named without its slash: send the client to the slash form. The decoded
         * path may hold any byte but NUL; one that cannot stand in a header field (a CR, say)
         * is refused by corio_http_add_header, and the directory is then not found. */
        char loc[sizeof(f->path) + CORIO__HTTP_MOUNT_PREFIX_MAX + 1];
        snprintf(loc, sizeof(loc), "%.*s%.*s/", (int)f->pfx_len, f->pfx, (int)f->plen, f->path);
        if (corio_http_add_header(c, "Location", loc) == 0)
            corio_http_respond_start(c, 301, NULL, 0, CORIO_FOREVER);
        else
            corio__http_respond_error(c, 404, false);
        return false;
    }
    if (!S_ISREG(f->st.stx_mode)) {
        corio__http_respond_error(c, 403, false);
        return false;
    }
    return true;
}

/* Applies the request's Range to a file of @size bytes: sets *@first and *@last (inclusive) and
 * the Content-Range of @t. Returns the status to answer with: 200, 206 or 416. */
static int file_range(const struct corio_http_request *req, int64_t size,
                      struct corio_http_response *t, int64_t *first, int64_t *last)
{
    *first = 0;
    *last = size - 1;
    if (req->range == NULL)
        return 200;
    int rr = corio_http_parse_range(req->range, req->range_len, size, first, last);
    if (rr == -ERANGE) {
        t->content_range = CORIO_HTTP_CONTENT_RANGE_UNSATISFIED;
        t->range_size = size;
        return 416;
    }
    if (rr != CORIO_HTTP_RANGE_PARTIAL) {
        *first = 0;
        *last = size - 1;
        return 200;
    }
    t->content_range = CORIO_HTTP_CONTENT_RANGE_BYTES;
    t->range_first = *first;
    t->range_last = *last;
    t->range_size = size;
    return 206;
}

/* Whether the client's copy, dated by If-Modified-Since, is as new as a file modified at @mtime. */
static bool not_modified(const struct corio_http_request *req, time_t mtime)
{
    time_t ims;
    return req->if_modified_since &&
           corio_http_parse_date(req->if_modified_since, req->if_modified_since_len, &ims) == 0 &&
           mtime <= ims;
}

/* Writes the response head for the regular file @f: 304 when the client's copy is current, 416
 * for a range past its end, else 200 or 206 with the bytes *@first and *@len to send. Returns
 * whether that head went out and a body may follow. */
static bool file_head(struct corio_http_conn *c, const struct corio_http_request *req,
                      const struct file_job *f, int64_t *first, int64_t *len)
{
    int64_t size = (int64_t)f->st.stx_size, last;
    time_t mtime = (time_t)f->st.stx_mtime.tv_sec;
    struct corio_http_response t;
    memset(&t, 0, sizeof(t));
    t.has_last_modified = true;
    t.last_modified = mtime;
    int status = not_modified(req, mtime) ? 304 : file_range(req, size, &t, first, &last);
    int err;
    if (status == 304) {
        err = corio__http_write_head(c, 304, NULL, -1, &t, CORIO_FOREVER);
    } else if (status == 416) {
        err = corio__http_write_head(c, 416, NULL, 0, &t, CORIO_FOREVER);
    } else {
        *len = size == 0 ? 0 : last - *first + 1;
        err = corio__http_write_head(c, status, corio_http_mime_type(f->path, (size_t)f->plen),
                                     *len, &t, CORIO_FOREVER);
    }
    if (err != 0)
        c->broken = true;
    c->resp = CORIO__HTTP_RESP_DONE;
    return err == 0 && status != 304 && status != 416;
}

void corio__http_serve_file(struct corio_http_conn *c, const struct corio_http_request *req)
{
    corio__http_serve_file_at(c, req, c->s->root_fd, req->target, req->target_len, "", 0);
}

void corio__http_serve_file_at(struct corio_http_conn *c, const struct corio_http_request *req,
                               int root_fd, const char *t, size_t tl, const char *pfx,
                               size_t pfx_len)
{
    struct file_job f;
    int64_t first, len;

    f.root_fd = root_fd;
    f.pfx = pfx;
    f.pfx_len = pfx_len;
    if (file_open(c, t, tl, &f) < 0)
        return;
    if (file_stat(c, &f) && file_head(c, req, &f, &first, &len) && !c->head_only)
        corio__http_send_range(c, f.fd, first, len, CORIO_FOREVER);
    corio_close(f.fd);
}
