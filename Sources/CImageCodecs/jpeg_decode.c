#include "image_codecs.h"
#include "exif_orientation.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

/* libjpeg calls error_exit on fatal errors and emit_message(-1) on recoverable
   data errors (it then substitutes zeros and carries on). We turn both into a
   status: fatal errors jump back to the setjmp in the decoding function, and the
   warnings that mean "pixels are missing or garbage" are remembered. */
typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    int reached_end_of_data;    /* JWRN_JPEG_EOF: the data ended before EOI */
    int entropy_data_starved;   /* JWRN_HIT_MARKER: a scan needed more bits than it had */
    int corrupt_scan;           /* bad Huffman code, lost restart sync, ... */
    int too_many_scans;
    char message[CIC_MESSAGE_CAPACITY];
} decoder_errors;

static void remember_message(j_common_ptr cinfo) {
    decoder_errors *errors = (decoder_errors *)cinfo->err;
    if (errors->message[0] == 0) {
        errors->base.format_message(cinfo, errors->message);
    }
}

static void on_fatal_error(j_common_ptr cinfo) {
    decoder_errors *errors = (decoder_errors *)cinfo->err;
    errors->message[0] = 0;
    errors->base.format_message(cinfo, errors->message);
    longjmp(errors->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level) {
    if (level != -1) {
        return; /* trace messages */
    }
    decoder_errors *errors = (decoder_errors *)cinfo->err;
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
        errors->reached_end_of_data = 1;
        remember_message(cinfo);
        break;
    case JWRN_HIT_MARKER:
        errors->entropy_data_starved = 1;
        remember_message(cinfo);
        break;
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
    case JWRN_BOGUS_PROGRESSION:
        errors->corrupt_scan = 1;
        remember_message(cinfo);
        break;
    default:
        /* Benign: extraneous bytes before a marker, unknown JFIF revision, bad ICC. */
        break;
    }
}

static void silence_output(j_common_ptr cinfo) { (void)cinfo; }

/* Real encoders write at most a few dozen scans; a crafted progressive file with
   thousands of tiny scans would keep a worker busy for minutes. */
enum { MAX_SCANS = 500 };

static void limit_scans(j_common_ptr cinfo) {
    if (cinfo->is_decompressor) {
        j_decompress_ptr decompressor = (j_decompress_ptr)cinfo;
        if (decompressor->input_scan_number > MAX_SCANS) {
            decoder_errors *errors = (decoder_errors *)cinfo->err;
            snprintf(errors->message, CIC_MESSAGE_CAPACITY, "more than %d scans", MAX_SCANS);
            errors->too_many_scans = 1;
            longjmp(errors->jump, 2);
        }
    }
}

static void install_error_handler(struct jpeg_decompress_struct *cinfo, decoder_errors *errors) {
    memset(errors, 0, sizeof(*errors));
    cinfo->err = jpeg_std_error(&errors->base);
    errors->base.error_exit = on_fatal_error;
    errors->base.emit_message = on_message;
    errors->base.output_message = silence_output;
}

static void copy_message(char *message, const char *text) {
    if (message) {
        snprintf(message, CIC_MESSAGE_CAPACITY, "%s", text);
    }
}

static cic_status status_for_fatal(const decoder_errors *errors) {
    int code = errors->base.msg_code;
    if (errors->too_many_scans) {
        return CIC_CORRUPT;
    }
    if (code == JERR_SOF_UNSUPPORTED || code == JERR_BAD_PRECISION || code == JERR_ARITH_NOTIMPL ||
        code == JERR_NOT_COMPILED) {
        return CIC_UNSUPPORTED; /* lossless, 12/16-bit and other JPEG variants */
    }
    if (errors->reached_end_of_data) {
        return CIC_TRUNCATED; /* the header or a table was cut off */
    }
    if (code == JERR_INPUT_EMPTY) {
        return CIC_EMPTY;
    }
    if (code == JERR_OUT_OF_MEMORY || code == JERR_IMAGE_TOO_BIG) {
        return CIC_TOO_LARGE;
    }
    return CIC_CORRUPT;
}

static uint32_t orientation_from_markers(struct jpeg_decompress_struct *cinfo) {
    for (jpeg_saved_marker_ptr marker = cinfo->marker_list; marker; marker = marker->next) {
        if (marker->marker == JPEG_APP0 + 1) {
            uint32_t orientation = cic_exif_orientation(marker->data, marker->data_length);
            if (orientation != 0) {
                return orientation;
            }
        }
    }
    return 1;
}

static uint32_t channels_for(J_COLOR_SPACE space) {
    switch (space) {
    case JCS_GRAYSCALE: return CIC_PIXELS_GRAY;
    case JCS_CMYK:
    case JCS_YCCK: return CIC_PIXELS_CMYK;
    default: return CIC_PIXELS_RGB;
    }
}

/* Shared by header reading and decoding: everything up to jpeg_read_header. */
static void begin(struct jpeg_decompress_struct *cinfo, const unsigned char *data, size_t size) {
    jpeg_create_decompress(cinfo);
    jpeg_mem_src(cinfo, data, (unsigned long)size);
    jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(cinfo, TRUE);
}

cic_status cic_jpeg_read_header(const unsigned char *data, size_t size,
                                cic_header *header, char *message) {
    struct jpeg_decompress_struct cinfo;
    decoder_errors errors;
    if (size == 0) {
        copy_message(message, "empty input");
        return CIC_EMPTY;
    }
    install_error_handler(&cinfo, &errors);
    if (setjmp(errors.jump)) {
        cic_status status = status_for_fatal(&errors);
        copy_message(message, errors.message);
        jpeg_destroy_decompress(&cinfo);
        return status;
    }
    begin(&cinfo, data, size);
    header->width = cinfo.image_width;
    header->height = cinfo.image_height;
    header->channels = channels_for(cinfo.jpeg_color_space);
    header->progressive = cinfo.progressive_mode ? 1 : 0;
    header->exif_orientation = orientation_from_markers(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return CIC_OK;
}

/* A progressive file cut between scans decodes without a starved scan, but some
   coefficients never reached full precision (Al = 0). */
static int progression_incomplete(struct jpeg_decompress_struct *cinfo) {
    if (!cinfo->progressive_mode || cinfo->coef_bits == NULL) {
        return 0;
    }
    for (int component = 0; component < cinfo->num_components; component++) {
        for (int k = 0; k < DCTSIZE2; k++) {
            if (cinfo->coef_bits[component][k] != 0) {
                return 1;
            }
        }
    }
    return 0;
}

cic_status cic_jpeg_decode(const unsigned char *data, size_t size, uint64_t max_pixels,
                           uint32_t scale_denominator, const cic_region *region,
                           cic_image *image, char *message) {
    struct jpeg_decompress_struct cinfo;
    decoder_errors errors;
    unsigned char *volatile pixels = NULL;
    unsigned char *volatile last_row = NULL;

    memset(image, 0, sizeof(*image));
    if (size == 0) {
        copy_message(message, "empty input");
        return CIC_EMPTY;
    }
    if (scale_denominator != 1 && scale_denominator != 2 && scale_denominator != 4 &&
        scale_denominator != 8) {
        copy_message(message, "scale denominator must be 1, 2, 4 or 8");
        return CIC_CORRUPT;
    }
    struct jpeg_progress_mgr progress = {0};
    progress.progress_monitor = limit_scans;
    install_error_handler(&cinfo, &errors);
    if (setjmp(errors.jump)) {
        cic_status status = status_for_fatal(&errors);
        copy_message(message, errors.message);
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(last_row);
        return status;
    }
    begin(&cinfo, data, size);
    cinfo.progress = &progress;

    uint64_t source_pixels = (uint64_t)cinfo.image_width * (uint64_t)cinfo.image_height;
    if (cinfo.image_width == 0 || cinfo.image_height == 0) {
        copy_message(message, "image has a zero dimension");
        jpeg_destroy_decompress(&cinfo);
        return CIC_CORRUPT;
    }
    if (source_pixels > max_pixels) {
        if (message) {
            snprintf(message, CIC_MESSAGE_CAPACITY,
                     "image is %ux%u (%llu pixels), over the limit of %llu pixels",
                     cinfo.image_width, cinfo.image_height,
                     (unsigned long long)source_pixels, (unsigned long long)max_pixels);
        }
        jpeg_destroy_decompress(&cinfo);
        return CIC_TOO_LARGE;
    }

    uint32_t channels = channels_for(cinfo.jpeg_color_space);
    /* RGB comes out padded to 4 bytes (RGBX) so that every colour pixel is one 32-bit
       lane in the resampling kernels; libjpeg-turbo writes the padding for free. */
    cinfo.out_color_space =
        channels == CIC_PIXELS_GRAY ? JCS_GRAYSCALE : (channels == CIC_PIXELS_CMYK ? JCS_CMYK : JCS_EXT_RGBX);
    /* Pillow's settings: accurate integer IDCT, smooth ("fancy") chroma upsampling. */
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;
    cinfo.scale_num = 1;
    cinfo.scale_denom = scale_denominator;
    jpeg_calc_output_dimensions(&cinfo);

    jpeg_start_decompress(&cinfo);
    JDIMENSION full_width = cinfo.output_width;
    JDIMENSION full_height = cinfo.output_height;
    JDIMENSION first_row = 0;
    JDIMENSION row_count = full_height;
    JDIMENSION first_column = 0;
    if (region != NULL && region->width > 0 && region->height > 0 &&
        region->x + region->width <= full_width && region->y + region->height <= full_height) {
        first_row = region->y;
        row_count = region->height;
        if (region->width < full_width) {
            /* Fancy upsampling treats the crop's right edge as the picture's edge, so the
               last column there differs from a full decode: crop one iMCU wider. */
            JDIMENSION imcu_width = (JDIMENSION)(cinfo.max_h_samp_factor * cinfo.min_DCT_scaled_size);
            JDIMENSION end = region->x + region->width + imcu_width;
            if (end > full_width) {
                end = full_width;
            }
            first_column = region->x;
            JDIMENSION width = end - region->x;
            jpeg_crop_scanline(&cinfo, &first_column, &width);
        }
    }
    size_t row_bytes = (size_t)cinfo.output_width * (channels == CIC_PIXELS_GRAY ? 1 : 4);
    pixels = malloc(row_bytes * row_count);
    if (pixels == NULL) {
        copy_message(message, "out of memory for the decoded image");
        jpeg_destroy_decompress(&cinfo);
        return CIC_TOO_LARGE;
    }
    if (first_row > 0) {
        jpeg_skip_scanlines(&cinfo, first_row);
    }
    while (cinfo.output_scanline < first_row + row_count) {
        JSAMPROW rows[8];
        int batch = 0;
        for (; batch < 8 && cinfo.output_scanline + batch < first_row + row_count; batch++) {
            rows[batch] = pixels + (size_t)(cinfo.output_scanline + batch - first_row) * row_bytes;
        }
        if (jpeg_read_scanlines(&cinfo, rows, (JDIMENSION)batch) == 0) {
            break;
        }
    }
    int incomplete = cinfo.output_scanline < first_row + row_count;
    if (!incomplete && cinfo.output_scanline < cinfo.output_height) {
        /* Read the rest of the entropy-coded data: a cut-off file must not pass
           because the damage lies outside the region. (Skipping to the very bottom
           would not decode anything, hence the last row is read.) */
        if (cinfo.output_scanline < cinfo.output_height - 1) {
            jpeg_skip_scanlines(&cinfo, cinfo.output_height - 1 - cinfo.output_scanline);
        }
        last_row = malloc(row_bytes);
        if (last_row == NULL) {
            copy_message(message, "out of memory for the decoded image");
            jpeg_destroy_decompress(&cinfo);
            free(pixels);
            return CIC_TOO_LARGE;
        }
        JSAMPROW rows[1] = {last_row};
        jpeg_read_scanlines(&cinfo, rows, 1);
        free(last_row);
        last_row = NULL;
    }
    int progression_cut = errors.reached_end_of_data && progression_incomplete(&cinfo);

    image->source_width = cinfo.image_width;
    image->source_height = cinfo.image_height;
    image->width = full_width;
    image->height = full_height;
    image->region_x = first_column;
    image->region_y = first_row;
    image->region_width = cinfo.output_width;
    image->region_height = row_count;
    image->channels = channels;
    image->scale_denominator = scale_denominator;
    image->progressive = cinfo.progressive_mode ? 1 : 0;
    image->exif_orientation = orientation_from_markers(&cinfo);

    /* Missing EOI after complete data only sets reached_end_of_data; that image
       is whole, so it decodes (libjpeg-turbo itself only warns). */
    cic_status status = CIC_OK;
    if (incomplete || progression_cut || (errors.entropy_data_starved && errors.reached_end_of_data)) {
        status = CIC_TRUNCATED;
        copy_message(message, errors.message[0] ? errors.message : "image data ends early");
    } else if (errors.entropy_data_starved || errors.corrupt_scan) {
        status = CIC_CORRUPT;
        copy_message(message, errors.message);
    }
    if (status != CIC_OK) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        memset(image, 0, sizeof(*image));
        return status;
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);

    if (channels == CIC_PIXELS_CMYK) {
        /* Pillow reads every 4-component JPEG as Adobe-inverted CMYK ("CMYK;I"). */
        size_t count = row_bytes * row_count;
        unsigned char *p = pixels;
        for (size_t i = 0; i < count; i++) {
            p[i] = (unsigned char)(255 - p[i]);
        }
    }
    image->pixels = pixels;
    return CIC_OK;
}

void cic_free_pixels(unsigned char *pixels) { free(pixels); }
