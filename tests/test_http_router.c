/* Tests of engine/http/router.c: patterns with parameters, the precedence of the route tiers,
 * 404 and 405 with Allow over patterns, directory mounts, the hooks around a request, and that a
 * routed request allocates nothing.
 *
 * The table tests ask corio_http_route_find, which matches as the server does, without a
 * connection. The others run a server on the test's loop (corio_http_serve on 127.0.0.1 port 0)
 * and a client coroutine that sends raw requests on one keep-alive connection and reads each
 * response whole (status, head, Content-Length body). Expectations inside coroutines are
 * recorded with T_EXPECT and checked afterwards. */
#include "helpers.h"

#include <corio/http.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define BOUND_MS (t_on_valgrind() ? 20000 : 5000)
#define WATCHDOG_MS (t_on_valgrind() ? 60000 : 20000)

/* ---- a malloc counter ------------------------------------------------------------------------ */

/* The sanitizers bring allocators of their own, which a definition here would fight: under them
 * (and under valgrind, which replaces these definitions too) the allocation test skips and says
 * so; the plain gcc and clang runs count. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NO_MALLOC_COUNT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define NO_MALLOC_COUNT 1
#endif
#endif

#ifndef NO_MALLOC_COUNT
static atomic_ulong n_allocs; /* malloc, calloc and realloc calls so far */

/* The program's own definitions take the place of libc's for every caller, the library's
 * included; each counts and hands over to glibc's allocator under its other name. */
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

void *malloc(size_t n)
{
    atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}
#endif

/* ---- handlers and hooks ---------------------------------------------------------------------- */

/* Answers with the route's argument, a string naming it, so that a test sees which route won. */
static int h_name(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    return corio_http_respond(c, 200, "text/plain", arg, strlen(arg), CORIO_FOREVER);
}

/* Answers "name=value;" for each name in the route's argument (a space-separated list), "-" for a
 * parameter the route does not have. */
static int h_params(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    char out[512];
    size_t n = 0;
    const char *names = arg;
    while (*names) {
        size_t nl = strcspn(names, " ");
        char name[32];
        snprintf(name, sizeof(name), "%.*s", (int)nl, names);
        size_t vl = 0;
        const char *v = corio_http_param(c, name, &vl);
        n += (size_t)snprintf(out + n, sizeof(out) - n, "%s=%.*s;", name, (int)(v ? vl : 1),
                              v ? v : "-");
        names += nl + (names[nl] == ' ');
    }
    return corio_http_respond(c, 200, "text/plain", out, n, CORIO_FOREVER);
}

/* What the hooks saw. */
static struct {
    char order[64]; /* a letter per hook call: before 'a', 'b'; after 'A', 'B' */
    size_t norder;  /* letters in order */
    int status;     /* the last status an after-hook saw */
    uint64_t bytes; /* and bytes */
    char param[64]; /* the parameter "id" as a before-hook saw it, or "" */
} seen;

static void mark(char ch)
{
    if (seen.norder + 1 < sizeof(seen.order))
        seen.order[seen.norder++] = ch;
    seen.order[seen.norder] = '\0';
}

/* Before-hook 'a': records the order and, for a request with a parameter "id", its value. */
static int hook_a(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    mark('a');
    size_t len;
    const char *id = corio_http_param(c, "id", &len);
    snprintf(seen.param, sizeof(seen.param), "%.*s", id ? (int)len : 0, id ? id : "");
    return 0;
}

/* Before-hook 'b': the authorization check, answering 401 below /private/ without one. */
static int hook_auth(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)arg;
    mark('b');
    const char *v;
    size_t len;
    if (req->target_len >= 9 && memcmp(req->target, "/private/", 9) == 0 &&
        corio_http_header_get(req, "Authorization", &v, &len) != 0) {
        corio_http_add_header(c, "WWW-Authenticate", "Basic realm=\"t\"");
        return corio_http_respond(c, 401, "text/plain", "no\n", 3, CORIO_FOREVER);
    }
    return 0;
}

static void after_a(struct corio_http_conn *c, const struct corio_http_request *req, int status,
                    uint64_t bytes, void *arg)
{
    (void)c;
    (void)req;
    (void)arg;
    mark('A');
    seen.status = status;
    seen.bytes = bytes;
}

static void after_b(struct corio_http_conn *c, const struct corio_http_request *req, int status,
                    uint64_t bytes, void *arg)
{
    (void)c;
    (void)req;
    (void)arg;
    (void)status;
    (void)bytes;
    mark('B');
}

/* Every route of the server tests, in this order (route numbers count from 0). */
static void add_routes(struct corio_http_server *s)
{
    assert_int_equal(corio_http_route(s, "GET", "/users/*", h_name, "prefix"), 0);
    assert_int_equal(corio_http_route(s, "GET", "/users/:id", h_params, "id"), 0);
    assert_int_equal(corio_http_route(s, "GET", "/users/me", h_name, "me"), 0);
    assert_int_equal(corio_http_route(s, "DELETE", "/users/:id", h_name, "deleted"), 0);
    assert_int_equal(corio_http_route(s, "GET", "/a/:x/b/:y", h_params, "x y z"), 0);
    assert_int_equal(corio_http_route(s, "GET", "/files/*path", h_params, "path"), 0);
    assert_int_equal(corio_http_route(s, "PUT", "/files/*path", h_name, "put"), 0);
    assert_int_equal(corio_http_route(s, "GET", "/private/data", h_name, "secret"), 0);
    assert_int_equal(corio_http_route(s, "GET", "/plaintext", h_name, "Hello, World!"), 0);
}

/* ---- the route table, without a server loop -------------------------------------------------- */

/* Returns the route corio_http_route_find picks for @method @target on @s, and its Allow bits. */
static int find(struct corio_http_server *s, enum corio_http_method m, const char *target,
                unsigned *allow)
{
    return corio_http_route_find(s, m, target, strlen(target), allow);
}

#define BIT(m) (1u << CORIO_HTTP_##m)

static void test_http_router_table(void **state)
{
    (void)state;
    struct corio_http_server *s;
    assert_int_equal(corio_http_server_new(&s, NULL), 0);
    add_routes(s);
    unsigned allow;
    /* Exact before pattern before prefix, whatever the order they were added in. */
    assert_int_equal(find(s, CORIO_HTTP_GET, "/users/me", &allow), 2);
    assert_int_equal(find(s, CORIO_HTTP_GET, "/users/42", &allow), 1);
    assert_int_equal(find(s, CORIO_HTTP_GET, "/users/42?x=1", &allow), 1);
    assert_int_equal(find(s, CORIO_HTTP_GET, "/users/42/posts", &allow), 0);
    /* An empty segment is no parameter: the prefix takes it. */
    assert_int_equal(find(s, CORIO_HTTP_GET, "/users/", &allow), 0);
    assert_int_equal(find(s, CORIO_HTTP_GET, "/a/1/b/2", &allow), 4);
    assert_int_equal(find(s, CORIO_HTTP_GET, "/a//b/2", &allow), -ENOENT);
    assert_int_equal(allow, 0);
    assert_int_equal(find(s, CORIO_HTTP_GET, "/a/1/b/", &allow), -ENOENT);
    assert_int_equal(find(s, CORIO_HTTP_GET, "/a/1/c/2", &allow), -ENOENT);
    /* HEAD goes to GET routes; the method picks among routes for one path. */
    assert_int_equal(find(s, CORIO_HTTP_HEAD, "/users/42", &allow), 1);
    assert_int_equal(find(s, CORIO_HTTP_DELETE, "/users/42", &allow), 3);
    assert_int_equal(find(s, CORIO_HTTP_DELETE, "/users/me", &allow), 3);
    /* 405: Allow gathers the methods of every tier that takes the path. */
    assert_int_equal(find(s, CORIO_HTTP_POST, "/users/42", &allow), -ENOENT);
    assert_int_equal(allow, BIT(GET) | BIT(HEAD) | BIT(DELETE));
    assert_int_equal(find(s, CORIO_HTTP_POST, "/files/x", &allow), -ENOENT);
    assert_int_equal(allow, BIT(GET) | BIT(HEAD) | BIT(PUT));
    assert_int_equal(find(s, CORIO_HTTP_POST, "/nothing", &allow), -ENOENT);
    assert_int_equal(allow, 0);
    /* A rest parameter takes the rest, empty or with slashes, but needs its segment. */
    assert_int_equal(find(s, CORIO_HTTP_GET, "/files/", &allow), 5);
    assert_int_equal(find(s, CORIO_HTTP_GET, "/files/a/b/c.txt", &allow), 5);
    assert_int_equal(find(s, CORIO_HTTP_PUT, "/files/a", &allow), 6);
    assert_int_equal(find(s, CORIO_HTTP_GET, "/files", &allow), -ENOENT);
    /* The absolute form routes by its path. */
    assert_int_equal(find(s, CORIO_HTTP_GET, "http://h.example/users/7", &allow), 1);
    /* Patterns that break the rules. */
    static const char *const bad[] = {
        "/u/:",    "/u/:id/:id", "/u/:i-d",  "/u/:id/*",
        "/u//:id", "/u/:id/",    "/f/*p/:x", "/u/:a/:b/:c/:d/:e/:f/:g/:h/:i",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (corio_http_route(s, "GET", bad[i], h_name, "bad") != -EINVAL)
            fail_msg("pattern %s was taken", bad[i]);
    }
    assert_int_equal(find(s, CORIO_HTTP_GET, "/u/x", &allow), -ENOENT);
    /* Many exact routes: each found through the table, in the order added for one path. */
    char path[32];
    for (int i = 0; i < 40; i++) {
        snprintf(path, sizeof(path), "/many/%d", i);
        assert_int_equal(corio_http_route(s, i % 2 ? "POST" : "GET", path, h_name, "m"), 0);
    }
    for (int i = 0; i < 40; i++) {
        snprintf(path, sizeof(path), "/many/%d", i);
        assert_int_equal(find(s, i % 2 ? CORIO_HTTP_POST : CORIO_HTTP_GET, path, &allow), 9 + i);
    }
    assert_int_equal(corio_http_route(s, "PUT", "/many/3", h_name, "m"), 0);
    assert_int_equal(find(s, CORIO_HTTP_PUT, "/many/3", &allow), 49);
    assert_int_equal(find(s, CORIO_HTTP_GET, "/many/3", &allow), -ENOENT);
    assert_int_equal(allow, BIT(POST) | BIT(PUT));
    corio_http_server_free(s);
}

static void test_http_router_mount_args(void **state)
{
    (void)state;
    struct corio_http_server *s;
    assert_int_equal(corio_http_server_new(&s, NULL), 0);
    assert_int_equal(corio_http_mount(s, "/static", "/"), -EINVAL);
    assert_int_equal(corio_http_mount(s, "static/", "/"), -EINVAL);
    assert_int_equal(corio_http_mount(s, "/a/*/", "/"), -EINVAL);
    assert_int_equal(corio_http_mount(s, "/a/:b/", "/"), -EINVAL);
    assert_int_equal(corio_http_mount(s, "/s/", "/nonexistent-dir-of-corio"), -ENOENT);
    assert_int_equal(corio_http_hook(s, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(corio_http_mount(s, "/s/", "/"), 0);
    unsigned allow;
    assert_int_equal(find(s, CORIO_HTTP_HEAD, "/s/etc", &allow), 0);
    assert_int_equal(find(s, CORIO_HTTP_POST, "/s/etc", &allow), -ENOENT);
    assert_int_equal(allow, BIT(GET) | BIT(HEAD));
    corio_http_server_free(s);
}

/* ---- a server and its client ----------------------------------------------------------------- */

struct env {
    struct corio_http_server *s;
    int lfd;
    uint16_t port;
    char dir[256]; /* the mount's directory */
    void (*scenario)(struct env *e);
    corio_id server_co;
    int serve_ret;
};

/* One response as the client read it. */
struct reply {
    int status;
    char head[2048]; /* NUL-terminated */
    size_t head_len;
    char body[2048]; /* NUL-terminated */
    size_t body_len;
};

struct client {
    int fd;
    char buf[8192]; /* received, not yet consumed: [0, len) */
    size_t len;
};

/* The value of header @name in @r's head into @out, or "" when it has none. */
static const char *hdr(const struct reply *r, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *l = strstr(r->head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
        const char *f = l + 2;
        if (strncasecmp(f, name, nl) == 0 && f[nl] == ':') {
            const char *v = f + nl + 1;
            v += strspn(v, " ");
            snprintf(out, cap, "%.*s", (int)strcspn(v, "\r"), v);
            break;
        }
    }
    return out;
}

/* Reads until the buffer holds @want bytes. Returns whether it does. */
static bool fill(struct client *c, size_t want)
{
    while (c->len < want) {
        ssize_t n = corio_recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0, T_DL(BOUND_MS));
        if (n <= 0)
            return false;
        c->len += (size_t)n;
    }
    return true;
}

/* Reads one response to a request that was (@head_req) or was not a HEAD. Returns whether it
 * came whole. */
static bool read_reply(struct client *c, struct reply *r, bool head_req)
{
    memset(r, 0, sizeof(*r));
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4))) {
        if (c->len == sizeof(c->buf) || !fill(c, c->len + 1))
            return false;
    }
    r->head_len = (size_t)(end + 4 - c->buf);
    if (r->head_len >= sizeof(r->head))
        return false;
    memcpy(r->head, c->buf, r->head_len);
    r->status = atoi(r->head + 9);
    char v[32];
    size_t blen = head_req ? 0 : strtoul(hdr(r, "Content-Length", v, sizeof(v)), NULL, 10);
    if (blen >= sizeof(r->body) || !fill(c, r->head_len + blen))
        return false;
    memcpy(r->body, c->buf + r->head_len, blen);
    r->body_len = blen;
    memmove(c->buf, c->buf + r->head_len + blen, c->len - r->head_len - blen);
    c->len -= r->head_len + blen;
    return true;
}

/* Sends "@method @target HTTP/1.1" with @extra header lines and reads the response into @r.
 * Returns whether it came, with the status @status. */
static bool ask_(struct client *c, const char *method, const char *target, const char *extra,
                 struct reply *r, int status, const char *file, int line)
{
    char req[1024];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: t\r\n%s\r\n", method, target,
                     extra ? extra : "");
    if (!t_expect_(corio_send_all(c->fd, req, (size_t)n, NULL, T_DL(BOUND_MS)) == n, "send", file,
                   line))
        return false;
    if (!t_expect_(read_reply(c, r, strcmp(method, "HEAD") == 0), "a whole response", file, line))
        return false;
    char msg[2300];
    snprintf(msg, sizeof(msg), "%s %s: status %d, want %d; body %s", method, target, r->status,
             status, r->body);
    return t_expect_(r->status == status, msg, file, line);
}
#define ASK(c, m, t, extra, r, status) ask_(c, m, t, extra, r, status, __FILE__, __LINE__)

/* Expects body @want in @r. */
static bool body_is_(const struct reply *r, const char *want, const char *file, int line)
{
    char msg[2300];
    snprintf(msg, sizeof(msg), "body \"%s\", want \"%s\"", r->body, want);
    return t_expect_(strcmp(r->body, want) == 0, msg, file, line);
}
#define BODY_IS(r, want) body_is_(r, want, __FILE__, __LINE__)

static int serve_main(void *p)
{
    struct env *e = p;
    e->serve_ret = corio_http_serve(e->s, e->lfd);
    return 0;
}

static struct client cl; /* the scenarios' client: its buffer is too large for a stack */

static bool connect_client(struct env *e, struct client *c)
{
    c->len = 0;
    c->fd = corio_dial_tcp("127.0.0.1", e->port, T_DL(BOUND_MS));
    return T_EXPECT(c->fd >= 0);
}

/* The server in a coroutine of its own, the scenario in this one, under a watchdog; then the
 * server is cancelled and awaited. The scenario starts with cl connected and may reconnect it. */
static int env_main(void *p)
{
    struct env *e = p;
    corio_id wd = t_watchdog_spawn(WATCHDOG_MS);
    if (T_EXPECT_EQ(corio_spawn(&e->server_co, NULL, serve_main, e), 0)) {
        if (connect_client(e, &cl)) {
            e->scenario(e);
            if (cl.fd >= 0)
                corio_close(cl.fd);
        }
        T_EXPECT_EQ(corio_cancel(e->server_co), 0);
        T_EXPECT_EQ(corio_join(e->server_co, NULL, T_DL(BOUND_MS)), 0);
    }
    t_watchdog_end(wd);
    return 0;
}

/* Writes @len bytes of @data to the file @name below @dir. */
static void put_file(const char *dir, const char *name, const char *data)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
    close(fd);
}

/* Runs @fn as the client of a server with add_routes' routes, a mount of a directory with a few
 * files at /static/, and the hooks (a, A), (auth, B). */
static void run(void **state, void (*fn)(struct env *e))
{
    struct env e;
    memset(&e, 0, sizeof(e));
    e.scenario = fn;
    assert_int_equal(t_mkdtemp(e.dir, sizeof(e.dir)), 0);
    char sub[300];
    snprintf(sub, sizeof(sub), "%s/sub", e.dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    put_file(e.dir, "hello.txt", "hello, static\n");
    put_file(e.dir, "sub/index.html", "<p>index</p>\n");
    assert_int_equal(corio_http_server_new(&e.s, NULL), 0);
    add_routes(e.s);
    assert_int_equal(corio_http_mount(e.s, "/static/", e.dir), 0);
    assert_int_equal(corio_http_hook(e.s, hook_a, after_a, NULL), 0);
    assert_int_equal(corio_http_hook(e.s, hook_auth, after_b, NULL), 0);
    e.lfd = corio_listen_tcp("127.0.0.1", 0, 64, 0);
    assert_true(e.lfd >= 0);
    e.port = (uint16_t)corio_local_port(e.lfd);
    memset(&seen, 0, sizeof(seen));
    int ret = t_run1(*state, env_main, &e);
    close(e.lfd);
    corio_http_server_free(e.s);
    char path[512];
    snprintf(path, sizeof(path), "%s/index.html", sub);
    unlink(path);
    rmdir(sub);
    t_rmtree(e.dir);
    t_expect_ok();
    assert_int_equal(ret, 0);
    assert_int_equal(e.serve_ret, -ECANCELED);
}

/* ---- scenarios ------------------------------------------------------------------------------- */

static void sc_params(struct env *e)
{
    struct reply r;
    if (ASK(&cl, "GET", "/users/42", NULL, &r, 200))
        BODY_IS(&r, "id=42;");
    if (ASK(&cl, "GET", "/a/one/b/two?q=1", NULL, &r, 200))
        BODY_IS(&r, "x=one;y=two;z=-;");
    /* Percent-decoded, in a copy of their own; the head keeps the raw bytes. */
    if (ASK(&cl, "GET", "/users/J%C3%BCrgen%20M", NULL, &r, 200))
        BODY_IS(&r, "id=J\xc3\xbcrgen M;");
    T_EXPECT(strcmp(seen.param, "J\xc3\xbcrgen M") == 0);
    if (ASK(&cl, "GET", "/a/%41/b/x%2bx", NULL, &r, 200))
        BODY_IS(&r, "x=A;y=x+x;z=-;");
    if (ASK(&cl, "GET", "/files/a/b%20c.txt", NULL, &r, 200))
        BODY_IS(&r, "path=a/b c.txt;");
    if (ASK(&cl, "GET", "/files/", NULL, &r, 200))
        BODY_IS(&r, "path=;");
    /* Precedence: exact, then pattern, then prefix. */
    if (ASK(&cl, "GET", "/users/me", NULL, &r, 200))
        BODY_IS(&r, "me");
    if (ASK(&cl, "GET", "/users/42/x", NULL, &r, 200))
        BODY_IS(&r, "prefix");
    if (ASK(&cl, "GET", "/users/", NULL, &r, 200))
        BODY_IS(&r, "prefix");
    /* An encoded '/' is refused and the connection stays; a bad escape or a NUL is a bad
     * request, which closes it. */
    ASK(&cl, "GET", "/users/a%2Fb", NULL, &r, 403);
    ASK(&cl, "GET", "/users/a%zz", NULL, &r, 400);
    T_EXPECT(!fill(&cl, cl.len + 1));
    corio_close(cl.fd);
    if (!connect_client(e, &cl))
        return;
    ASK(&cl, "GET", "/users/a%00", NULL, &r, 400);
    T_EXPECT(!fill(&cl, cl.len + 1));
}

static void test_http_router_params(void **state)
{
    run(state, sc_params);
}

static void sc_not_found(struct env *e)
{
    (void)e;
    struct reply r;
    char v[128];
    ASK(&cl, "GET", "/nothing", NULL, &r, 404);
    ASK(&cl, "GET", "/a//b/2", NULL, &r, 404);
    if (ASK(&cl, "POST", "/users/42", NULL, &r, 405))
        T_EXPECT(strcmp(hdr(&r, "Allow", v, sizeof(v)), "GET, HEAD, DELETE") == 0);
    if (ASK(&cl, "POST", "/files/x/y", NULL, &r, 405))
        T_EXPECT(strcmp(hdr(&r, "Allow", v, sizeof(v)), "GET, HEAD, PUT") == 0);
    if (ASK(&cl, "POST", "/static/hello.txt", NULL, &r, 405))
        T_EXPECT(strcmp(hdr(&r, "Allow", v, sizeof(v)), "GET, HEAD") == 0);
    if (ASK(&cl, "DELETE", "/users/me", NULL, &r, 200))
        BODY_IS(&r, "deleted");
    /* HEAD by the GET route: the head of the GET response, no body. */
    if (ASK(&cl, "HEAD", "/users/42", NULL, &r, 200))
        T_EXPECT(strcmp(hdr(&r, "Content-Length", v, sizeof(v)), "6") == 0);
    ASK(&cl, "GET", "/plaintext", NULL, &r, 200);
}

static void test_http_router_not_found(void **state)
{
    run(state, sc_not_found);
}

static void sc_mount(struct env *e)
{
    (void)e;
    struct reply r;
    char v[256];
    if (ASK(&cl, "GET", "/static/hello.txt", NULL, &r, 200))
        BODY_IS(&r, "hello, static\n");
    if (ASK(&cl, "HEAD", "/static/hello.txt?v=1", NULL, &r, 200))
        T_EXPECT(r.body_len == 0 && strcmp(hdr(&r, "Content-Length", v, sizeof(v)), "14") == 0);
    if (ASK(&cl, "GET", "/static/sub/", NULL, &r, 200))
        BODY_IS(&r, "<p>index</p>\n");
    /* A directory without its slash: sent to the slash form, prefix and all. */
    if (ASK(&cl, "GET", "/static/sub", NULL, &r, 301))
        T_EXPECT(strcmp(hdr(&r, "Location", v, sizeof(v)), "/static/sub/") == 0);
    ASK(&cl, "GET", "/static/missing.txt", NULL, &r, 404);
    /* Out of the mount's directory: refused, encoded or not; the connection stays. */
    ASK(&cl, "GET", "/static/../hello.txt", NULL, &r, 403);
    ASK(&cl, "GET", "/static/sub/../../etc/passwd", NULL, &r, 403);
    ASK(&cl, "GET", "/static/%2e%2e/x", NULL, &r, 403);
    ASK(&cl, "GET", "/static/..%2fx", NULL, &r, 403);
    /* The mount is below /static/ only. */
    ASK(&cl, "GET", "/static", NULL, &r, 404);
    ASK(&cl, "GET", "/hello.txt", NULL, &r, 404);
}

static void test_http_router_mount(void **state)
{
    run(state, sc_mount);
}

static void sc_hooks(struct env *e)
{
    (void)e;
    struct reply r;
    /* Before-hooks in the order added, after-hooks in the reverse order, for every request. */
    seen.norder = 0;
    if (ASK(&cl, "GET", "/users/7", NULL, &r, 200))
        T_EXPECT(strcmp(seen.order, "abBA") == 0);
    T_EXPECT_EQ(seen.status, 200);
    T_EXPECT_EQ(seen.bytes, r.head_len + r.body_len);
    T_EXPECT(strcmp(seen.param, "7") == 0);
    /* The auth hook answers 401 and stops the request: no handler, the after-hooks see it. */
    seen.norder = 0;
    if (ASK(&cl, "GET", "/private/data", NULL, &r, 401))
        BODY_IS(&r, "no\n");
    T_EXPECT(strcmp(seen.order, "abBA") == 0);
    T_EXPECT_EQ(seen.status, 401);
    T_EXPECT_EQ(seen.bytes, r.head_len + r.body_len);
    if (ASK(&cl, "GET", "/private/data", "Authorization: Basic eDp5\r\n", &r, 200))
        BODY_IS(&r, "secret");
    /* 404, 405, a mount's file and a HEAD all pass the hooks, with what they sent. */
    static const struct {
        const char *method, *target;
        int status;
    } cases[] = {
        {"GET", "/nothing", 404},          {"POST", "/users/1", 405},
        {"GET", "/static/hello.txt", 200}, {"HEAD", "/static/hello.txt", 200},
        {"GET", "/users/a%2Fb", 403},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        seen.norder = 0;
        ASK(&cl, cases[i].method, cases[i].target, NULL, &r, cases[i].status);
        T_EXPECT_EQ(seen.status, cases[i].status);
        T_EXPECT_EQ(seen.bytes, r.head_len + r.body_len);
        /* A parameter that does not decode is answered before the before-hooks. */
        T_EXPECT(strcmp(seen.order, cases[i].status == 403 ? "BA" : "abBA") == 0);
    }
}

static void test_http_router_hooks(void **state)
{
    run(state, sc_hooks);
}

#ifndef NO_MALLOC_COUNT
/* The requests of the allocation check: every kind of match, decoding, a mount and a hook's
 * answer, on one connection. */
static const struct {
    const char *method, *target;
    int status;
} rounds[] = {
    {"GET", "/plaintext", 200},         {"GET", "/users/42", 200},
    {"GET", "/users/a%20b", 200},       {"GET", "/a/1/b/2", 200},
    {"GET", "/files/x/y", 200},         {"GET", "/users/9/z", 200},
    {"POST", "/users/1", 405},          {"GET", "/nothing", 404},
    {"GET", "/private/data", 401},      {"GET", "/static/hello.txt", 200},
    {"HEAD", "/static/hello.txt", 200},
};

static void sc_no_alloc(struct env *e)
{
    (void)e;
    struct reply r;
    /* The first round warms what is made once per connection or per loop. */
    unsigned long before = 0;
    for (int round = 0; round < 3; round++) {
        if (round == 1)
            before = atomic_load(&n_allocs);
        for (size_t i = 0; i < sizeof(rounds) / sizeof(rounds[0]); i++)
            ASK(&cl, rounds[i].method, rounds[i].target, NULL, &r, rounds[i].status);
    }
    unsigned long after = atomic_load(&n_allocs);
    char msg[128];
    snprintf(msg, sizeof(msg), "%lu allocations in %zu routed requests", after - before,
             2 * sizeof(rounds) / sizeof(rounds[0]));
    t_expect_(after == before, msg, __FILE__, __LINE__);
}
#endif

static void test_http_router_no_alloc(void **state)
{
#ifdef NO_MALLOC_COUNT
    (void)state;
    print_message("SKIP: a sanitizer's allocator runs here, which the malloc counter cannot "
                  "replace\n");
    skip();
#else
    if (t_on_valgrind()) {
        /* Valgrind puts its allocator in the place of the program's own malloc as well. */
        print_message("SKIP: valgrind's allocator replaces the malloc counter; the other builds "
                      "count\n");
        skip();
    }
    /* The counter counts: a call that allocates moves it. The pointer is volatile, or an
     * optimiser (clang at -O2) may drop the pair of calls as a whole. */
    unsigned long n0 = atomic_load(&n_allocs);
    char *volatile p = strdup("x");
    free(p);
    assert_true(atomic_load(&n_allocs) > n0);
    run(state, sc_no_alloc);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_GUARD_TEST(test_http_router_table),       T_GUARD_TEST(test_http_router_mount_args),
        T_LOOP_FDS_TEST(test_http_router_params),   T_LOOP_FDS_TEST(test_http_router_not_found),
        T_LOOP_FDS_TEST(test_http_router_mount),    T_LOOP_FDS_TEST(test_http_router_hooks),
        T_LOOP_FDS_TEST(test_http_router_no_alloc),
    };
    return T_RUN_TESTS(tests);
}
