/* SPDX-License-Identifier: MIT */
/* The io.iopfd Varlink interface (daemon/varlink-idl.c). */
#pragma once

#include <systemd/sd-varlink-idl.h>

extern const sd_varlink_interface vl_interface_io_iopfd;
