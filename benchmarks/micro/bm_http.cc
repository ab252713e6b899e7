/* The HTTP parser's hot calls, one item each, measured over caller memory with no I/O.
 *
 * Items, and what one is:
 * - BM_http_parse_request: one parse of a 207-byte browser-like GET head (six fields), whole,
 *   as a server parses a head that arrived in one read. Bytes are head bytes.
 * - BM_http_chunked_decode: one 64 KiB body sent as 16 chunks of 4 KiB, fed in 16 KiB pieces
 *   (a server's default buffer). Each piece is first copied from a pristine encoded body into the
 *   work buffer, as a read would put it there, because the decoder works in place and changes its
 *   input. Bytes are encoded bytes.
 * - BM_http_chunked_copy: the same copies alone, so that the summary can show the decoder's own
 *   share (decode minus copy).
 * - BM_http_format_response: one response head of a static file (200, Date from a cached string,
 *   Content-Type, Content-Length, Last-Modified formatted from a time_t, keep-alive), as
 *   corio-httpd writes it. Bytes are head bytes.
 * - BM_http_route/<case>: one match of a request against a server's table of 20 routes (10
 *   exact paths, 6 patterns with parameters, 4 prefixes and rest patterns), as the server matches
 *   each request before its handler (corio_http_route_find: the same code, parameters captured,
 *   not decoded). The cases: exact "GET /plaintext"; param "GET /orgs/corio/repos/engine", the
 *   fifth pattern with two parameters; prefix "GET /api/v2/things/1", the last prefix route after
 *   every pattern missed; miss "GET /nope/x", a 404 that tries every tier.
 * Every benchmark checks its result once before the timed loop and skips with an error if the call
 * fails, so a broken parser cannot look fast.
 *
 * No RATIO lines: the figures are compared between builds (old against new code), not against a
 * baseline in the same binary; main() prints the medians for that.
 */
#include "bm_common.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "corio/http.h"

namespace
{

const char k_request[] = "GET /app.js?v=3 HTTP/1.1\r\n"
                         "Host: example.com\r\n"
                         "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0\r\n"
                         "Accept: */*\r\n"
                         "Accept-Language: en-US,en\r\n"
                         "Accept-Encoding: gzip, br\r\n"
                         "Connection: keep-alive\r\n"
                         "\r\n";

void BM_http_parse_request(benchmark::State &state)
{
    const size_t len = sizeof(k_request) - 1;
    struct corio_http_header headers[CORIO_HTTP_DEFAULT_MAX_HEADERS];
    struct corio_http_request req;
    struct corio_http_parser p;

    corio_http_parser_init(&p);
    if (corio_http_parse_request(&p, k_request, len, nullptr, &req, headers,
                                 CORIO_HTTP_DEFAULT_MAX_HEADERS) != (ssize_t)len) {
        state.SkipWithError("the request does not parse whole");
        return;
    }
    for (auto _ : state) {
        corio_http_parser_init(&p);
        benchmark::DoNotOptimize(corio_http_parse_request(&p, k_request, len, nullptr, &req,
                                                          headers, CORIO_HTTP_DEFAULT_MAX_HEADERS));
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * (int64_t)len);
}
BENCHMARK(BM_http_parse_request);

constexpr size_t k_body = 64 * 1024;  /* decoded payload bytes */
constexpr size_t k_chunk = 4 * 1024;  /* payload bytes per chunk */
constexpr size_t k_piece = 16 * 1024; /* input bytes per decode call */

/* The encoded body: 16 chunks of k_chunk bytes, then the last chunk and an empty trailer. */
std::vector<char> chunked_body()
{
    std::vector<char> in;
    char line[16];
    for (size_t done = 0; done < k_body; done += k_chunk) {
        int n = snprintf(line, sizeof(line), "%zx\r\n", k_chunk);
        in.insert(in.end(), line, line + n);
        for (size_t i = 0; i < k_chunk; i++)
            in.push_back((char)('a' + (done + i) % 26));
        in.push_back('\r');
        in.push_back('\n');
    }
    static const char end[] = "0\r\n\r\n";
    in.insert(in.end(), end, end + sizeof(end) - 1);
    return in;
}

/* Decodes @in into @work piece by piece. Returns the payload bytes, or -1 if it does not end. */
long decode_body(const std::vector<char> &in, char *work)
{
    struct corio_http_chunked c;
    long payload = 0;
    corio_http_chunked_init(&c, nullptr);
    for (size_t off = 0; off < in.size(); off += k_piece) {
        size_t n = std::min(k_piece, in.size() - off);
        size_t produced, consumed;
        memcpy(work, in.data() + off, n);
        int ret = corio_http_chunked_decode(&c, work, n, &produced, &consumed);
        benchmark::DoNotOptimize(work);
        payload += (long)produced;
        if (ret == 0)
            return off + consumed == in.size() ? payload : -1;
        if (ret != -EAGAIN)
            return -1;
    }
    return -1;
}

void BM_http_chunked_decode(benchmark::State &state)
{
    const std::vector<char> in = chunked_body();
    std::vector<char> work(k_piece);

    if (decode_body(in, work.data()) != (long)k_body) {
        state.SkipWithError("the body does not decode");
        return;
    }
    for (auto _ : state)
        benchmark::DoNotOptimize(decode_body(in, work.data()));
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * (int64_t)in.size());
}
BENCHMARK(BM_http_chunked_decode);

void BM_http_chunked_copy(benchmark::State &state)
{
    const std::vector<char> in = chunked_body();
    std::vector<char> work(k_piece);

    for (auto _ : state) {
        for (size_t off = 0; off < in.size(); off += k_piece) {
            memcpy(work.data(), in.data() + off, std::min(k_piece, in.size() - off));
            benchmark::DoNotOptimize(work.data());
            benchmark::ClobberMemory();
        }
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * (int64_t)in.size());
}
BENCHMARK(BM_http_chunked_copy);

void BM_http_format_response(benchmark::State &state)
{
    struct corio_http_response r;
    char buf[512];

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.date_str = "Sun, 06 Nov 1994 08:49:37 GMT";
    r.content_type = "text/html; charset=utf-8";
    r.content_length = 48213;
    r.keep_alive = true;
    r.has_last_modified = true;
    r.last_modified = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
    ssize_t len = corio_http_format_response(buf, sizeof(buf), &r);
    if (len <= 0) {
        state.SkipWithError("the response does not format");
        return;
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(corio_http_format_response(buf, sizeof(buf), &r));
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * (int64_t)len);
}
BENCHMARK(BM_http_format_response);

int route_h(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)c;
    (void)req;
    (void)arg;
    return 0;
}

/* The benchmark's route table: a small service's, in the order an application would add it. */
const char *const k_routes[][2] = {
    {"GET", "/plaintext"},
    {"GET", "/json"},
    {"GET", "/"},
    {"GET", "/about"},
    {"POST", "/login"},
    {"POST", "/logout"},
    {"GET", "/health"},
    {"GET", "/metrics"},
    {"GET", "/api/v1/status"},
    {"GET", "/favicon.ico"},
    {"GET", "/users/:id"},
    {"DELETE", "/users/:id"},
    {"GET", "/users/:id/posts/:post"},
    {"GET", "/api/v1/items/:item"},
    {"GET", "/orgs/:org/repos/:repo"},
    {"GET", "/search/:q"},
    {"GET", "/static/*"},
    {"GET", "/files/*path"},
    {"GET", "/assets/*"},
    {"GET", "/api/v2/*rest"},
};

void BM_http_route(benchmark::State &state, const char *target, int want)
{
    struct corio_http_server *s = nullptr;
    if (corio_http_server_new(&s, nullptr) != 0) {
        state.SkipWithError("no server");
        return;
    }
    for (const auto &r : k_routes) {
        if (corio_http_route(s, r[0], r[1], route_h, nullptr) != 0) {
            state.SkipWithError("a route is refused");
            corio_http_server_free(s);
            return;
        }
    }
    const size_t len = strlen(target);
    unsigned allow;
    if (corio_http_route_find(s, CORIO_HTTP_GET, target, len, &allow) != want) {
        state.SkipWithError("the request takes another route");
        corio_http_server_free(s);
        return;
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(corio_http_route_find(s, CORIO_HTTP_GET, target, len, &allow));
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
    corio_http_server_free(s);
}
BENCHMARK_CAPTURE(BM_http_route, exact, "/plaintext", 0);
BENCHMARK_CAPTURE(BM_http_route, param, "/orgs/corio/repos/engine", 14);
BENCHMARK_CAPTURE(BM_http_route, prefix, "/api/v2/things/1", 19);
BENCHMARK_CAPTURE(BM_http_route, miss, "/nope/x", -ENOENT);

void summary()
{
    using corio_bm::median_ns;
    double parse = median_ns("BM_http_parse_request");
    double decode = median_ns("BM_http_chunked_decode");
    double copy = median_ns("BM_http_chunked_copy");
    double format = median_ns("BM_http_format_response");
    printf("  ns per item (CPU, median): parse_request %.1f, chunked_decode %.0f (of which the "
           "copy-in %.0f, the decoder %.0f), format_response %.1f\n",
           parse, decode, copy, decode - copy, format);
    printf("  ns per route match of 20 routes (CPU, median): exact %.1f, param %.1f, prefix %.1f, "
           "miss %.1f\n",
           median_ns("BM_http_route/exact"), median_ns("BM_http_route/param"),
           median_ns("BM_http_route/prefix"), median_ns("BM_http_route/miss"));
}

} // namespace

int main(int argc, char **argv)
{
    return corio_bm::run_main(argc, argv, summary);
}
