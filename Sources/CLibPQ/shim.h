#ifndef CLIPD_CLIBPQ_SHIM_H
#define CLIPD_CLIBPQ_SHIM_H
#include <postgresql/libpq-fe.h>
#endif
