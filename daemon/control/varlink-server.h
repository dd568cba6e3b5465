/* SPDX-License-Identifier: MIT */
/* The Varlink server: where it listens, who connects, and the methods it
 * serves (joined from each family's table). */
#pragma once

struct manager;

int varlink_server_setup(struct manager *m);
/* A connected socket as a client connection, set up as if accepted. */
int varlink_server_add_connection(struct manager *m, int fd);
