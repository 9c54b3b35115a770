#ifndef CLIPD_RESAMPLE_KERNELS_H
#define CLIPD_RESAMPLE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Fixed-point separable resampling passes with Pillow's arithmetic: each output sample is
   (2^21 + sum_t sample[start + t] * weight[t]) >> 22, clipped to 0...255. `weights` holds
   `taps` Int32 weights per output; windows never leave the input. With `allow_simd` the
   x86-64 SSE2 kernels run (same integers, split into 16-bit halves for pmaddwd). */

/* Horizontal pass over `rows` rows: output pixel x of a row reads input pixels
   starts[x] ..< starts[x] + taps. bytes_per_pixel is 1 or 4. */
void cic_resample_horizontal(const uint8_t *input, size_t input_stride,
                             uint8_t *output, size_t output_stride,
                             int rows, int output_width, int bytes_per_pixel,
                             const int32_t *starts, const int32_t *weights, int taps,
                             int allow_simd);

/* Vertical pass: output row y reads input rows starts[y] ..< starts[y] + taps; every row
   has `row_bytes` samples. */
void cic_resample_vertical(const uint8_t *input, size_t input_stride,
                           uint8_t *output, size_t output_stride,
                           int output_rows, int row_bytes,
                           const int32_t *starts, const int32_t *weights, int taps,
                           int allow_simd);

#endif
