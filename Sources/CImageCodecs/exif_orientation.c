#include "exif_orientation.h"

#include <string.h>

static uint32_t read16(const unsigned char *p, int big_endian) {
    return big_endian ? ((uint32_t)p[0] << 8 | p[1]) : ((uint32_t)p[1] << 8 | p[0]);
}

static uint32_t read32(const unsigned char *p, int big_endian) {
    return big_endian ? ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3])
                      : ((uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0]);
}

uint32_t cic_exif_orientation(const unsigned char *payload, size_t length) {
    if (length < 6 + 8 || memcmp(payload, "Exif\0\0", 6) != 0) {
        return 0;
    }
    return cic_exif_orientation_tiff(payload + 6, length - 6);
}

uint32_t cic_exif_orientation_tiff(const unsigned char *tiff, size_t tiff_length) {
    if (tiff_length < 8) {
        return 0;
    }
    int big_endian;
    if (tiff[0] == 'M' && tiff[1] == 'M') {
        big_endian = 1;
    } else if (tiff[0] == 'I' && tiff[1] == 'I') {
        big_endian = 0;
    } else {
        return 0;
    }
    if (read16(tiff + 2, big_endian) != 42) {
        return 0;
    }
    uint32_t ifd = read32(tiff + 4, big_endian);
    if (ifd > tiff_length || tiff_length - ifd < 2) {
        return 0;
    }
    uint32_t entries = read16(tiff + ifd, big_endian);
    for (uint32_t i = 0; i < entries; i++) {
        size_t entry = (size_t)ifd + 2 + (size_t)i * 12;
        if (entry + 12 > tiff_length) {
            return 0;
        }
        if (read16(tiff + entry, big_endian) == 0x0112) {
            uint32_t type = read16(tiff + entry + 2, big_endian);
            uint32_t value = type == 3 ? read16(tiff + entry + 8, big_endian)
                                       : (type == 4 ? read32(tiff + entry + 8, big_endian) : 0);
            return (value >= 1 && value <= 8) ? value : 0;
        }
    }
    return 0;
}
