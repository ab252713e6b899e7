# Per-test settings for corio_add_test: set(CORIO_TEST_SETTINGS_<name> [TIMEOUT s] [LABELS ...]
# [SOURCES ...] [LIBS ...]). One line per test; tests not listed get TIMEOUT 60 and LABELS unit.
set(CORIO_TEST_SETTINGS_test_http_parser SOURCES ${PROJECT_SOURCE_DIR}/engine/http/parser.c LABELS unit memcheck)
set(CORIO_TEST_SETTINGS_test_sync TIMEOUT 60 LABELS unit memcheck)
set(CORIO_TEST_SETTINGS_test_chan TIMEOUT 120 LABELS unit memcheck)
set(CORIO_TEST_SETTINGS_test_gen TIMEOUT 60 LABELS unit memcheck)
set(CORIO_TEST_SETTINGS_test_group TIMEOUT 60 LABELS unit net memcheck)
set(CORIO_TEST_SETTINGS_test_net TIMEOUT 60 LABELS net memcheck)
set(CORIO_TEST_SETTINGS_test_net_load TIMEOUT 120 LABELS net slow)
set(CORIO_TEST_SETTINGS_test_loop TIMEOUT 60 LABELS unit threads memcheck)
set(CORIO_TEST_SETTINGS_test_coro TIMEOUT 120 LABELS unit memcheck)
set(CORIO_TEST_SETTINGS_test_future TIMEOUT 60 LABELS unit memcheck)
set(CORIO_TEST_SETTINGS_test_file TIMEOUT 60 LABELS unit memcheck)
