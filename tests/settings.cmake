# Per-test settings for corio_add_test: set(CORIO_TEST_SETTINGS_<name> [TIMEOUT s] [LABELS ...]
# [SOURCES ...] [LIBS ...]). One line per test; tests not listed get TIMEOUT 60 and LABELS unit.
set(CORIO_TEST_SETTINGS_test_http_parser SOURCES ${PROJECT_SOURCE_DIR}/engine/http/parser.c LABELS unit memcheck)
