#include "resample_kernels.h"

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

static inline __m128i finish(__m128i high, __m128i low) {
    __m128i sum = _mm_add_epi32(_mm_add_epi32(_mm_slli_epi32(high, 8), low), _mm_set1_epi32(ROUNDING));
    return _mm_srai_epi32(sum, PRECISION_BITS);
}

static void horizontal_rgbx_sse2(const uint8_t *input, size_t input_stride, uint8_t *output,
                                 size_t output_stride, int rows, int output_width,
                                 const int32_t *starts, const int32_t *weights, int taps) {
    const __m128i zero = _mm_setzero_si128();
    for (int row = 0; row < rows; row++) {
        const uint8_t *in = input + (size_t)row * input_stride;
        uint8_t *out = output + (size_t)row * output_stride;
        for (int x = 0; x < output_width; x++) {
            const uint8_t *pixel = in + (size_t)starts[x] * 4;
            const int32_t *w = weights + (size_t)x * taps;
            __m128i high = zero, low = zero;
            int t = 0;
            for (; t + 1 < taps; t += 2) {
                __m128i two = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(pixel + t * 4)), zero);
                /* r0 r1 g0 g1 b0 b1 x0 x1: the two taps of each channel side by side */
                __m128i pairs = _mm_unpacklo_epi16(two, _mm_srli_si128(two, 8));
                high = _mm_add_epi32(high, _mm_madd_epi16(pairs, _mm_set1_epi32(pack_pair(w[t] >> 8, w[t + 1] >> 8))));
                low = _mm_add_epi32(low, _mm_madd_epi16(pairs, _mm_set1_epi32(pack_pair(w[t] & 255, w[t + 1] & 255))));
            }
            if (t < taps) {
                int32_t last;
                memcpy(&last, pixel + t * 4, 4);
                __m128i one = _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(last), zero), zero);
                high = _mm_add_epi32(high, _mm_madd_epi16(one, _mm_set1_epi32(pack_pair(w[t] >> 8, 0))));
                low = _mm_add_epi32(low, _mm_madd_epi16(one, _mm_set1_epi32(pack_pair(w[t] & 255, 0))));
            }
            __m128i value = finish(high, low);
            value = _mm_packus_epi16(_mm_packs_epi32(value, value), value);
            int32_t packed = _mm_cvtsi128_si32(value);
            memcpy(out + (size_t)x * 4, &packed, 4);
        }
    }
}

static void vertical_sse2(const uint8_t *input, size_t input_stride, uint8_t *output,
                          size_t output_stride, int output_rows, int row_bytes,
                          const int32_t *starts, const int32_t *weights, int taps) {
    const __m128i zero = _mm_setzero_si128();
    int vector_bytes = row_bytes & ~7;
    for (int y = 0; y < output_rows; y++) {
        const uint8_t *first = input + (size_t)starts[y] * input_stride;
        const int32_t *w = weights + (size_t)y * taps;
        uint8_t *out = output + (size_t)y * output_stride;
        for (int i = 0; i < vector_bytes; i += 8) {
            __m128i high0 = zero, high1 = zero, low0 = zero, low1 = zero;
            int t = 0;
            for (; t + 1 < taps; t += 2) {
                __m128i a = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(first + (size_t)t * input_stride + i)), zero);
                __m128i b = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(first + (size_t)(t + 1) * input_stride + i)), zero);
                __m128i pairs0 = _mm_unpacklo_epi16(a, b);
                __m128i pairs1 = _mm_unpackhi_epi16(a, b);
                __m128i wh = _mm_set1_epi32(pack_pair(w[t] >> 8, w[t + 1] >> 8));
                __m128i wl = _mm_set1_epi32(pack_pair(w[t] & 255, w[t + 1] & 255));
                high0 = _mm_add_epi32(high0, _mm_madd_epi16(pairs0, wh));
                high1 = _mm_add_epi32(high1, _mm_madd_epi16(pairs1, wh));
                low0 = _mm_add_epi32(low0, _mm_madd_epi16(pairs0, wl));
                low1 = _mm_add_epi32(low1, _mm_madd_epi16(pairs1, wl));
            }
            if (t < taps) {
                __m128i a = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(first + (size_t)t * input_stride + i)), zero);
                __m128i pairs0 = _mm_unpacklo_epi16(a, zero);
                __m128i pairs1 = _mm_unpackhi_epi16(a, zero);
                __m128i wh = _mm_set1_epi32(pack_pair(w[t] >> 8, 0));
                __m128i wl = _mm_set1_epi32(pack_pair(w[t] & 255, 0));
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
        horizontal_rgbx_sse2(input, input_stride, output, output_stride, rows, output_width,
                             starts, weights, taps);
        return;
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
        vertical_sse2(input, input_stride, output, output_stride, output_rows, row_bytes,
                      starts, weights, taps);
        return;
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
