#include "image_codecs.h"
#include "exif_orientation.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

typedef struct {
    const unsigned char *data;
    size_t size;
    size_t position;
    int ran_out_of_data;
    char message[CIC_MESSAGE_CAPACITY];
} png_reader;

static void read_from_memory(png_structp png, png_bytep out, png_size_t count) {
    png_reader *reader = (png_reader *)png_get_io_ptr(png);
    if (reader->size - reader->position < count) {
        reader->ran_out_of_data = 1;
        png_error(png, "PNG data ends early");
    }
    memcpy(out, reader->data + reader->position, count);
    reader->position += count;
}

static void on_png_error(png_structp png, png_const_charp text) {
    png_reader *reader = (png_reader *)png_get_error_ptr(png);
    snprintf(reader->message, CIC_MESSAGE_CAPACITY, "%s", text);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text; /* benign: bad ancillary chunks, unknown sRGB profiles */
}

cic_status cic_png_decode(const unsigned char *data, size_t size, uint64_t max_pixels,
                          const cic_region *region, cic_image *image, char *message) {
    png_reader reader = {data, size, 0, 0, {0}};
    png_structp png = NULL;
    png_infop info = NULL;
    unsigned char *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    unsigned char *volatile scratch = NULL;

    memset(image, 0, sizeof(*image));
    if (size == 0) {
        snprintf(message, CIC_MESSAGE_CAPACITY, "empty input");
        return CIC_EMPTY;
    }
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, on_png_error, on_png_warning);
    if (png == NULL) {
        snprintf(message, CIC_MESSAGE_CAPACITY, "libpng could not start");
        return CIC_TOO_LARGE;
    }
    info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        snprintf(message, CIC_MESSAGE_CAPACITY, "libpng could not start");
        return CIC_TOO_LARGE;
    }
    if (setjmp(png_jmpbuf(png))) {
        cic_status status = reader.ran_out_of_data ? CIC_TRUNCATED : CIC_CORRUPT;
        snprintf(message, CIC_MESSAGE_CAPACITY, "%s", reader.message);
        png_destroy_read_struct(&png, &info, NULL);
        free(pixels);
        free(rows);
        free(scratch);
        return status;
    }
    png_set_read_fn(png, &reader, read_from_memory);
    /* libpng's own dimension limit is 1e6; ours is the pixel count below. */
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, info);

    png_uint_32 width = png_get_image_width(png, info);
    png_uint_32 height = png_get_image_height(png, info);
    uint64_t source_pixels = (uint64_t)width * height;
    if (source_pixels > max_pixels) {
        snprintf(message, CIC_MESSAGE_CAPACITY,
                 "image is %ux%u (%llu pixels), over the limit of %llu pixels", width, height,
                 (unsigned long long)source_pixels, (unsigned long long)max_pixels);
        png_destroy_read_struct(&png, &info, NULL);
        return CIC_TOO_LARGE;
    }

    /* What Pillow's open + convert('RGB') keeps: palette colours, the high byte of
       16-bit samples, gray replicated later; alpha and tRNS are dropped. */
    png_byte color_type = png_get_color_type(png, info);
    png_byte bit_depth = png_get_bit_depth(png, info);
    int has_alpha = (color_type & PNG_COLOR_MASK_ALPHA) != 0;
    /* Only png_set_expand() style calls turn tRNS into alpha; these do not. */
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_set_palette_to_rgb(png);
    }
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) {
        png_set_expand_gray_1_2_4_to_8(png);
    }
    png_set_strip_16(png);
    if (color_type == PNG_COLOR_TYPE_GRAY_ALPHA) {
        /* Pillow resizes LA premultiplied like RGBA; as RGBA the arithmetic is the same. */
        png_set_gray_to_rgb(png);
    }
    if ((color_type & PNG_COLOR_MASK_COLOR) || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) {
        if (!has_alpha) {
            png_set_filler(png, 0xFF, PNG_FILLER_AFTER);
        }
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    png_byte channels = png_get_channels(png, info);
    if (channels != 1 && channels != 4) {
        snprintf(message, CIC_MESSAGE_CAPACITY, "unexpected PNG layout with %u channels", channels);
        png_destroy_read_struct(&png, &info, NULL);
        return CIC_UNSUPPORTED;
    }
    size_t row_bytes = png_get_rowbytes(png, info);
    if (row_bytes != (size_t)width * channels) {
        snprintf(message, CIC_MESSAGE_CAPACITY, "unexpected PNG row size");
        png_destroy_read_struct(&png, &info, NULL);
        return CIC_CORRUPT;
    }
    /* A region (non-interlaced pictures only: Adam7 passes revisit every row) keeps only its
       rows and columns; every row is still decoded, so damage anywhere is still reported. */
    uint32_t rx = 0, ry = 0, rw = width, rh = height;
    int interlaced = png_get_interlace_type(png, info) != PNG_INTERLACE_NONE;
    if (region != NULL && !interlaced && region->width > 0 && region->height > 0 &&
        region->x < width && region->y < height &&
        region->width <= width - region->x && region->height <= height - region->y) {
        rx = region->x;
        ry = region->y;
        rw = region->width;
        rh = region->height;
    }
    size_t kept_row_bytes = (size_t)rw * channels;
    if (rw == width && rh == height) {
        pixels = malloc(row_bytes * height);
        rows = malloc(sizeof(png_bytep) * height);
        if (pixels == NULL || rows == NULL) {
            snprintf(message, CIC_MESSAGE_CAPACITY, "out of memory for the decoded image");
            png_destroy_read_struct(&png, &info, NULL);
            free(pixels);
            free(rows);
            return CIC_TOO_LARGE;
        }
        image->allocated_bytes = (uint64_t)row_bytes * height + sizeof(png_bytep) * (uint64_t)height;
        for (png_uint_32 y = 0; y < height; y++) {
            rows[y] = pixels + (size_t)y * row_bytes;
        }
        png_read_image(png, rows);
    } else {
        pixels = malloc(kept_row_bytes * rh);
        scratch = malloc(row_bytes);
        if (pixels == NULL || scratch == NULL) {
            snprintf(message, CIC_MESSAGE_CAPACITY, "out of memory for the decoded image");
            png_destroy_read_struct(&png, &info, NULL);
            free(pixels);
            free(scratch);
            return CIC_TOO_LARGE;
        }
        image->allocated_bytes = (uint64_t)kept_row_bytes * rh + row_bytes;
        for (png_uint_32 y = 0; y < height; y++) {
            png_read_row(png, scratch, NULL);
            if (y >= ry && y - ry < rh) {
                memcpy(pixels + (size_t)(y - ry) * kept_row_bytes, scratch + (size_t)rx * channels, kept_row_bytes);
            }
        }
        free(scratch);
        scratch = NULL;
    }
    png_read_end(png, info);
    uint32_t orientation = 1;
    png_uint_32 exif_length = 0;
    png_bytep exif = NULL;
    if (png_get_eXIf_1(png, info, &exif_length, &exif) != 0 && exif != NULL) {
        uint32_t tagged = cic_exif_orientation_tiff(exif, exif_length);
        if (tagged != 0) {
            orientation = tagged;
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);

    image->source_width = width;
    image->source_height = height;
    image->width = width;
    image->height = height;
    image->region_x = rx;
    image->region_y = ry;
    image->region_width = rw;
    image->region_height = rh;
    image->channels = channels == 1 ? CIC_PIXELS_GRAY : CIC_PIXELS_RGB;
    image->scale_denominator = 1;
    image->exif_orientation = orientation;
    image->has_alpha = has_alpha ? 1 : 0;
    image->pillow_palette_mode =
        (color_type == PNG_COLOR_TYPE_PALETTE || (color_type == PNG_COLOR_TYPE_GRAY && bit_depth == 1)) ? 1 : 0;
    image->pixels = pixels;
    return CIC_OK;
}
