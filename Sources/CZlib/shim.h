#ifndef CLIPD_CZLIB_SHIM_H
#define CLIPD_CZLIB_SHIM_H
#include <zlib.h>
#endif
