/* A real non-blocking library driven by readiness: an OpenSSL TLS handshake and an echo of
 * ECHO_LEN bytes between two coroutines on one loop, over a Unix socket pair with small buffers,
 * both SSL objects on non-blocking fds. Every SSL_ERROR_WANT_READ / WANT_WRITE is answered with a
 * wait for readiness: corio_poll on the client's side, a corio_poller on the server's. The key and
 * the self-signed certificate are made in memory (an EC key, an X509 built and signed here): no
 * files, no network. The client verifies the certificate and the host name, every echoed byte is
 * checked, and both sides end with a close_notify each way. OpenSSL is a test-only dependency
 * (tests/CMakeLists.txt leaves this test out where it is missing). */
#include "helpers.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ECHO_LEN (256u * 1024)
#define ECHO_SEED 23
#define HOST "corio.test"

/* ---- a key and a certificate, in memory ----------------------------------------------------- */

struct creds {
    EVP_PKEY *key;
    X509 *cert;
};

/* Makes a P-256 key and a certificate for HOST signed by it, valid for an hour. Returns 0, or -1
 * with OpenSSL's errors printed. */
static int creds_make(struct creds *c)
{
    c->key = EVP_EC_gen("P-256");
    c->cert = X509_new();
    if (!c->key || !c->cert)
        goto fail;
    X509_NAME *name = X509_get_subject_name(c->cert);
    if (!X509_set_version(c->cert, 2) || !ASN1_INTEGER_set(X509_get_serialNumber(c->cert), 1) ||
        !X509_gmtime_adj(X509_getm_notBefore(c->cert), -60) ||
        !X509_gmtime_adj(X509_getm_notAfter(c->cert), 3600) || !X509_set_pubkey(c->cert, c->key) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)HOST, -1, -1,
                                    0) ||
        !X509_set_issuer_name(c->cert, name) || !X509_sign(c->cert, c->key, EVP_sha256()))
        goto fail;
    return 0;
fail:
    ERR_print_errors_fp(stderr);
    return -1;
}

static void creds_free(struct creds *c)
{
    X509_free(c->cert);
    EVP_PKEY_free(c->key);
}

/* The server's context serves the certificate; the client's trusts it alone and checks it. */
static SSL_CTX *ctx_make(const struct creds *c, bool server)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!ctx)
        return NULL;
    bool ok = server ? SSL_CTX_use_certificate(ctx, c->cert) == 1 &&
                           SSL_CTX_use_PrivateKey(ctx, c->key) == 1
                     : X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), c->cert) == 1;
    if (!server)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (!ok) {
        ERR_print_errors_fp(stderr);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* ---- one side of the connection ------------------------------------------------------------- */

struct side {
    SSL *ssl;
    int fd;
    struct corio_poller *poller; /* the server waits with it; NULL: corio_poll (the client) */
    unsigned kept;               /* events the poller returned that no wait has used yet */
    unsigned waits;              /* waits for readiness */
    unsigned char buf[16384];
};

/* The events OpenSSL's wish @ssl_err (from SSL_get_error) waits for: 0 if it is no wish. */
static unsigned wish_events(int ssl_err)
{
    return ssl_err == SSL_ERROR_WANT_READ ? POLLIN : ssl_err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
}

/* Waits until @s's fd is ready for one of @want. The poller returns every event it kept,
 * whichever is waited for now: one that is not is kept here for a later wait, since it will not
 * be reported again. Returns 0 or -errno. */
static int side_wait(struct side *s, unsigned want)
{
    s->waits++;
    if (!s->poller) {
        int r = corio_poll(s->fd, want, T_BOUND);
        return r < 0 ? r : 0;
    }
    while (!(s->kept & (want | POLLERR | POLLHUP))) {
        int r = corio_poller_next(s->poller, T_BOUND);
        if (r < 0)
            return r;
        s->kept |= (unsigned)r;
    }
    s->kept &= ~want;
    return 0;
}

/* What to do after an OpenSSL call on @s returned @ret: > 0 is done (1), a wish to read or write
 * is waited for (0: call again), anything else fails (-1, with OpenSSL's errors printed; -2 for
 * SSL_ERROR_ZERO_RETURN, the peer's close_notify). */
static int side_step(struct side *s, int ret)
{
    if (ret > 0)
        return 1;
    int e = SSL_get_error(s->ssl, ret);
    if (wish_events(e))
        return T_EXPECT_EQ(side_wait(s, wish_events(e)), 0) ? 0 : -1;
    if (e == SSL_ERROR_ZERO_RETURN)
        return -2;
    fprintf(stderr, "SSL error %d (ret %d, errno %d)\n", e, ret, errno);
    ERR_print_errors_fp(stderr);
    return -1;
}

static bool side_handshake(struct side *s)
{
    int step;
    while ((step = side_step(s, SSL_do_handshake(s->ssl))) == 0)
        ;
    return T_EXPECT_EQ(step, 1);
}

/* Writes all @len bytes at @buf (SSL_write is given the same arguments again after a wish). */
static bool side_write(struct side *s, const void *buf, int len)
{
    int step;
    while ((step = side_step(s, SSL_write(s->ssl, buf, len))) == 0)
        ;
    return T_EXPECT_EQ(step, 1);
}

/* Sends its close_notify, then waits for the peer's: SSL_shutdown returns 0 once it sent its
 * own (call it again), 1 once both went. */
static bool side_shutdown(struct side *s)
{
    int r, step = 0, sent = 0;
    while ((r = SSL_shutdown(s->ssl)) != 1 && sent <= 1 && step == 0) {
        if (r == 0)
            sent++;
        else
            step = side_step(s, r);
    }
    return T_EXPECT_EQ(r, 1);
}

/* ---- the two coroutines --------------------------------------------------------------------- */

struct tls {
    SSL_CTX *sctx, *cctx;
    int sv[2];
    struct side client, server;
    size_t echoed;   /* bytes the server sent back */
    size_t verified; /* bytes the client got back, each checked */
    long verify;     /* the client's verification result */
    bool client_done, server_done;
};

/* The client: the handshake, then ECHO_LEN bytes out and back, written and read in turns so that
 * neither side's buffers fill for good, then the shutdown. */
static int client_main(void *arg)
{
    struct tls *t = arg;
    struct side *s = &t->client;
    if (!side_handshake(s))
        return -1;
    t->verify = SSL_get_verify_result(s->ssl);
    static unsigned char out[ECHO_LEN];
    t_fill(out, sizeof(out), ECHO_SEED, 0);
    size_t sent = 0;
    while (t->verified < ECHO_LEN) {
        /* What the write and the read wish for, waited for together: waiting only for the
         * write's room while the server waits for room for its echo would wait for ever. */
        unsigned want = 0;
        if (sent < ECHO_LEN) {
            int len = ECHO_LEN - sent < 4000 ? (int)(ECHO_LEN - sent) : 4000;
            int n = SSL_write(s->ssl, out + sent, len);
            if (n > 0)
                sent += (size_t)n;
            else if (!T_EXPECT((want = wish_events(SSL_get_error(s->ssl, n))) != 0))
                return -1;
        }
        int n = SSL_read(s->ssl, s->buf, sizeof(s->buf));
        if (n > 0) {
            if (!T_EXPECT_EQ(t_check(s->buf, (size_t)n, ECHO_SEED, t->verified), -1))
                return -1;
            t->verified += (size_t)n;
            continue;
        }
        unsigned rwant = wish_events(SSL_get_error(s->ssl, n));
        if (!T_EXPECT(rwant != 0) || !T_EXPECT_EQ(side_wait(s, want | rwant), 0))
            return -1;
    }
    t->client_done = side_shutdown(s);
    return 0;
}

/* The server: the handshake, then everything it reads is written back, until the client's
 * close_notify; then its own. */
static int server_main(void *arg)
{
    struct tls *t = arg;
    struct side *s = &t->server;
    struct corio_poller pl;
    if (!T_EXPECT_EQ(corio_poller_init(&pl, s->fd, POLLIN | POLLOUT), 0))
        return -1;
    s->poller = &pl;
    if (side_handshake(s)) {
        int step;
        for (;;) {
            int n = SSL_read(s->ssl, s->buf, sizeof(s->buf));
            if ((step = side_step(s, n)) == 1) {
                if (!side_write(s, s->buf, n))
                    break;
                t->echoed += (size_t)n;
            } else if (step < 0) {
                break;
            }
        }
        /* The client's close_notify ends the echo; answered with the server's own. */
        if (T_EXPECT_EQ(step, -2))
            t->server_done = side_shutdown(s);
    }
    corio_poller_fini(&pl);
    s->poller = NULL;
    return 0;
}

static void test_poll_tls_echo(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_POLL);
    struct creds c = {0};
    assert_int_equal(creds_make(&c), 0);
    struct tls *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    t->sctx = ctx_make(&c, true);
    t->cctx = ctx_make(&c, false);
    assert_non_null(t->sctx);
    assert_non_null(t->cctx);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, t->sv), 0);
    /* Small buffers: a TLS record (up to 16 KiB) does not fit, so both sides are told to wait
     * often, in the handshake and in the echo. */
    int small = 4096;
    for (int i = 0; i < 2; i++)
        assert_int_equal(setsockopt(t->sv[i], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    t->client = (struct side){.ssl = SSL_new(t->cctx), .fd = t->sv[0]};
    t->server = (struct side){.ssl = SSL_new(t->sctx), .fd = t->sv[1]};
    assert_non_null(t->client.ssl);
    assert_non_null(t->server.ssl);
    assert_int_equal(SSL_set_fd(t->client.ssl, t->sv[0]), 1);
    assert_int_equal(SSL_set_fd(t->server.ssl, t->sv[1]), 1);
    assert_int_equal(SSL_set1_host(t->client.ssl, HOST), 1);
    SSL_set_connect_state(t->client.ssl);
    SSL_set_accept_state(t->server.ssl);

    assert_int_equal(t_run2(loop, server_main, client_main, t), 0);
    print_message("  %s %s; %zu bytes echoed; waits: client %u (corio_poll), server %u (poller)\n",
                  SSL_get_version(t->client.ssl), SSL_get_cipher_name(t->client.ssl), t->echoed,
                  t->client.waits, t->server.waits);
    t_expect_ok();
    assert_int_equal(t->verify, X509_V_OK);
    assert_int_equal(t->echoed, ECHO_LEN);
    assert_int_equal(t->verified, ECHO_LEN);
    assert_true(t->client_done);
    assert_true(t->server_done);
    /* Both sides did have to wait, and were woken. */
    assert_true(t->client.waits > 0);
    assert_true(t->server.waits > 0);

    SSL_free(t->client.ssl);
    SSL_free(t->server.ssl);
    SSL_CTX_free(t->cctx);
    SSL_CTX_free(t->sctx);
    close(t->sv[0]);
    close(t->sv[1]);
    free(t);
    creds_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_LOOP_FDS_TEST(test_poll_tls_echo),
    };
    return T_RUN_TESTS(tests);
}
