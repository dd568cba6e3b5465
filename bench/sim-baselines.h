/* SPDX-License-Identifier: MIT */
/*
 * The baselines iopfd's policies are measured against: pagers that are not
 * iopfd code, each a textbook or published policy written out here. All
 * work at page granularity in the trace's universe, map and unmap through
 * the books, and, unlike iopfd, see every access (a hit moves a page in
 * their LRU order), which a real IOMMU would not show them.
 *
 *   lru          demand paging, one page per fault, exact LRU eviction
 *   min          demand paging with Belady's MIN: evict the page whose next
 *                use is furthest away (the fewest faults any demand pager
 *                can have at that quota)
 *   uvm-density  the density prefetcher of NVIDIA's open UVM driver over
 *                2 MiB blocks, LRU eviction page by page
 */
#pragma once

#include "sim.h"

extern const struct sim_pager_ops sim_pager_lru;
extern const struct sim_pager_ops sim_pager_min;
extern const struct sim_pager_ops sim_pager_uvm_density;
