#include "image_codecs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gif_lib.h>

/* The first frame of a GIF as Pillow opens it: a palette image of the logical screen's size,
   the frame's rectangle decoded from its local (else the global) colour table, the rest filled
   with the frame's transparent index when it has one (else index 0); Pillow's convert('RGB')
   then maps indices through the palette and ignores transparency. Pillow opens a GIF whose
   palette is the identity gray ramp in mode "L" (resized with the requested filter), any other
   in mode "P" (resized nearest-neighbour). Only the first frame is read: an animation's other
   frames cost nothing. */

typedef struct {
    const unsigned char *data;
    size_t size;
    size_t position;
} gif_reader;

static int read_from_memory(GifFileType *gif, GifByteType *out, int count) {
    gif_reader *reader = (gif_reader *)gif->UserData;
    size_t available = reader->size - reader->position;
    size_t n = (size_t)count < available ? (size_t)count : available;
    memcpy(out, reader->data + reader->position, n);
    reader->position += n;
    return (int)n;
}

static cic_status fail(GifFileType *gif, char *message, cic_status status, const char *text) {
    snprintf(message, CIC_MESSAGE_CAPACITY, "%s", text);
    if (gif != NULL) {
        int ignored = 0;
        DGifCloseFile(gif, &ignored);
    }
    return status;
}

static cic_status status_of(int error) {
    return (error == D_GIF_ERR_READ_FAILED || error == D_GIF_ERR_EOF_TOO_SOON) ? CIC_TRUNCATED : CIC_CORRUPT;
}

cic_status cic_gif_decode(const unsigned char *data, size_t size, uint64_t max_pixels,
                          cic_image *image, char *message) {
    memset(image, 0, sizeof(*image));
    if (size == 0) {
        snprintf(message, CIC_MESSAGE_CAPACITY, "no image data");
        return CIC_EMPTY;
    }
    gif_reader reader = {data, size, 0};
    int error = 0;
    GifFileType *gif = DGifOpen(&reader, read_from_memory, &error);
    if (gif == NULL) {
        snprintf(message, CIC_MESSAGE_CAPACITY, "not a readable GIF (%s)", GifErrorString(error) ? GifErrorString(error) : "?");
        return status_of(error);
    }
    uint32_t width = (uint32_t)gif->SWidth, height = (uint32_t)gif->SHeight;
    if (width == 0 || height == 0) {
        return fail(gif, message, CIC_CORRUPT, "GIF logical screen is empty");
    }
    if ((uint64_t)width * height > max_pixels) {
        char text[CIC_MESSAGE_CAPACITY];
        snprintf(text, sizeof text, "%ux%u = %llu pixels exceeds the limit of %llu", width, height,
                 (unsigned long long)width * height, (unsigned long long)max_pixels);
        return fail(gif, message, CIC_TOO_LARGE, text);
    }
    int transparent = -1;
    GifRecordType record;
    for (;;) {
        if (DGifGetRecordType(gif, &record) == GIF_ERROR) {
            return fail(gif, message, status_of(gif->Error), "GIF ends before its first image");
        }
        if (record == TERMINATE_RECORD_TYPE) {
            return fail(gif, message, CIC_TRUNCATED, "GIF has no image");
        }
        if (record == IMAGE_DESC_RECORD_TYPE) {
            break;
        }
        if (record == EXTENSION_RECORD_TYPE) {
            int code = 0;
            GifByteType *extension = NULL;
            if (DGifGetExtension(gif, &code, &extension) == GIF_ERROR) {
                return fail(gif, message, status_of(gif->Error), "damaged GIF extension");
            }
            if (code == GRAPHICS_EXT_FUNC_CODE && extension != NULL && extension[0] >= 4) {
                GraphicsControlBlock control;
                if (DGifExtensionToGCB(extension[0], extension + 1, &control) == GIF_OK) {
                    transparent = control.TransparentColor;
                }
            }
            while (extension != NULL) {
                if (DGifGetExtensionNext(gif, &extension) == GIF_ERROR) {
                    return fail(gif, message, status_of(gif->Error), "damaged GIF extension");
                }
            }
        }
    }
    if (DGifGetImageDesc(gif) == GIF_ERROR) {
        return fail(gif, message, status_of(gif->Error), "damaged GIF image descriptor");
    }
    GifImageDesc *frame = &gif->Image;
    ColorMapObject *map = frame->ColorMap != NULL ? frame->ColorMap : gif->SColorMap;
    if (map == NULL || map->ColorCount <= 0) {
        return fail(gif, message, CIC_CORRUPT, "GIF has no colour table");
    }
    if (frame->Width <= 0 || frame->Height <= 0 || frame->Left < 0 || frame->Top < 0) {
        return fail(gif, message, CIC_CORRUPT, "GIF frame has an invalid size");
    }
    unsigned char *indices = malloc((size_t)width * height);
    unsigned char *line = malloc((size_t)frame->Width);
    if (indices == NULL || line == NULL) {
        free(indices);
        free(line);
        return fail(gif, message, CIC_TOO_LARGE, "out of memory for the decoded image");
    }
    memset(indices, transparent >= 0 ? transparent : 0, (size_t)width * height);
    /* Rows in file order; interlaced frames store passes 0, 4, 2, 1 with steps 8, 8, 4, 2. */
    static const int starts[] = {0, 4, 2, 1}, steps[] = {8, 8, 4, 2};
    int passes = frame->Interlace ? 4 : 1;
    for (int pass = 0; pass < passes; pass++) {
        int first = frame->Interlace ? starts[pass] : 0, step = frame->Interlace ? steps[pass] : 1;
        for (int row = first; row < frame->Height; row += step) {
            if (DGifGetLine(gif, line, frame->Width) == GIF_ERROR) {
                cic_status status = status_of(gif->Error);
                free(indices);
                free(line);
                return fail(gif, message, status, "GIF image data is truncated or damaged");
            }
            long y = (long)frame->Top + row;
            if (y >= (long)height) {
                continue;
            }
            for (int x = 0; x < frame->Width; x++) {
                long column = (long)frame->Left + x;
                if (column < (long)width) {
                    indices[(size_t)y * width + (size_t)column] = line[x];
                }
            }
        }
    }
    free(line);

    /* Pillow pads the palette to 256 entries with zeros. */
    GifColorType palette[256];
    memset(palette, 0, sizeof palette);
    int colours = map->ColorCount < 256 ? map->ColorCount : 256;
    memcpy(palette, map->Colors, sizeof(GifColorType) * (size_t)colours);
    int gray_ramp = 1;
    for (int i = 0; i < colours; i++) {
        if (palette[i].Red != i || palette[i].Green != i || palette[i].Blue != i) {
            gray_ramp = 0;
            break;
        }
    }
    int ignored = 0;
    DGifCloseFile(gif, &ignored);

    unsigned char *pixels;
    if (gray_ramp) {
        pixels = indices;  /* mode "L": the index is the gray level */
    } else {
        pixels = malloc((size_t)width * height * 4);
        if (pixels == NULL) {
            free(indices);
            snprintf(message, CIC_MESSAGE_CAPACITY, "out of memory for the decoded image");
            return CIC_TOO_LARGE;
        }
        for (size_t i = 0; i < (size_t)width * height; i++) {
            GifColorType c = palette[indices[i]];
            pixels[4 * i] = c.Red;
            pixels[4 * i + 1] = c.Green;
            pixels[4 * i + 2] = c.Blue;
            pixels[4 * i + 3] = 0xFF;
        }
        free(indices);
    }
    image->source_width = width;
    image->source_height = height;
    image->width = width;
    image->height = height;
    image->region_width = width;
    image->region_height = height;
    image->channels = gray_ramp ? CIC_PIXELS_GRAY : CIC_PIXELS_RGB;
    image->scale_denominator = 1;
    image->exif_orientation = 1;
    image->has_alpha = 0;
    image->pillow_palette_mode = gray_ramp ? 0 : 1;
    image->pixels = pixels;
    return CIC_OK;
}
