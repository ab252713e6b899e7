/* A reverse proxy on corio's HTTP server and client: every request that comes in is forwarded to
 * one upstream server (method, target, header fields less the hop-by-hop ones, body streamed),
 * and the response is streamed back. The client keeps its connections to the upstream alive
 * between requests. Prints "ready port=N" when it listens; exits 0 on SIGINT or SIGTERM.
 * Usage: proxy LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT (LISTEN_PORT 0: any free port) */
#define _GNU_SOURCE /* sigset_t and its calls, strncasecmp */
#include <corio.h>
#include <corio/http.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* What a request may take, from its head to the end of its response's body. */
#define REQUEST_TIMEOUT CORIO_SEC(30)
#define MAX_FIELDS 64

struct proxy {
    struct corio_http_client *cl;
    const char *upstream;
    uint16_t upstream_port;
    uint16_t port;
    struct corio_signals sig; /* SIGINT and SIGTERM */
};

/* Hop-by-hop fields (RFC 9110 section 7.6.1) belong to one connection, and the framing fields are
 * written again by whichever side sends the message on. */
static const char *const hop_fields[] = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "transfer-encoding",
    "content-length",
    "proxy-authorization",
    "proxy-authenticate",
    "expect",
};

/* Whether @name (@len bytes) is in the comma list @list (@list_len bytes), case-insensitively. */
static bool in_list(const char *name, size_t len, const char *list, size_t list_len)
{
    const char *end = list + list_len;
    while (list < end) {
        while (list < end && (*list == ' ' || *list == '\t' || *list == ','))
            list++;
        const char *e = list;
        while (e < end && *e != ',' && *e != ' ' && *e != '\t')
            e++;
        if ((size_t)(e - list) == len && strncasecmp(list, name, len) == 0)
            return true;
        list = e;
    }
    return false;
}

/* Whether the field @h is not to be forwarded: hop-by-hop, or named by the message's Connection
 * field (@conn, @conn_len bytes). */
static bool hop(const struct corio_http_header *h, const char *conn, size_t conn_len)
{
    for (size_t i = 0; i < sizeof(hop_fields) / sizeof(hop_fields[0]); i++) {
        if (strlen(hop_fields[i]) == h->name_len &&
            strncasecmp(h->name, hop_fields[i], h->name_len) == 0)
            return true;
    }
    return in_list(h->name, h->name_len, conn, conn_len);
}

/* The upstream request's body source: the incoming request's body. */
static ssize_t body_in(void *arg, void *buf, size_t len, int64_t deadline)
{
    return corio_http_read_body(arg, buf, len, deadline);
}

/* Adds the end-to-end fields of the upstream response @h to the response to the client, less the
 * ones the server writes itself. Returns 0 or -errno. */
static int copy_fields(struct corio_http_conn *c, const struct corio_http_response_head *h)
{
    const char *conn = "";
    size_t conn_len = 0;
    corio_http_response_header_get(h, "connection", &conn, &conn_len);
    char name[256], value[1024];
    for (size_t i = 0; i < h->num_headers; i++) {
        const struct corio_http_header *f = &h->headers[i];
        if (hop(f, conn, conn_len) || (f->name_len == 4 && !strncasecmp(f->name, "date", 4)) ||
            (f->name_len == 6 && !strncasecmp(f->name, "server", 6)) ||
            (f->name_len == 12 && !strncasecmp(f->name, "content-type", 12)))
            continue;
        if (f->name_len >= sizeof(name) || f->value_len >= sizeof(value))
            return -E2BIG;
        memcpy(name, f->name, f->name_len);
        name[f->name_len] = '\0';
        memcpy(value, f->value, f->value_len);
        value[f->value_len] = '\0';
        int err = corio_http_add_header(c, name, value);
        if (err)
            return err;
    }
    return 0;
}

/* Streams the response of @x to the client on @c, its head first. Returns 0 or -errno. */
static int relay(struct corio_http_conn *c, struct corio_http_exchange *x, int64_t deadline)
{
    const struct corio_http_response_head *h = x->head;
    char ctype[256];
    const char *ct;
    size_t ct_len;
    bool has_ct = corio_http_response_header_get(h, "content-type", &ct, &ct_len) == 0 &&
                  ct_len < sizeof(ctype);
    if (has_ct) {
        memcpy(ctype, ct, ct_len);
        ctype[ct_len] = '\0';
    }
    int err = copy_fields(c, h);
    if (err)
        return err;
    /* A chunked or close-delimited body has no length to give: the server frames it its way. */
    err =
        corio_http_respond_start(c, x->status, has_ct ? ctype : NULL, h->content_length, deadline);
    /* Each request its own buffer: a write may wait with its bytes still to send. */
    size_t cap = 64 * 1024;
    char *buf = err ? NULL : malloc(cap);
    if (!err && !buf)
        err = -ENOMEM;
    ssize_t n;
    while (err == 0 && (n = corio_http_client_read(x, buf, cap, deadline)) != 0)
        err = n < 0 ? (int)n : corio_http_write(c, buf, (size_t)n, deadline);
    free(buf);
    /* After a failed read the client sees the body cut, as the upstream cut it. */
    return err ? err : corio_http_finish(c, deadline);
}

/* Answers an upstream failure @err: 504 when it timed out, else 502. Returns the answer's result.
 */
static int bad_gateway(struct corio_http_conn *c, int err, int64_t deadline)
{
    int status = err == -ETIMEDOUT ? 504 : 502;
    const char *reason = corio_http_reason(status);
    fprintf(stderr, "proxy: upstream: %s\n", strerror(-err));
    return corio_http_respond(c, status, "text/plain", reason, strlen(reason), deadline);
}

/* The route of every request: forwards @req upstream and relays the answer. */
static int forward(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    struct proxy *px = arg;
    int64_t deadline = corio_now() + REQUEST_TIMEOUT;
    char method[32], *target = malloc(req->target_len + 1);
    if (!target || req->method_len >= sizeof(method)) {
        free(target);
        return -ENOMEM;
    }
    memcpy(method, req->method_str, req->method_len);
    method[req->method_len] = '\0';
    memcpy(target, req->target, req->target_len);
    target[req->target_len] = '\0';

    const char *conn = "";
    size_t conn_len = 0;
    corio_http_header_get(req, "connection", &conn, &conn_len);
    struct corio_http_header fields[MAX_FIELDS];
    size_t n = 0;
    for (size_t i = 0; i < req->num_headers && n < MAX_FIELDS; i++) {
        if (!hop(&req->headers[i], conn, conn_len))
            fields[n++] = req->headers[i];
    }
    struct corio_http_client_request rq = {
        .method = method,
        .host = px->upstream,
        .port = px->upstream_port,
        .target = target,
        .headers = fields,
        .num_headers = n,
    };
    if (req->chunked || req->content_length > 0) {
        rq.body_fn = body_in;
        rq.body_arg = c;
        rq.body_length = req->chunked ? -1 : req->content_length;
    }
    struct corio_http_exchange x;
    int status = corio_http_client_send(px->cl, &x, &rq, deadline);
    free(target);
    if (status < 0)
        return bad_gateway(c, status, deadline);
    int err = relay(c, &x, deadline);
    corio_http_client_end(&x);
    return err;
}

struct serving {
    struct corio_http_server *s;
    int lfd;
};

static int serve(void *arg)
{
    struct serving *sv = arg;
    return corio_http_serve(sv->s, sv->lfd);
}

/* Listens, serves until SIGINT or SIGTERM arrives on @arg's signals, and cleans up. */
static int proxy_main(void *arg)
{
    struct proxy *px = arg;
    struct corio_signals *sig = &px->sig;
    struct serving sv = {NULL, -1};
    int err = corio_http_client_new(&px->cl, NULL);
    if (err == 0)
        err = corio_http_server_new(&sv.s, NULL);
    if (err == 0)
        err = corio_http_route(sv.s, NULL, "/*", forward, px);
    if (err == 0)
        err = sv.lfd = corio_listen_tcp("127.0.0.1", px->port, 1024, 0);
    corio_id co = 0;
    if (err >= 0) {
        printf("ready port=%d\n", corio_local_port(sv.lfd));
        fflush(stdout);
        err = corio_spawn(&co, NULL, serve, &sv);
    }
    if (err >= 0) {
        err = corio_signals_next(sig, NULL, CORIO_FOREVER);
        corio_cancel(co);
        corio_join(co, NULL, CORIO_FOREVER);
        err = err < 0 ? err : 0;
    }
    if (sv.lfd >= 0)
        corio_close(sv.lfd);
    corio_http_server_free(sv.s);
    corio_http_client_free(px->cl);
    return err;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: proxy LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT\n");
        return 2;
    }
    static struct proxy px;
    px.port = (uint16_t)atoi(argv[1]);
    px.upstream = argv[2];
    px.upstream_port = (uint16_t)atoi(argv[3]);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int err = corio_signals_init(&px.sig, &set);
    if (err == 0) {
        err = corio_run(proxy_main, &px, NULL);
        corio_signals_fini(&px.sig);
    }
    if (err < 0)
        fprintf(stderr, "proxy: %s\n", strerror(-err));
    return err < 0;
}
