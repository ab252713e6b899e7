/* The parser's declarations are public: include/corio/http.h. */
#ifndef CORIO_HTTP_PARSER_H
#define CORIO_HTTP_PARSER_H
#include <corio/http.h>
#endif
