/*  qt_codec: see qt_codec.h.
*/
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "qt_codec.h"
#include "qt_selftest.h"

#define S_TRUNCATED     "state is truncated"
#define S_NOT_FINITE    "state holds a number that is not finite"
#define S_NOT_BOOLEAN   "state holds a flag that is neither 0 nor 1"
#define S_LEFT_OVER     "state has bytes after its end"

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#   define S_LITTLE_ENDIAN 1
#else
#   define S_LITTLE_ENDIAN 0
#endif

//  width bytes of value, least significant first
static void
s_store (uint8_t *bytes, uint64_t value, size_t width)
{
    for (size_t i = 0; i < width; i++)
        bytes [i] = (uint8_t) (value >> (8 * i));
}

static uint64_t
s_load (const uint8_t *bytes, size_t width)
{
    uint64_t value = 0;
    for (size_t i = 0; i < width; i++)
        value |= (uint64_t) bytes [i] << (8 * i);
    return value;
}

void
qt_codec_put_bytes (zchunk_t *out, const void *data, size_t size)
{
    if (size)
        zchunk_extend (out, data, size);
}

void
qt_codec_put_u8 (zchunk_t *out, uint8_t value)
{
    zchunk_extend (out, &value, 1);
}

void
qt_codec_put_u32 (zchunk_t *out, uint32_t value)
{
    uint8_t bytes [4];
    s_store (bytes, value, 4);
    zchunk_extend (out, bytes, sizeof bytes);
}

void
qt_codec_put_u64 (zchunk_t *out, uint64_t value)
{
    uint8_t bytes [8];
    s_store (bytes, value, 8);
    zchunk_extend (out, bytes, sizeof bytes);
}

void
qt_codec_put_f64 (zchunk_t *out, double value)
{
    uint64_t bits;
    memcpy (&bits, &value, sizeof bits);
    qt_codec_put_u64 (out, bits);
}

//  Arrays: a little-endian host already holds them in their encoding (one
//  copy; the actor's table is megabytes); another converts them in blocks
#define S_BLOCK 512

//  count words of width 4 or 8
static void
s_put_words (zchunk_t *out, const void *values, size_t count, size_t width)
{
    if (S_LITTLE_ENDIAN) {
        qt_codec_put_bytes (out, values, count * width);
        return;
    }
    uint8_t block [S_BLOCK * 8];
    for (size_t done = 0; done < count; ) {
        size_t n = count - done < S_BLOCK ? count - done : S_BLOCK;
        for (size_t i = 0; i < n; i++)
            if (width == 4)
                s_store (block + 4 * i, ((const uint32_t *) values) [done + i], 4);
            else
                s_store (block + 8 * i, ((const uint64_t *) values) [done + i], 8);
        zchunk_extend (out, block, width * n);
        done += n;
    }
}

void
qt_codec_put_u32s (zchunk_t *out, const uint32_t *values, size_t count)
{
    s_put_words (out, values, count, 4);
}

void
qt_codec_put_u64s (zchunk_t *out, const uint64_t *values, size_t count)
{
    s_put_words (out, values, count, 8);
}

void
qt_codec_put_f64s (zchunk_t *out, const double *values, size_t count)
{
    //  IEEE 754 doubles share the byte order of 64-bit integers
    qt_codec_put_u64s (out, (const uint64_t *) (const void *) values, count);
}

void
qt_codec_put_string (zchunk_t *out, const char *string)
{
    size_t length = string ? strlen (string) : 0;
    assert (length <= UINT32_MAX);
    qt_codec_put_u32 (out, (uint32_t) length);
    qt_codec_put_bytes (out, string, length);
}

bool
qt_codec_equal (zchunk_t *a, zchunk_t *b)
{
    return zchunk_size (a) == zchunk_size (b)
        && (zchunk_size (a) == 0 || memcmp (zchunk_data (a), zchunk_data (b), zchunk_size (a)) == 0);
}

void
qt_decoder_init (qt_decoder_t *self, const uint8_t *data, size_t size)
{
    self->cursor = data;
    self->end = data ? data + size : data;
    self->problem = NULL;
}

bool
qt_decoder_fail (qt_decoder_t *self, const char *problem)
{
    if (!self->problem)
        self->problem = problem;
    self->cursor = self->end;
    return false;
}

bool
qt_decoder_check (qt_decoder_t *self, bool condition, const char *problem)
{
    return condition ? true : qt_decoder_fail (self, problem);
}

bool
qt_decoder_ok (const qt_decoder_t *self)
{
    return self->problem == NULL;
}

size_t
qt_decoder_left (const qt_decoder_t *self)
{
    return self->problem ? 0 : (size_t) (self->end - self->cursor);
}

const uint8_t *
qt_decoder_take (qt_decoder_t *self, size_t size)
{
    if (self->problem)
        return NULL;
    if ((size_t) (self->end - self->cursor) < size) {
        qt_decoder_fail (self, S_TRUNCATED);
        return NULL;
    }
    const uint8_t *bytes = self->cursor;
    self->cursor += size;
    return bytes;
}

void
qt_decoder_bytes (qt_decoder_t *self, void *out, size_t size)
{
    const uint8_t *bytes = qt_decoder_take (self, size);
    if (bytes)
        memcpy (out, bytes, size);
    else
    if (size)
        memset (out, 0, size);
}

uint8_t
qt_decoder_u8 (qt_decoder_t *self)
{
    const uint8_t *bytes = qt_decoder_take (self, 1);
    return bytes ? bytes [0] : 0;
}

bool
qt_decoder_bool (qt_decoder_t *self)
{
    uint8_t value = qt_decoder_u8 (self);
    qt_decoder_check (self, value <= 1, S_NOT_BOOLEAN);
    return value == 1;
}

uint32_t
qt_decoder_u32 (qt_decoder_t *self)
{
    const uint8_t *bytes = qt_decoder_take (self, 4);
    return bytes ? (uint32_t) s_load (bytes, 4) : 0;
}

uint64_t
qt_decoder_u64 (qt_decoder_t *self)
{
    const uint8_t *bytes = qt_decoder_take (self, 8);
    return bytes ? s_load (bytes, 8) : 0;
}

double
qt_decoder_f64 (qt_decoder_t *self)
{
    uint64_t bits = qt_decoder_u64 (self);
    double value;
    memcpy (&value, &bits, sizeof value);
    return qt_decoder_check (self, isfinite (value), S_NOT_FINITE) ? value : 0;
}

void
qt_decoder_u32s (qt_decoder_t *self, uint32_t *out, size_t count)
{
    //  The length first: count comes from the bytes and may be absurd
    const uint8_t *bytes = count <= SIZE_MAX / 4 ? qt_decoder_take (self, count * 4)
                                                 : (qt_decoder_fail (self, S_TRUNCATED), NULL);
    for (size_t i = 0; bytes && i < count; i++)
        out [i] = (uint32_t) s_load (bytes + 4 * i, 4);
}

void
qt_decoder_u64s (qt_decoder_t *self, uint64_t *out, size_t count)
{
    const uint8_t *bytes = count <= SIZE_MAX / 8 ? qt_decoder_take (self, count * 8)
                                                 : (qt_decoder_fail (self, S_TRUNCATED), NULL);
    for (size_t i = 0; bytes && i < count; i++)
        out [i] = s_load (bytes + 8 * i, 8);
}

void
qt_decoder_f64s (qt_decoder_t *self, double *out, size_t count)
{
    qt_decoder_u64s (self, (uint64_t *) (void *) out, count);
    bool finite = true;
    for (size_t i = 0; qt_decoder_ok (self) && i < count; i++)
        finite &= isfinite (out [i]) != 0;
    qt_decoder_check (self, finite, S_NOT_FINITE);
}

void
qt_decoder_expect (qt_decoder_t *self, const void *data, size_t size, const char *problem)
{
    if (self->problem)
        return;
    if ((size_t) (self->end - self->cursor) < size || memcmp (self->cursor, data, size) != 0)
        qt_decoder_fail (self, problem);
    else
        self->cursor += size;
}

bool
qt_decoder_finish (qt_decoder_t *self)
{
    if (!self->problem && self->cursor != self->end)
        qt_decoder_fail (self, S_LEFT_OVER);
    return qt_decoder_ok (self);
}

void
qt_codec_test (bool verbose)
{
    if (verbose)
        printf (" * qt_codec: ");
    zchunk_t *out = zchunk_new (NULL, 0);
    qt_codec_put_u8 (out, 7);
    qt_codec_put_u32 (out, 0x01020304);
    qt_codec_put_u64 (out, 0x0102030405060708ULL);
    qt_codec_put_f64 (out, -1.5);
    const uint32_t small [3] = { 1, 2, UINT32_MAX };
    const uint64_t large [2] = { 5, UINT64_MAX };
    const double reals [2] = { 0.25, -3e300 };
    qt_codec_put_u32s (out, small, 3);
    qt_codec_put_u64s (out, large, 2);
    qt_codec_put_f64s (out, reals, 2);
    qt_codec_put_string (out, "env");
    qt_codec_put_u8 (out, 1);
    //  Little-endian whatever the host
    const uint8_t *data = zchunk_data (out);
    QT_CHECK (data [1] == 4 && data [4] == 1 && data [5] == 8 && data [12] == 1);
    size_t size = zchunk_size (out);
    QT_CHECK (size == 1 + 4 + 8 + 8 + 12 + 16 + 16 + 4 + 3 + 1);
    zchunk_t *same = zchunk_new (data, size);
    QT_CHECK (qt_codec_equal (out, same));
    zchunk_extend (same, "", 1);
    QT_CHECK (!qt_codec_equal (out, same));
    zchunk_destroy (&same);

    qt_decoder_t decoder;
    qt_decoder_init (&decoder, data, size);
    QT_CHECK (qt_decoder_u8 (&decoder) == 7);
    QT_CHECK (qt_decoder_u32 (&decoder) == 0x01020304);
    QT_CHECK (qt_decoder_u64 (&decoder) == 0x0102030405060708ULL);
    QT_CHECK (qt_decoder_f64 (&decoder) == -1.5);
    uint32_t small_back [3];
    uint64_t large_back [2];
    double reals_back [2];
    qt_decoder_u32s (&decoder, small_back, 3);
    qt_decoder_u64s (&decoder, large_back, 2);
    qt_decoder_f64s (&decoder, reals_back, 2);
    QT_CHECK (memcmp (small, small_back, sizeof small) == 0);
    QT_CHECK (memcmp (large, large_back, sizeof large) == 0);
    QT_CHECK (memcmp (reals, reals_back, sizeof reals) == 0);
    qt_decoder_expect (&decoder, "\x03\0\0\0env", 7, "wrong environment");
    QT_CHECK (qt_decoder_bool (&decoder));
    QT_CHECK (qt_decoder_finish (&decoder));

    //  Truncated: the first problem is kept, reads after it give zeros
    qt_decoder_init (&decoder, data, 3);
    QT_CHECK (qt_decoder_u8 (&decoder) == 7);
    QT_CHECK (qt_decoder_u32 (&decoder) == 0 && !qt_decoder_ok (&decoder));
    QT_CHECK (qt_decoder_u8 (&decoder) == 0 && qt_decoder_left (&decoder) == 0);
    QT_CHECK (strcmp (decoder.problem, S_TRUNCATED) == 0);
    qt_decoder_init (&decoder, data, size);
    qt_decoder_u32s (&decoder, small_back, SIZE_MAX / 2);       //  an absurd count
    QT_CHECK (!qt_decoder_ok (&decoder));
    //  Not finite, not a flag, left over, another header
    uint8_t nan [8];
    double value = NAN;
    memcpy (nan, &value, sizeof nan);
    qt_decoder_init (&decoder, nan, sizeof nan);
    QT_CHECK (qt_decoder_f64 (&decoder) == 0 && strcmp (decoder.problem, S_NOT_FINITE) == 0);
    uint8_t two = 2;
    qt_decoder_init (&decoder, &two, 1);
    qt_decoder_bool (&decoder);
    QT_CHECK (strcmp (decoder.problem, S_NOT_BOOLEAN) == 0);
    qt_decoder_init (&decoder, data, size);
    qt_decoder_u8 (&decoder);
    QT_CHECK (!qt_decoder_finish (&decoder) && strcmp (decoder.problem, S_LEFT_OVER) == 0);
    qt_decoder_init (&decoder, data, size);
    qt_decoder_expect (&decoder, "\x08", 1, "wrong header");
    QT_CHECK (strcmp (decoder.problem, "wrong header") == 0);
    qt_decoder_init (&decoder, NULL, 0);
    QT_CHECK (qt_decoder_finish (&decoder));
    zchunk_destroy (&out);
    if (verbose)
        printf ("OK\n");
}
