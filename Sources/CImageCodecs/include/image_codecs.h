#ifndef CLIPD_IMAGE_CODECS_H
#define CLIPD_IMAGE_CODECS_H

#include <stddef.h>
#include <stdint.h>

/* Decoding entry points for ImageIO. libjpeg and libpng report fatal errors by
   longjmp; every setjmp/longjmp pair lives inside these C functions, so no jump
   ever crosses a Swift frame. Callers get a status code and a message. */

typedef enum {
    CIC_OK = 0,
    CIC_TRUNCATED = 1,
    CIC_CORRUPT = 2,
    CIC_TOO_LARGE = 3,
    CIC_UNSUPPORTED = 4,
    CIC_EMPTY = 5,
} cic_status;

typedef enum {
    CIC_PIXELS_GRAY = 1,   /* 1 byte per pixel */
    CIC_PIXELS_RGB = 3,    /* 4 bytes per pixel: R, G, B and one byte of padding */
    CIC_PIXELS_CMYK = 4,   /* C, M, Y, K with 0 = no ink (Adobe inversion already undone) */
} cic_pixel_layout;

typedef struct {
    /* Size stored in the file's header. */
    uint32_t source_width;
    uint32_t source_height;
    /* Size of the decoded picture (smaller than the source when DCT scaling was asked for). */
    uint32_t width;
    uint32_t height;
    /* The part of it held in `pixels` (all of it unless a region was asked for). */
    uint32_t region_x;
    uint32_t region_y;
    uint32_t region_width;
    uint32_t region_height;
    uint32_t channels;          /* cic_pixel_layout */
    uint32_t scale_denominator; /* 1, 2, 4 or 8 */
    uint32_t progressive;       /* JPEG only */
    uint32_t exif_orientation;  /* 1...8; 1 when absent or unreadable */
    /* PNG only: the 4th byte of RGB pixels is alpha (RGBA / gray+alpha PNGs), and the
       picture is one that Pillow opens in mode "P" or "1" (palette or 1-bit gray). */
    uint32_t has_alpha;
    uint32_t pillow_palette_mode;
    unsigned char *pixels;      /* malloc'd, rows packed, free with cic_free_pixels */
    /* Bytes the decoder allocated for this picture (pixels and row bookkeeping; PNG only). */
    uint64_t allocated_bytes;
} cic_image;

typedef struct {
    uint32_t width;
    uint32_t height;
    uint32_t channels;
    uint32_t progressive;
    uint32_t exif_orientation;
} cic_header;

#define CIC_MESSAGE_CAPACITY 200

/* Reads only the JPEG header (no pixel memory). */
cic_status cic_jpeg_read_header(const unsigned char *data, size_t size,
                                cic_header *header, char *message);

/* A rectangle of the decoded (scaled) picture. */
typedef struct {
    uint32_t x, y, width, height;
} cic_region;

/* Decodes a JPEG. `max_pixels` is checked against the header's dimensions before
   any pixel buffer exists. `scale_denominator` (1, 2, 4, 8) asks libjpeg to
   downscale in the DCT domain. With a `region`, only the iMCU columns covering it go
   through IDCT and colour conversion and rows above/below it are skipped (their
   entropy-coded data is still read, so truncation is still detected). The pixels of
   the region equal those of a full decode; the region actually held may be wider
   (iMCU-aligned) and is reported in `image`. */
cic_status cic_jpeg_decode(const unsigned char *data, size_t size, uint64_t max_pixels,
                           uint32_t scale_denominator, const cic_region *region,
                           cic_image *image, char *message);

/* Decodes a PNG to gray or 4-byte RGB (palettes expanded, 16-bit reduced to the high
   byte; a real alpha channel is kept in the 4th byte, tRNS is ignored as Pillow's
   convert('RGB') ignores it). With a `region` inside the picture and a non-interlaced file,
   every row is still decoded but only the region's pixels are kept (memory bounded by the
   region); the region held is reported in `image`. */
cic_status cic_png_decode(const unsigned char *data, size_t size, uint64_t max_pixels,
                          const cic_region *region, cic_image *image, char *message);

/* Decodes a WebP's first frame (still or animated) to 4-byte RGBA, as Pillow opens it. */
cic_status cic_webp_decode(const unsigned char *data, size_t size, uint64_t max_pixels,
                           cic_image *image, char *message);

/* Decodes a GIF's first frame to 4-byte RGB (palette expanded, Pillow's mode "P") or gray
   (a palette that is the identity gray ramp, Pillow's mode "L"). */
cic_status cic_gif_decode(const unsigned char *data, size_t size, uint64_t max_pixels,
                          cic_image *image, char *message);

void cic_free_pixels(unsigned char *pixels);

/* Encodes packed RGB (3 bytes per pixel, rows packed) as a baseline JFIF JPEG with the
   given quality (1...100, libjpeg's scale). On success `*output` holds `*output_size`
   malloc'd bytes; free them with cic_free_encoded. */
cic_status cic_jpeg_encode_rgb(const unsigned char *rgb, uint32_t width, uint32_t height, int quality,
                               unsigned char **output, size_t *output_size, char *message);

void cic_free_encoded(unsigned char *bytes);


#endif
