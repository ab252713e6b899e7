/* corio-httpd: an HTTP/1.1 server on corio. GET / and /plaintext answer "Hello, World!", GET /json
 * a JSON hello (TechEmpower's plaintext and JSON tests); --root serves files. */
#include "common.h"

#include <corio/http.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: corio-httpd [options]\n"
               "  --port N             TCP port (default 8080)\n"
               "  --host ADDR          numeric IPv4/IPv6 address to bind (default 0.0.0.0)\n"
               "  --root DIR           serve the files below DIR (GET and HEAD, Range, 304)\n"
               "  --header-timeout S   seconds to receive a request head (default 10)\n"
               "  --idle-timeout S     seconds a keep-alive connection may idle (default 60)\n"
               "  --max-conns N        connections served at once (default 10000)\n"
               "  --backlog N          listen backlog (default 4096)\n"
               "  --stack-size N       coroutine stack size, k/m suffix (default 64k)\n"
               "  --sqpoll             submit through a kernel SQ polling thread\n"
               "  --cpu N              pin the server to CPU N (with --threads: each loop to its\n"
               "                       own CPU)\n"
               "  --threads N          N loops on N threads; default 1: the benchmarks compare\n"
               "                       one loop\n"
               "  --balance B          how connections reach the loops of --threads: reuseport\n"
               "                       (default: a listener per loop, the kernel hashes each\n"
               "                       connection to one), round-robin or least (loop 0 accepts\n"
               "                       and hands each over in turn, or to the loop with fewest)\n"
               "  --drain-timeout S    seconds a graceful stop lets requests finish (default 5)\n"
               "  --access-log PATH    a line per request (Common Log Format and the seconds it\n"
               "                       took) appended to PATH, or written to stdout for -\n"
               "  --max-requests N     requests per connection; the last one's response closes it\n"
               "  --stats              print counters at exit (and on SIGUSR1, always)\n"
               "  --metrics-path P     serve every loop's metrics in Prometheus' text format at\n"
               "                       path P (GET) of the server's port, e.g. /metrics\n"
               "  --metrics-port N     serve them on port N (at every path) instead, on its own\n"
               "                       listener of the first loop; prints 'metrics port=N'\n"
               "  --help               this text\n"
               "Without --root, GET / and GET /plaintext answer \"Hello, World!\" (text/plain),\n"
               "GET /json {\"message\":\"Hello, World!\"} (application/json, serialised per\n"
               "request): TechEmpower's plaintext and JSON tests; other paths 404.\n"
               "Prints 'ready port=N' when listening. The first SIGINT or SIGTERM stops it\n"
               "gracefully: it accepts no more, closes idle keep-alive connections, answers the\n"
               "requests under way with 'Connection: close', and ends when they are done or after\n"
               "--drain-timeout; a second signal stops it at once.\n"
               "SIGUSR1 writes the counters and the coroutine dump to stderr; CORIO_STALL_MS=N\n"
               "reports stalls.\n");
}

static const char *host = "0.0.0.0";
static uint16_t port = 8080;
static int backlog = 4096;
static unsigned threads = 1;
/* How long a graceful stop (the first SIGINT or SIGTERM) lets requests finish: 5 s, room for
 * slow clients when what they wait for takes milliseconds, and well within what a service
 * manager waits before it kills (systemd's TimeoutStopSec 90 s, Kubernetes' grace period 30 s). */
static int64_t drain_timeout = CORIO_SEC(5);
static bool stats;
static struct corio_http_server_opts ho;
static _Atomic int server_err;
static const char *metrics_path;
static int metrics_port = -1;
static const char *access_log; /* --access-log: a path, or "-" for stdout */

/* GET of the metrics: every loop's, in Prometheus' text format, measured first and then written
 * into a buffer of that size (grown if the text grew in between). */
static int metrics(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    struct corio_loop *loops[1024];
    unsigned n = corio_thread_count();
    for (unsigned i = 0; i < n; i++)
        loops[i] = corio_thread_loop(i);
    size_t cap = 16384;
    char *buf = NULL;
    ssize_t len;
    for (;;) {
        char *grown = realloc(buf, cap);
        if (!grown) {
            free(buf);
            return corio_http_respond(c, 500, "text/plain", "no memory\n", 10, CORIO_FOREVER);
        }
        buf = grown;
        len = corio_metrics_prometheus(buf, cap, loops, n);
        if (len < 0 || (size_t)len < cap)
            break;
        cap = (size_t)len + 4096;
    }
    int err = len < 0 ? corio_http_respond(c, 501, "text/plain", "no metrics in this build\n", 25,
                                           CORIO_FOREVER)
                      : corio_http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", buf,
                                           (size_t)len, CORIO_FOREVER);
    free(buf);
    return err;
}

/* --metrics-port: a server of its own on the first loop that answers every GET with the
 * metrics, so that they need not share the port, or the path space, of the site. */
static int metrics_server(void *arg)
{
    (void)arg;
    struct corio_http_server *srv = NULL;
    int lfd = corio_listen_tcp(host, (uint16_t)metrics_port, 64, 0);
    if (lfd < 0) {
        fprintf(stderr, "corio-httpd: metrics port %d: %s\n", metrics_port, strerror(-lfd));
        return lfd;
    }
    int err = corio_http_server_new(&srv, NULL);
    if (err == 0 && (err = corio_http_route(srv, "GET", "/*", metrics, NULL)) == 0) {
        printf("metrics port=%d\n", corio_local_port(lfd));
        fflush(stdout);
        err = corio_http_serve(srv, lfd);
    }
    corio_http_server_free(srv);
    corio_close(lfd);
    return err;
}

static int hello(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    static const char body[] = "Hello, World!";
    return corio_http_respond(c, 200, "text/plain", body, sizeof(body) - 1, CORIO_FOREVER);
}

/* ---- TechEmpower's plaintext and JSON tests ------------------------------------------------
 * GET /plaintext is the hello above. GET /json answers {"message":"Hello, World!"}, serialised
 * for each request as the JSON test demands (no canned body), by the small writer below: output
 * into a caller's buffer, strings escaped, overflow remembered rather than checked at each step. */
struct json_out {
    char *p;         /* where the next byte goes */
    char *end;       /* one past the buffer */
    bool overflow;   /* a write did not fit: the text is cut and must not be sent */
    bool need_comma; /* a member was written in the current object */
};

static void json_raw(struct json_out *j, const char *s, size_t n)
{
    if ((size_t)(j->end - j->p) < n) {
        j->overflow = true;
        return;
    }
    memcpy(j->p, s, n);
    j->p += n;
}

/* Writes @s as a JSON string: quotes, '"' and backslash escaped, control bytes as \u00XX. The bytes
 * that need no escape are copied a run at a time: per byte, the check is all the work. */
static void json_string(struct json_out *j, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    json_raw(j, "\"", 1);
    const char *run = s;
    for (;; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        json_raw(j, run, (size_t)(s - run));
        if (ch == '\0')
            break;
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            json_raw(j, esc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
            json_raw(j, esc, 6);
        }
        run = s + 1;
    }
    json_raw(j, "\"", 1);
}

static void json_object_begin(struct json_out *j)
{
    json_raw(j, "{", 1);
    j->need_comma = false;
}

static void json_object_end(struct json_out *j)
{
    json_raw(j, "}", 1);
}

static void json_member_string(struct json_out *j, const char *name, const char *value)
{
    if (j->need_comma)
        json_raw(j, ",", 1);
    json_string(j, name);
    json_raw(j, ":", 1);
    json_string(j, value);
    j->need_comma = true;
}

static int json_hello(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    char buf[64];
    struct json_out j = {.p = buf, .end = buf + sizeof(buf)};
    json_object_begin(&j);
    json_member_string(&j, "message", "Hello, World!");
    json_object_end(&j);
    if (j.overflow)
        return corio_http_respond(c, 500, "text/plain", "overflow\n", 9, CORIO_FOREVER);
    return corio_http_respond(c, 200, "application/json", buf, (size_t)(j.p - buf), CORIO_FOREVER);
}

/* This loop's server, for the connections handed to the loop (--balance round-robin, least). */
static _Thread_local struct corio_http_server *loop_srv;

static int handed_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    if (getpeername(fd, (struct sockaddr *)&peer, &len) != 0)
        len = 0; /* served all the same; the handler sees no peer address */
    corio_http_serve_conn(loop_srv, fd, (struct sockaddr *)&peer, len);
    tool_conn_done();
    return 0;
}

/* Serves what loop 0 hands this loop (loop 0 also accepts for all) until a drain or a stop, and
 * then until the connections have ended. Returns what tool_serve_handed does. */
static int serve_handed(int lfd)
{
    struct corio_group conns;
    corio_group_init(&conns, 0);
    tool_inbox_open(&conns, handed_conn);
    int err = tool_serve_handed("corio-httpd", lfd);
    tool_inbox_close();
    if (err != -ESHUTDOWN)
        corio_group_cancel(&conns);
    corio_group_wait(&conns, CORIO_FOREVER);
    return err;
}

/* One loop's server: its own corio_http_server (they share nothing across threads) and, with
 * --threads, its own listener on the shared port, or loop 0's alone with a balance that hands
 * connections over. */
static int server(void *arg)
{
    (void)arg;
    struct corio_loop *loop = corio_loop_current();
    if (tool_stop_on_signals(drain_timeout) != 0)
        fprintf(stderr, "corio-httpd: no signal handling\n");
    if (corio_thread_index() == 0 && tool_report_on_signal(loop, "corio-httpd") != 0)
        fprintf(stderr, "corio-httpd: no report on SIGUSR1\n");
    if (corio_thread_index() == 0 && metrics_port >= 0 &&
        corio_spawn(NULL, loop, metrics_server, NULL) != 0)
        fprintf(stderr, "corio-httpd: no metrics server\n");
    struct corio_http_server *srv;
    int err = corio_http_server_new(&srv, &ho);
    if (err) {
        atomic_store(&server_err, err);
        corio_threads_stop();
        return err;
    }
    if (metrics_path)
        corio_http_route(srv, "GET", metrics_path, metrics, NULL);
    if (!ho.root) {
        corio_http_route(srv, "GET", "/", hello, NULL);
        corio_http_route(srv, "GET", "/plaintext", hello, NULL);
        corio_http_route(srv, "GET", "/json", json_hello, NULL);
    }
    loop_srv = srv;
    bool handing = tool_hands_over();
    int lfd = tool_listen("corio-httpd", host, port, backlog);
    if (lfd < 0 && !(handing && lfd == -ENOTSOCK)) {
        atomic_store(&server_err, lfd);
        corio_http_server_free(srv);
        corio_threads_stop();
        return lfd;
    }
    err = handing ? serve_handed(lfd) : corio_http_serve(srv, lfd);
    if (err != -ECANCELED && err != -ESHUTDOWN) {
        fprintf(stderr, "corio-httpd: accept: %s\n", strerror(-err));
        atomic_store(&server_err, err);
    }
    if (lfd >= 0)
        corio_close(lfd);
    if (err != -ESHUTDOWN) /* a drain leaves the other loops to end their own connections */
        corio_threads_stop();
    if (stats) {
        const struct corio_http_stats *hs = corio_http_server_stats(srv);
        tool_print_stats("corio-httpd", loop);
        fprintf(stderr,
                "corio-httpd: connections=%llu requests=%llu responses=%llu bad=%llu "
                "timeouts=%llu\n",
                (unsigned long long)hs->connections, (unsigned long long)hs->requests,
                (unsigned long long)hs->responses, (unsigned long long)hs->bad_requests,
                (unsigned long long)hs->timeouts);
    }
    corio_http_server_free(srv); /* corio_http_serve returned: its connections have ended */
    return 0;
}

int main(int argc, char **argv)
{
    struct corio_loop_opts lo = {0};
    int cpu = -1;
    enum { O_PORT = 256, O_HOST, O_ROOT, O_HDR, O_IDLE, O_MAX, O_BACKLOG, O_STACK, O_SQPOLL,
           O_CPU, O_STATS, O_THREADS, O_DRAIN,
           O_BALANCE, O_MPATH, O_MPORT, O_ALOG, O_MAXREQ };
    static const struct option longopts[] = {
        {"port", required_argument, NULL, O_PORT},
        {"host", required_argument, NULL, O_HOST},
        {"root", required_argument, NULL, O_ROOT},
        {"header-timeout", required_argument, NULL, O_HDR},
        {"idle-timeout", required_argument, NULL, O_IDLE},
        {"max-conns", required_argument, NULL, O_MAX},
        {"backlog", required_argument, NULL, O_BACKLOG},
        {"stack-size", required_argument, NULL, O_STACK},
        {"sqpoll", no_argument, NULL, O_SQPOLL},
        {"cpu", required_argument, NULL, O_CPU},
        {"stats", no_argument, NULL, O_STATS},
        {"threads", required_argument, NULL, O_THREADS},
        {"balance", required_argument, NULL, O_BALANCE},
        {"drain-timeout", required_argument, NULL, O_DRAIN},
        {"metrics-path", required_argument, NULL, O_MPATH},
        {"metrics-port", required_argument, NULL, O_MPORT},
        {"access-log", required_argument, NULL, O_ALOG},
        {"max-requests", required_argument, NULL, O_MAXREQ},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_PORT: port = (uint16_t)tool_parse_size("--port", optarg); break;
        case O_HOST: host = optarg; break;
        case O_ROOT: ho.root = optarg; break;
        case O_HDR: ho.header_timeout = tool_parse_seconds("--header-timeout", optarg); break;
        case O_IDLE: ho.idle_timeout = tool_parse_seconds("--idle-timeout", optarg); break;
        case O_MAX: ho.max_connections = tool_parse_size("--max-conns", optarg); break;
        case O_BACKLOG: backlog = (int)tool_parse_size("--backlog", optarg); break;
        case O_STACK: lo.stack_size = tool_parse_size("--stack-size", optarg); break;
        case O_SQPOLL: lo.flags |= CORIO_LOOP_SQPOLL; break;
        case O_CPU: cpu = (int)tool_parse_size("--cpu", optarg); break;
        case O_STATS: stats = true; break;
        case O_BALANCE: tool_set_balance("--balance", optarg); break;
        case O_THREADS: threads = (unsigned)tool_parse_size("--threads", optarg); break;
        case O_DRAIN: drain_timeout = tool_parse_seconds("--drain-timeout", optarg); break;
        case O_MPATH: metrics_path = optarg; break;
        case O_MPORT: metrics_port = (int)tool_parse_size("--metrics-port", optarg); break;
        case O_ALOG: access_log = optarg; break;
        case O_MAXREQ: ho.max_requests = tool_parse_size("--max-requests", optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || threads == 0 || threads > 1024 || metrics_port > 65535 ||
        (metrics_path && metrics_path[0] != '/')) {
        usage(stderr);
        return 2;
    }
    /* One descriptor for every loop's log: each writes whole batches of lines, appended. */
    if (access_log && strcmp(access_log, "-") != 0) {
        ho.access_log_fd = open(access_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (ho.access_log_fd < 0) {
            fprintf(stderr, "corio-httpd: %s: %s\n", access_log, strerror(errno));
            return 1;
        }
    } else if (access_log) {
        ho.access_log_fd = STDOUT_FILENO;
    }
    /* The options checked once here, where a bad root is reported before anything listens. */
    struct corio_http_server *check;
    int err = corio_http_server_new(&check, &ho);
    if (err) {
        fprintf(stderr, "corio-httpd: %s%s%s\n", ho.root ? ho.root : "", ho.root ? ": " : "",
                strerror(-err));
        return 1;
    }
    corio_http_server_free(check);
    if (tool_signals_init() != 0)
        fprintf(stderr, "corio-httpd: no signal handling\n");
    err = tool_run("corio-httpd", threads, cpu, &lo, server);
    tool_signals_fini();
    return err || atomic_load(&server_err) ? 1 : 0;
}
