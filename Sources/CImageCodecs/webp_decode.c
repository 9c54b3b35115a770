#include "image_codecs.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>
#include <webp/demux.h>

/* The first frame as Pillow opens a WebP: libwebp's animation decoder (also for still
   images), RGBA, composited on a transparent canvas of the file's canvas size. The alpha
   byte is kept (Pillow resizes RGBA premultiplied); without alpha it is padding. */
cic_status cic_webp_decode(const unsigned char *data, size_t size, uint64_t max_pixels,
                           cic_image *image, char *message) {
    memset(image, 0, sizeof(*image));
    if (size == 0) {
        snprintf(message, CIC_MESSAGE_CAPACITY, "no image data");
        return CIC_EMPTY;
    }
    WebPBitstreamFeatures features;
    VP8StatusCode features_status = WebPGetFeatures(data, size, &features);
    if (features_status == VP8_STATUS_NOT_ENOUGH_DATA) {
        snprintf(message, CIC_MESSAGE_CAPACITY, "WebP data ends before its header does");
        return CIC_TRUNCATED;
    }
    if (features_status != VP8_STATUS_OK || features.width <= 0 || features.height <= 0) {
        snprintf(message, CIC_MESSAGE_CAPACITY, "not a valid WebP header (libwebp status %d)", (int)features_status);
        return CIC_CORRUPT;
    }
    uint64_t pixels = (uint64_t)features.width * (uint64_t)features.height;
    if (pixels > max_pixels) {
        snprintf(message, CIC_MESSAGE_CAPACITY, "%dx%d = %llu pixels exceeds the limit of %llu",
                 features.width, features.height, (unsigned long long)pixels, (unsigned long long)max_pixels);
        return CIC_TOO_LARGE;
    }
    /* The animation decoder allocates the canvas (checked above: the canvas size is what
       WebPGetFeatures reports for animated files too). */
    WebPData webp = {data, size};
    WebPAnimDecoderOptions options;
    if (!WebPAnimDecoderOptionsInit(&options)) {
        snprintf(message, CIC_MESSAGE_CAPACITY, "libwebp version mismatch");
        return CIC_UNSUPPORTED;
    }
    options.color_mode = MODE_RGBA;
    options.use_threads = 0;
    WebPAnimDecoder *decoder = WebPAnimDecoderNew(&webp, &options);
    if (decoder == NULL) {
        snprintf(message, CIC_MESSAGE_CAPACITY, "WebP container is damaged or truncated");
        return CIC_CORRUPT;
    }
    WebPAnimInfo info;
    if (!WebPAnimDecoderGetInfo(decoder, &info) || info.canvas_width == 0 || info.canvas_height == 0
        || (uint64_t)info.canvas_width * info.canvas_height > max_pixels) {
        WebPAnimDecoderDelete(decoder);
        snprintf(message, CIC_MESSAGE_CAPACITY, "WebP canvas is empty or larger than the limit");
        return CIC_TOO_LARGE;
    }
    uint8_t *frame = NULL;
    int timestamp = 0;
    if (!WebPAnimDecoderGetNext(decoder, &frame, &timestamp) || frame == NULL) {
        WebPAnimDecoderDelete(decoder);
        /* libwebp does not tell truncation from damage here; a short file is the usual cause. */
        snprintf(message, CIC_MESSAGE_CAPACITY, "WebP image data is truncated or damaged");
        return CIC_TRUNCATED;
    }
    size_t bytes = (size_t)info.canvas_width * info.canvas_height * 4;
    unsigned char *copy = malloc(bytes);
    if (copy == NULL) {
        WebPAnimDecoderDelete(decoder);
        snprintf(message, CIC_MESSAGE_CAPACITY, "out of memory for the decoded image");
        return CIC_TOO_LARGE;
    }
    memcpy(copy, frame, bytes);
    WebPAnimDecoderDelete(decoder);

    image->source_width = info.canvas_width;
    image->source_height = info.canvas_height;
    image->width = info.canvas_width;
    image->height = info.canvas_height;
    image->region_width = info.canvas_width;
    image->region_height = info.canvas_height;
    image->channels = CIC_PIXELS_RGB;
    image->scale_denominator = 1;
    image->exif_orientation = 1;
    image->has_alpha = features.has_alpha ? 1 : 0;
    image->pillow_palette_mode = 0;
    image->pixels = copy;
    return CIC_OK;
}
