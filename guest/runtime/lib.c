/* Freestanding string helpers and a small vsnprintf for the guest runtime. */
#include "rt.h"

void* memset(void* d, int c, size_t n)
{
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return d;
}

void* memcpy(void* d, const void* s, size_t n)
{
    void* ret = d;
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    return ret;
}

int memcmp(const void* a, const void* b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; ++i)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}

size_t strlen(const char* s)
{
    size_t n = 0;
    while (s[n])
        ++n;
    return n;
}

int strncmp(const char* a, const char* b, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        if (a[i] != b[i])
            return (unsigned char)a[i] < (unsigned char)b[i] ? -1 : 1;
        if (!a[i])
            return 0;
    }
    return 0;
}

struct out {
    char* buf;
    size_t n, len;
};

static void put(struct out* o, char c)
{
    if (o->len + 1 < o->n)
        o->buf[o->len] = c;
    ++o->len;
}

static void put_num(struct out* o, uint64_t v, unsigned base, int width, char pad, bool neg)
{
    char tmp[24];
    int i = 0;
    do {
        tmp[i++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (neg)
        tmp[i++] = '-';
    while (i < width--)
        put(o, pad);
    while (i)
        put(o, tmp[--i]);
}

/* Supports %d %i %u %x %p %s %c %% with l/ll/z length, '#' for 0x, zero padding and width. */
int rt_vsnprintf(char* buf, size_t n, const char* fmt, va_list ap)
{
    struct out o = {buf, n, 0};
    for (; *fmt; ++fmt) {
        if (*fmt != '%') {
            put(&o, *fmt);
            continue;
        }
        ++fmt;
        bool alt = false;
        char pad = ' ';
        int width = 0, lng = 0;
        if (*fmt == '#') {
            alt = true;
            ++fmt;
        }
        if (*fmt == '0') {
            pad = '0';
            ++fmt;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l' || *fmt == 'z') {
            ++lng;
            ++fmt;
        }
        switch (*fmt) {
        case 'd':
        case 'i': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
            put_num(&o, v < 0 ? (uint64_t)-v : (uint64_t)v, 10, width, pad, v < 0);
            break;
        }
        case 'u':
            put_num(&o, lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, width, pad, false);
            break;
        case 'p':
            alt = true;
            lng = 1;
            /* fall through */
        case 'x': {
            uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            if (alt) {
                put(&o, '0');
                put(&o, 'x');
            }
            put_num(&o, v, 16, width, pad, false);
            break;
        }
        case 's': {
            const char* s = va_arg(ap, const char*);
            if (!s)
                s = "(null)";
            int len = (int)strlen(s);
            while (len < width--)
                put(&o, ' ');
            while (*s)
                put(&o, *s++);
            break;
        }
        case 'c':
            put(&o, (char)va_arg(ap, int));
            break;
        case '%':
            put(&o, '%');
            break;
        default:
            put(&o, '%');
            if (*fmt)
                put(&o, *fmt);
            else
                --fmt;
            break;
        }
    }
    if (n)
        buf[o.len < n ? o.len : n - 1] = 0;
    return (int)o.len;
}

int rt_snprintf(char* buf, size_t n, const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = rt_vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return r;
}
