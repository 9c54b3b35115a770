#ifndef CLIPD_EXIF_ORIENTATION_H
#define CLIPD_EXIF_ORIENTATION_H
#include <stddef.h>
#include <stdint.h>
/* Orientation (1...8) from an APP1 payload starting with "Exif\0\0"; 0 if absent. */
uint32_t cic_exif_orientation(const unsigned char *payload, size_t length);
/* The same from bare TIFF-structured EXIF data (PNG's eXIf chunk). */
uint32_t cic_exif_orientation_tiff(const unsigned char *tiff, size_t tiff_length);
#endif
