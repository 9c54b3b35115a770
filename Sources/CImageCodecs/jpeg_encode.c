#include "image_codecs.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

/* libjpeg reports encoder failures (out of memory, bad parameters) through error_exit;
   the jump stays inside this function. */
typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char message[CIC_MESSAGE_CAPACITY];
} encoder_errors;

static void on_encoder_error(j_common_ptr cinfo) {
    encoder_errors *errors = (encoder_errors *)cinfo->err;
    errors->message[0] = 0;
    errors->base.format_message(cinfo, errors->message);
    longjmp(errors->jump, 1);
}

static void silence_encoder_output(j_common_ptr cinfo) { (void)cinfo; }

cic_status cic_jpeg_encode_rgb(const unsigned char *rgb, uint32_t width, uint32_t height, int quality,
                               unsigned char **output, size_t *output_size, char *message) {
    struct jpeg_compress_struct cinfo;
    encoder_errors errors;
    /* jpeg_mem_dest grows this buffer with malloc; volatile because setjmp may return twice. */
    unsigned char *volatile buffer = NULL;
    unsigned long buffer_size = 0;

    *output = NULL;
    *output_size = 0;
    if (width == 0 || height == 0 || width > 65500 || height > 65500) {
        if (message) snprintf(message, CIC_MESSAGE_CAPACITY, "invalid size %ux%u", width, height);
        return CIC_UNSUPPORTED;
    }
    if (quality < 1) quality = 1;
    if (quality > 100) quality = 100;

    memset(&errors, 0, sizeof(errors));
    cinfo.err = jpeg_std_error(&errors.base);
    errors.base.error_exit = on_encoder_error;
    errors.base.output_message = silence_encoder_output;
    if (setjmp(errors.jump)) {
        if (message) snprintf(message, CIC_MESSAGE_CAPACITY, "%s", errors.message);
        jpeg_destroy_compress(&cinfo);
        free(buffer);
        return CIC_CORRUPT;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, (unsigned char **)&buffer, &buffer_size);
    cinfo.image_width = width;
    cinfo.image_height = height;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    size_t stride = (size_t)width * 3;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)cinfo.next_scanline * stride);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *output = buffer;
    *output_size = buffer_size;
    return CIC_OK;
}

void cic_free_encoded(unsigned char *bytes) { free(bytes); }
