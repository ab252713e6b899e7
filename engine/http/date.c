/* corio http: HTTP-dates, formatted as IMF-fixdate and parsed in all three formats of RFC 9110
 * section 5.6.7, with plain calendar arithmetic (no locale, no TZ, no libc time calls). */
#include "parser.h"

#include <errno.h>
#include <string.h>

static const char day_names[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const day_long[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                        "Thursday", "Friday", "Saturday"};
static const char month_names[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Days since 1970-01-01 of a proleptic Gregorian date; exact for any int64 year in range. The
 * year is shifted to start in March so that the leap day is the last day of the year. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil(). */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static inline void put2(char *s, int v)
{
    s[0] = (char)('0' + v / 10);
    s[1] = (char)('0' + v % 10);
}

int corio_http_format_date(char *buf, size_t cap, time_t t)
{
    if (cap < CORIO_HTTP_DATE_LEN)
        return -ENOSPC;
    int64_t secs = (int64_t)t;
    int64_t days = secs / 86400, rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999)
        return -EINVAL;
    int wday = (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */

    /* "Sun, 06 Nov 1994 08:49:37 GMT" */
    memcpy(buf, day_names[wday], 3);
    memcpy(buf + 3, ", ", 2);
    put2(buf + 5, d);
    buf[7] = ' ';
    memcpy(buf + 8, month_names[m - 1], 3);
    buf[11] = ' ';
    put2(buf + 12, (int)(y / 100));
    put2(buf + 14, (int)(y % 100));
    buf[16] = ' ';
    put2(buf + 17, (int)(rem / 3600));
    buf[19] = ':';
    put2(buf + 20, (int)(rem / 60 % 60));
    buf[22] = ':';
    put2(buf + 23, (int)(rem % 60));
    memcpy(buf + 25, " GMT", 4);
    if (cap > CORIO_HTTP_DATE_LEN)
        buf[CORIO_HTTP_DATE_LEN] = '\0';
    return CORIO_HTTP_DATE_LEN;
}

/* Reads exactly @n decimal digits at @s. Returns the value or -1. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        unsigned d = (unsigned)(U8(s[i]) - '0');
        if (d > 9)
            return -1;
        v = v * 10 + (int)d;
    }
    return v;
}

/* Matches a three-letter month name. Returns 1..12 or -1. */
static int month_of(const char *s)
{
    for (int i = 0; i < 12; i++) {
        if (memcmp(s, month_names[i], 3) == 0)
            return i + 1;
    }
    return -1;
}

static bool is_day_name(const char *s)
{
    for (int i = 0; i < 7; i++) {
        if (memcmp(s, day_names[i], 3) == 0)
            return true;
    }
    return false;
}

/* Reads "hh:mm:ss" at @s into seconds of the day. Returns them or -1. */
static int time_of_day(const char *s)
{
    if (s[2] != ':' || s[5] != ':')
        return -1;
    int h = digits(s, 2), mi = digits(s + 3, 2), sec = digits(s + 6, 2);
    /* The grammar allows second 60 for a leap second; it folds into the next minute. */
    if (h < 0 || mi < 0 || sec < 0 || h > 23 || mi > 59 || sec > 60)
        return -1;
    return h * 3600 + mi * 60 + sec;
}

int corio_http_parse_date(const char *s, size_t len, time_t *out)
{
    int day, mon, year, tod;

    if (len == 29 && s[3] == ',') {
        /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
        if (!is_day_name(s) || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
            memcmp(s + 25, " GMT", 4) != 0)
            return -EINVAL;
        day = digits(s + 5, 2);
        mon = month_of(s + 8);
        year = digits(s + 12, 4);
        tod = time_of_day(s + 17);
    } else if (len == 24 && s[3] == ' ') {
        /* asctime: "Sun Nov  6 08:49:37 1994", day as 2DIGIT or SP DIGIT */
        if (!is_day_name(s) || s[7] != ' ' || s[10] != ' ' || s[19] != ' ')
            return -EINVAL;
        mon = month_of(s + 4);
        day = s[8] == ' ' ? digits(s + 9, 1) : digits(s + 8, 2);
        tod = time_of_day(s + 11);
        year = digits(s + 20, 4);
    } else {
        /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
        int wd;
        size_t n = 0;
        for (wd = 0; wd < 7; wd++) {
            n = strlen(day_long[wd]); /* a static name, not the input */
            if (len > n && memcmp(s, day_long[wd], n) == 0 && s[n] == ',')
                break;
        }
        if (wd == 7 || len != n + 24)
            return -EINVAL;
        s += n + 1;
        if (s[0] != ' ' || s[3] != '-' || s[7] != '-' || s[10] != ' ' ||
            memcmp(s + 19, " GMT", 4) != 0)
            return -EINVAL;
        day = digits(s + 1, 2);
        mon = month_of(s + 4);
        year = digits(s + 8, 2);
        if (year >= 0)
            year += year < 70 ? 2000 : 1900;
        tod = time_of_day(s + 11);
    }
    if (day < 1 || mon < 0 || year < 0 || tod < 0)
        return -EINVAL;
    static const unsigned char mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > mdays[mon - 1] || (mon == 2 && day == 29 && !leap))
        return -EINVAL;
    *out = (time_t)(days_from_civil(year, mon, day) * 86400 + tod);
    return 0;
}
