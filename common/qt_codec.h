/*  qt_codec: the fixed-width little-endian encoding of role state
    (qt_role_t snapshot/restore, the actor's checkpoints).

    Two replicas in the same state must give the same bytes, and any bytes
    (they come from the network) must decode without harm: the writer puts
    each field at its width in little-endian order, never a struct with its
    padding; the reader checks every length before it reads, keeps the
    first problem it meets, and after one returns zeros, so a decoder reads
    a whole record and looks at the outcome once.
*/
#ifndef QT_CODEC_H_INCLUDED
#define QT_CODEC_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <czmq.h>

//  Writer: appends to out (zchunk_extend)
void qt_codec_put_bytes (zchunk_t *out, const void *data, size_t size);
void qt_codec_put_u8 (zchunk_t *out, uint8_t value);
void qt_codec_put_u32 (zchunk_t *out, uint32_t value);
void qt_codec_put_u64 (zchunk_t *out, uint64_t value);
void qt_codec_put_f64 (zchunk_t *out, double value);
void qt_codec_put_u32s (zchunk_t *out, const uint32_t *values, size_t count);
void qt_codec_put_u64s (zchunk_t *out, const uint64_t *values, size_t count);
void qt_codec_put_f64s (zchunk_t *out, const double *values, size_t count);
//  A string: its length (u32), then its bytes; NULL as ""
void qt_codec_put_string (zchunk_t *out, const char *string);
//  The same bytes (states compared in tests)
bool qt_codec_equal (zchunk_t *a, zchunk_t *b);

//  Reader over [data, data + size)
typedef struct {
    const uint8_t *cursor, *end;
    const char *problem;        //  the first problem met, or NULL
} qt_decoder_t;

void qt_decoder_init (qt_decoder_t *self, const uint8_t *data, size_t size);
//  Records a problem (the first one is kept); false, for conditions
bool qt_decoder_fail (qt_decoder_t *self, const char *problem);
//  Records problem unless condition holds; returns condition
bool qt_decoder_check (qt_decoder_t *self, bool condition, const char *problem);
bool qt_decoder_ok (const qt_decoder_t *self);
size_t qt_decoder_left (const qt_decoder_t *self);
//  The next size bytes (NULL, and a problem, when fewer are left)
const uint8_t *qt_decoder_take (qt_decoder_t *self, size_t size);
void qt_decoder_bytes (qt_decoder_t *self, void *out, size_t size);
uint8_t qt_decoder_u8 (qt_decoder_t *self);
//  A u8 that must be 0 or 1 (one encoding per state)
bool qt_decoder_bool (qt_decoder_t *self);
uint32_t qt_decoder_u32 (qt_decoder_t *self);
uint64_t qt_decoder_u64 (qt_decoder_t *self);
//  Doubles must be finite. Arrays: out is left as it was when the bytes
//  are short (a count read from the bytes may be absurd)
double qt_decoder_f64 (qt_decoder_t *self);
void qt_decoder_u32s (qt_decoder_t *self, uint32_t *out, size_t count);
void qt_decoder_u64s (qt_decoder_t *self, uint64_t *out, size_t count);
void qt_decoder_f64s (qt_decoder_t *self, double *out, size_t count);
//  The next bytes are exactly these (a header): a problem otherwise
void qt_decoder_expect (qt_decoder_t *self, const void *data, size_t size, const char *problem);
//  At the end: a problem if bytes are left over. Returns qt_decoder_ok.
bool qt_decoder_finish (qt_decoder_t *self);

void qt_codec_test (bool verbose);

#endif
