#include "resample_kernels.h"

#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#define CIC_HAVE_SSE2 1
#else
#define CIC_HAVE_SSE2 0
#endif

enum { PRECISION_BITS = 22, ROUNDING = 1 << (PRECISION_BITS - 1) };

static inline uint8_t clip8(int32_t sum) {
    int32_t value = sum >> PRECISION_BITS;
    return value < 0 ? 0 : (value > 255 ? 255 : (uint8_t)value);
}

/* pmaddwd multiplies 16-bit lanes. Every weight w = high * 256 + low with 0 <= low < 256
   and |high| <= 2^15 gives w * v = (high * v) << 8 + low * v exactly; both partial sums
   fit in 32 bits, so the result is Pillow's integer. */
static int weights_fit_16bit_halves(const int32_t *weights, size_t count) {
    for (size_t i = 0; i < count; i++) {
        int32_t high = weights[i] >> 8;
        if (high > 32767 || high < -32768) {
            return 0;
        }
    }
    return 1;
}

#if CIC_HAVE_SSE2
static inline int32_t pack_pair(int32_t first, int32_t second) {
    return (int32_t)(((uint32_t)(uint16_t)second << 16) | (uint16_t)first);
}

/* For every output and every pair of taps (t, t+1), the 16-bit high halves and the low
   halves packed for pmaddwd and already broadcast to all four lanes:
   [high pair 0, high pair 1, ..., low pair 0, low pair 1, ...] per output. An odd last
   tap is paired with weight 0. Returns NULL when out of memory; free with _mm_free. */
static __m128i *pack_weight_pairs(const int32_t *weights, int outputs, int taps) {
    int pairs = (taps + 1) / 2;
    __m128i *packed = _mm_malloc(sizeof(__m128i) * (size_t)outputs * pairs * 2, 16);
    if (packed == NULL) {
        return NULL;
    }
    for (int o = 0; o < outputs; o++) {
        const int32_t *w = weights + (size_t)o * taps;
        __m128i *high = packed + (size_t)o * pairs * 2;
        __m128i *low = high + pairs;
        for (int p = 0; p < pairs; p++) {
            int32_t first = w[2 * p];
            int32_t second = 2 * p + 1 < taps ? w[2 * p + 1] : 0;
            high[p] = _mm_set1_epi32(pack_pair(first >> 8, second >> 8));
            low[p] = _mm_set1_epi32(pack_pair(first & 255, second & 255));
        }
    }
    return packed;
}

static inline __m128i finish(__m128i high, __m128i low) {
    __m128i sum = _mm_add_epi32(_mm_add_epi32(_mm_slli_epi32(high, 8), low), _mm_set1_epi32(ROUNDING));
    return _mm_srai_epi32(sum, PRECISION_BITS);
}

static int horizontal_rgbx_sse2(const uint8_t *input, size_t input_stride, uint8_t *output,
                                size_t output_stride, int rows, int output_width,
                                const int32_t *starts, const int32_t *weights, int taps) {
    const __m128i zero = _mm_setzero_si128();
    const int pairs = (taps + 1) / 2;
    const int full_pairs = taps / 2;
    __m128i *packed = pack_weight_pairs(weights, output_width, taps);
    if (packed == NULL) {
        return 0;
    }
    for (int row = 0; row < rows; row++) {
        const uint8_t *in = input + (size_t)row * input_stride;
        uint8_t *out = output + (size_t)row * output_stride;
        for (int x = 0; x < output_width; x++) {
            const uint8_t *pixel = in + (size_t)starts[x] * 4;
            const __m128i *high_weights = packed + (size_t)x * pairs * 2;
            const __m128i *low_weights = high_weights + pairs;
            __m128i high = zero, low = zero;
            int p = 0;
            for (; p + 1 < full_pairs; p += 2) {
                /* four taps from one 16-byte load */
                __m128i four = _mm_loadu_si128((const __m128i *)(pixel + p * 8));
                __m128i first = _mm_unpacklo_epi8(four, zero);
                __m128i second = _mm_unpackhi_epi8(four, zero);
                __m128i both0 = _mm_unpacklo_epi16(first, _mm_srli_si128(first, 8));
                __m128i both1 = _mm_unpacklo_epi16(second, _mm_srli_si128(second, 8));
                high = _mm_add_epi32(high, _mm_madd_epi16(both0, high_weights[p]));
                low = _mm_add_epi32(low, _mm_madd_epi16(both0, low_weights[p]));
                high = _mm_add_epi32(high, _mm_madd_epi16(both1, high_weights[p + 1]));
                low = _mm_add_epi32(low, _mm_madd_epi16(both1, low_weights[p + 1]));
            }
            for (; p < full_pairs; p++) {
                __m128i two = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(pixel + p * 8)), zero);
                /* r0 r1 g0 g1 b0 b1 x0 x1: the two taps of each channel side by side */
                __m128i both = _mm_unpacklo_epi16(two, _mm_srli_si128(two, 8));
                high = _mm_add_epi32(high, _mm_madd_epi16(both, high_weights[p]));
                low = _mm_add_epi32(low, _mm_madd_epi16(both, low_weights[p]));
            }
            if (full_pairs < pairs) {
                int32_t last;
                memcpy(&last, pixel + full_pairs * 8, 4);
                __m128i one = _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(last), zero), zero);
                high = _mm_add_epi32(high, _mm_madd_epi16(one, high_weights[full_pairs]));
                low = _mm_add_epi32(low, _mm_madd_epi16(one, low_weights[full_pairs]));
            }
            __m128i value = finish(high, low);
            value = _mm_packus_epi16(_mm_packs_epi32(value, value), value);
            int32_t bytes = _mm_cvtsi128_si32(value);
            memcpy(out + (size_t)x * 4, &bytes, 4);
        }
    }
    _mm_free(packed);
    return 1;
}

static int vertical_sse2(const uint8_t *input, size_t input_stride, uint8_t *output,
                         size_t output_stride, int output_rows, int row_bytes,
                         const int32_t *starts, const int32_t *weights, int taps) {
    const __m128i zero = _mm_setzero_si128();
    const int pairs = (taps + 1) / 2;
    int vector_bytes = row_bytes & ~7;
    __m128i *packed = pack_weight_pairs(weights, output_rows, taps);
    if (packed == NULL) {
        return 0;
    }
    for (int y = 0; y < output_rows; y++) {
        const uint8_t *first = input + (size_t)starts[y] * input_stride;
        const int32_t *w = weights + (size_t)y * taps;
        const __m128i *high_weights = packed + (size_t)y * pairs * 2;
        const __m128i *low_weights = high_weights + pairs;
        uint8_t *out = output + (size_t)y * output_stride;
        for (int i = 0; i < vector_bytes; i += 8) {
            __m128i high0 = zero, high1 = zero, low0 = zero, low1 = zero;
            int t = 0;
            for (; t + 1 < taps; t += 2) {
                __m128i a = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(first + (size_t)t * input_stride + i)), zero);
                __m128i b = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(first + (size_t)(t + 1) * input_stride + i)), zero);
                __m128i pairs0 = _mm_unpacklo_epi16(a, b);
                __m128i pairs1 = _mm_unpackhi_epi16(a, b);
                __m128i wh = high_weights[t / 2];
                __m128i wl = low_weights[t / 2];
                high0 = _mm_add_epi32(high0, _mm_madd_epi16(pairs0, wh));
                high1 = _mm_add_epi32(high1, _mm_madd_epi16(pairs1, wh));
                low0 = _mm_add_epi32(low0, _mm_madd_epi16(pairs0, wl));
                low1 = _mm_add_epi32(low1, _mm_madd_epi16(pairs1, wl));
            }
            if (t < taps) {
                __m128i a = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(first + (size_t)t * input_stride + i)), zero);
                __m128i pairs0 = _mm_unpacklo_epi16(a, zero);
                __m128i pairs1 = _mm_unpackhi_epi16(a, zero);
                __m128i wh = high_weights[t / 2];
                __m128i wl = low_weights[t / 2];
                high0 = _mm_add_epi32(high0, _mm_madd_epi16(pairs0, wh));
                high1 = _mm_add_epi32(high1, _mm_madd_epi16(pairs1, wh));
                low0 = _mm_add_epi32(low0, _mm_madd_epi16(pairs0, wl));
                low1 = _mm_add_epi32(low1, _mm_madd_epi16(pairs1, wl));
            }
            __m128i words = _mm_packs_epi32(finish(high0, low0), finish(high1, low1));
            _mm_storel_epi64((__m128i *)(out + i), _mm_packus_epi16(words, words));
        }
        for (int i = vector_bytes; i < row_bytes; i++) {
            int32_t sum = ROUNDING;
            for (int t = 0; t < taps; t++) {
                sum += (int32_t)first[(size_t)t * input_stride + i] * w[t];
            }
            out[i] = clip8(sum);
        }
    }
    _mm_free(packed);
    return 1;
}
#endif

void cic_resample_horizontal(const uint8_t *input, size_t input_stride,
                             uint8_t *output, size_t output_stride,
                             int rows, int output_width, int bytes_per_pixel,
                             const int32_t *starts, const int32_t *weights, int taps,
                             int allow_simd) {
#if CIC_HAVE_SSE2
    if (allow_simd && bytes_per_pixel == 4 &&
        weights_fit_16bit_halves(weights, (size_t)output_width * taps)) {
        if (horizontal_rgbx_sse2(input, input_stride, output, output_stride, rows, output_width,
                                 starts, weights, taps)) {
            return;
        }
    }
#else
    (void)allow_simd;
    (void)weights_fit_16bit_halves;
#endif
    for (int row = 0; row < rows; row++) {
        const uint8_t *in = input + (size_t)row * input_stride;
        uint8_t *out = output + (size_t)row * output_stride;
        for (int x = 0; x < output_width; x++) {
            const int32_t *w = weights + (size_t)x * taps;
            const uint8_t *pixel = in + (size_t)starts[x] * bytes_per_pixel;
            for (int c = 0; c < bytes_per_pixel; c++) {
                int32_t sum = ROUNDING;
                for (int t = 0; t < taps; t++) {
                    sum += (int32_t)pixel[t * bytes_per_pixel + c] * w[t];
                }
                out[x * bytes_per_pixel + c] = clip8(sum);
            }
        }
    }
}

void cic_resample_vertical(const uint8_t *input, size_t input_stride,
                           uint8_t *output, size_t output_stride,
                           int output_rows, int row_bytes,
                           const int32_t *starts, const int32_t *weights, int taps,
                           int allow_simd) {
#if CIC_HAVE_SSE2
    if (allow_simd && weights_fit_16bit_halves(weights, (size_t)output_rows * taps)) {
        if (vertical_sse2(input, input_stride, output, output_stride, output_rows, row_bytes,
                          starts, weights, taps)) {
            return;
        }
    }
#else
    (void)allow_simd;
#endif
    for (int y = 0; y < output_rows; y++) {
        const uint8_t *first = input + (size_t)starts[y] * input_stride;
        const int32_t *w = weights + (size_t)y * taps;
        uint8_t *out = output + (size_t)y * output_stride;
        for (int i = 0; i < row_bytes; i++) {
            int32_t sum = ROUNDING;
            for (int t = 0; t < taps; t++) {
                sum += (int32_t)first[(size_t)t * input_stride + i] * w[t];
            }
            out[i] = clip8(sum);
        }
    }
}
