/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "shared/cleanup.h"
#include "shared/string-table.h"
#include "space-internal.h"

static const struct iopf_backend_ops *const backends[_IOPF_BACKEND_MAX] = {
	[IOPF_BACKEND_NONE] = &iopf_backend_none,
	[IOPF_BACKEND_MLOCK] = &iopf_backend_mlock,
	[IOPF_BACKEND_IOMMUFD] = &iopf_backend_iommufd,
	[IOPF_BACKEND_SIMULATED] = &iopf_backend_simulated,
};

static const char *const iopf_backend_kind_table[_IOPF_BACKEND_MAX] = {
	[IOPF_BACKEND_NONE] = "none",
	[IOPF_BACKEND_MLOCK] = "mlock",
	[IOPF_BACKEND_IOMMUFD] = "iommufd",
};

DEFINE_STRING_TABLE_LOOKUP(iopf_backend_kind, enum iopf_backend_kind)

static const char *const iopf_fault_around_table[_IOPF_FAULT_AROUND_MAX] = {
	[IOPF_FAULT_AROUND_FIXED] = "fixed",
	[IOPF_FAULT_AROUND_ADAPTIVE] = "adaptive",
	[IOPF_FAULT_AROUND_DENSITY] = "density",
};

DEFINE_STRING_TABLE_LOOKUP(iopf_fault_around, enum iopf_fault_around)

static const char *const iopf_eviction_table[_IOPF_EVICTION_MAX] = {
	[IOPF_EVICTION_CLOCK] = "clock",
	[IOPF_EVICTION_2Q] = "twoQueue",
};

DEFINE_STRING_TABLE_LOOKUP(iopf_eviction, enum iopf_eviction)

static bool is_pow2(uint64_t v) {
	return v && !(v & (v - 1));
}

/* --- page state ------------------------------------------------------------ */

static uint16_t page_load(const uint16_t *w) {
	return __atomic_load_n(w, __ATOMIC_ACQUIRE);
}

/* Take a hold on a pinned page that is not being evicted. Lock-free: the
 * evictor flips a page to EVICTING only while its hold count is zero, with
 * a compare-and-swap that this one races against. */
static bool page_try_hold(uint16_t *w) {
	uint16_t st = page_load(w);
	while ((st & IOPF_PAGE_PINNED) && !(st & IOPF_PAGE_EVICTING) &&
	       (st >> IOPF_PAGE_HOLD_SHIFT) < IOPF_PAGE_HOLD_MAX) {
		uint16_t nst = (uint16_t)((st + IOPF_PAGE_HOLD_ONE) | IOPF_PAGE_REF);
		if (__atomic_compare_exchange_n(w, &st, nst, true, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return true;
	}
	return false;
}

void iopf_page_release(const struct iopf_page_ref *ref) {
	if (ref->page == IOPF_PAGE_NOT_HELD)
		return;
	__atomic_fetch_sub(&ref->region->page[ref->page], (uint16_t)IOPF_PAGE_HOLD_ONE, __ATOMIC_RELEASE);
}

/* --- regions ------------------------------------------------------------------ */

struct iopf_region *iopf_region_find(const struct iopf_region_set *set, uint64_t iova) {
	if (!set)
		return NULL;
	size_t lo = 0, hi = set->n;
	/* Last region starting at or below iova. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (set->r[mid]->iova <= iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	struct iopf_region *r = set->r[lo - 1];
	return iova - r->iova < r->length ? r : NULL;
}

static void region_free(struct iopf_region *r) {
	if (!r)
		return;
	if (r->page)
		munmap(r->page, r->n_pages * sizeof(uint16_t));
	if (r->memfd >= 0)
		close(r->memfd);
	free(r);
}

static void set_free_rcu(struct rcu_head *h) {
	IOPF_RCU_AFTER_GP();
	free(caa_container_of(h, struct iopf_region_set, rcu));
}

/* Check what a client passes as a region's memory. */
static enum iopf_region_refusal check_memfd(int fd, uint64_t offset, uint64_t length) {
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return IOPF_REGION_NOT_MEMFD;
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return IOPF_REGION_NOT_MEMFD; /* not a memfd or shmem file */
	if (!(seals & F_SEAL_SHRINK))
		return IOPF_REGION_UNSEALED;
	if (offset + length < offset || (uint64_t)st.st_size < offset + length)
		return IOPF_REGION_OUT_OF_RANGE;
	return IOPF_REGION_ADDED;
}

struct iopf_region *iopf_space_region(struct iopf_space *s, uint64_t region_id) {
	struct iopf_region_set *set = s->regions;
	for (size_t i = 0; set && i < set->n; i++)
		if (set->r[i]->id == region_id)
			return set->r[i];
	return NULL;
}

static void region_info(const struct iopf_region *r, struct iopf_region_info *out) {
	*out = (struct iopf_region_info){.id = r->id, .iova = r->iova, .length = r->length, .offset = r->offset,
	                                 .perm = r->perm, .memfd = r->memfd};
}

void iopf_space_foreach_region(const struct iopf_space *s, int (*fn)(const struct iopf_region_info *, void *),
                               void *ud) {
	const struct iopf_region_set *set = s->regions;
	for (size_t i = 0; set && i < set->n; i++) {
		struct iopf_region_info info;
		region_info(set->r[i], &info);
		if (fn(&info, ud))
			break;
	}
}

void iopf_space_unmap_stale(struct iopf_space *s, uint64_t region_id) {
	struct iopf_region *r = iopf_space_region(s, region_id);
	if (r && s->ops->unmap_any)
		s->ops->unmap_any(s, r, 0, r->length); /* nothing there is fine too */
}

int iopf_space_backend_fd(const struct iopf_space *s) {
	return s->ops->fd ? s->ops->fd(s) : -1;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct iopf_region *, region_free)

enum iopf_region_refusal iopf_space_add_region(struct iopf_space *s, const struct iopf_region_config *rc,
                                               uint64_t id, struct iopf_region_info *out, int *backend_errno) {
	_cleanup_close_ int memfd = rc->memfd;
	uint64_t mask = s->cfg.page_size - 1;

	if (!rc->length || (rc->iova & mask) || (rc->length & mask) || (rc->offset & mask))
		return IOPF_REGION_INVALID;
	if (rc->iova + rc->length < rc->iova)
		return IOPF_REGION_INVALID;
	if ((rc->perm & ~IOPF_PERM_ALL) || !(rc->perm & (IOPF_PERM_READ | IOPF_PERM_WRITE)))
		return IOPF_REGION_INVALID;
	if (memfd < 0) {
		if (s->ops->needs_memfd)
			return IOPF_REGION_NOT_MEMFD;
	} else {
		enum iopf_region_refusal why = check_memfd(memfd, rc->offset, rc->length);
		if (why != IOPF_REGION_ADDED)
			return why;
	}
	if (id && iopf_space_region(s, id))
		return IOPF_REGION_OVERLAP;

	struct iopf_region_set *old = s->regions;
	size_t n = old ? old->n : 0;
	size_t pos = 0;
	while (pos < n && old->r[pos]->iova < rc->iova)
		pos++;
	if (pos > 0 && old->r[pos - 1]->iova + old->r[pos - 1]->length > rc->iova)
		return IOPF_REGION_OVERLAP;
	if (pos < n && rc->iova + rc->length > old->r[pos]->iova)
		return IOPF_REGION_OVERLAP;

	_cleanup_(region_freep) struct iopf_region *reg = calloc(1, sizeof(*reg));
	if (!reg)
		return IOPF_REGION_NO_MEMORY;
	reg->iova = rc->iova;
	reg->length = rc->length;
	reg->offset = rc->offset;
	reg->perm = rc->perm;
	reg->memfd = TAKE_FD(memfd);
	reg->n_pages = rc->length >> s->page_shift;
	/* One state word per page: anonymous and untouched until a page is
	 * faulted, so a large, sparsely used region costs little. */
	reg->page = mmap(NULL, reg->n_pages * sizeof(uint16_t), PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (reg->page == MAP_FAILED) {
		reg->page = NULL;
		return IOPF_REGION_NO_MEMORY;
	}
	int r = s->ops->attach_region(s, reg);
	if (r < 0) {
		/* E.g. mapping a write-sealed memfd for a writable region. */
		if (backend_errno)
			*backend_errno = -r;
		return IOPF_REGION_BACKEND;
	}

	struct iopf_region_set *set = malloc(sizeof(*set) + (n + 1) * sizeof(set->r[0]));
	if (!set) {
		s->ops->detach_region(s, reg);
		return IOPF_REGION_NO_MEMORY;
	}
	set->n = n + 1;
	for (size_t i = 0; i < pos; i++)
		set->r[i] = old->r[i];
	set->r[pos] = reg;
	for (size_t i = pos; i < n; i++)
		set->r[i + 1] = old->r[i];

	if (id) {
		reg->id = id;
		if (id > s->next_region_id)
			s->next_region_id = id;
	} else {
		reg->id = ++s->next_region_id;
	}
	if (out)
		region_info(reg, out);
	TAKE_PTR(reg);
	rcu_assign_pointer(s->regions, set);
	if (old)
		iopf_rcu_call(&old->rcu, set_free_rcu);
	return IOPF_REGION_ADDED;
}

/* --- the fault path ------------------------------------------------------------- */

/* One mapping takes at most half the quota (at least a page), so that a
 * window never empties the quota of what other streams use: evicting for
 * a window larger than the room holds would throw out everything unheld
 * and then fall back to the page anyway. */
static uint64_t mapping_room(const struct iopf_space *s) {
	uint64_t pages = s->cfg.quota == IOPF_QUOTA_UNLIMITED ? UINT64_MAX : (s->cfg.quota >> s->page_shift) / 2;
	return pages ? pages : 1;
}

/*
 * Map [first, end) of r (not pinned, room made) as one area, under the
 * lock. `hold` is the page to hand back held (the faulting one), or
 * UINT64_MAX; `referenced` marks every page referenced (pages the batch is
 * about to use), else only `hold` is (prefetched pages go first); `hot`
 * puts it with the pages that faulted again soon after their eviction.
 */
static enum iopf_verdict map_area(struct iopf_space *s, struct iopf_region *r, uint64_t first, uint64_t end,
                                  uint64_t hold, bool referenced, bool hot) {
	uint64_t bytes = (end - first) << s->page_shift;
	/* Room to track it first, so that a mapping is never left untracked. */
	if (iopf_evict_reserve(s) < 0)
		return IOPF_INVALID_BACKEND;
	if (s->ops->map(s, r, first << s->page_shift, bytes) < 0) {
		s->st.map_errors++;
		return IOPF_INVALID_BACKEND;
	}
	/* The faulting page first, with its hold, and each page only once: the
	 * moment a page shows pinned another worker may take a hold on it
	 * without the lock, and a second store would wipe that hold out (its
	 * release would then underflow the count and leave the page "held"
	 * for good: never evicted, every later fault on it refused). */
	if (hold != UINT64_MAX)
		__atomic_store_n(&r->page[hold], (uint16_t)(IOPF_PAGE_PINNED | IOPF_PAGE_REF | IOPF_PAGE_HOLD_ONE),
		                 __ATOMIC_RELEASE);
	uint16_t state = IOPF_PAGE_PINNED | (referenced ? IOPF_PAGE_REF : 0);
	for (uint64_t i = first; i < end; i++)
		if (i != hold)
			__atomic_store_n(&r->page[i], state, __ATOMIC_RELEASE);
	iopf_evict_track(s, (struct iopf_area){.region = r, .first = first, .n = end - first}, hot);
	r->pinned_pages += end - first;
	uint64_t pinned = s->st.pinned_bytes + bytes;
	__atomic_store_n(&s->st.pinned_bytes, pinned, __ATOMIC_RELAXED);
	if (pinned > s->st.pinned_peak)
		s->st.pinned_peak = pinned;
	s->st.maps++;
	s->st.mapped_bytes += bytes;
	return IOPF_SERVED;
}

/* Map a fault-around window around page p (not pinned) under the lock,
 * then hold p. */
static enum iopf_verdict fault_slow(struct iopf_space *s, struct iopf_region *r, uint64_t p, uint32_t length_hint,
                                    uint64_t stream, bool *mapped) {
	enum iopf_verdict ret = IOPF_SERVED;
	pthread_mutex_lock(&s->lock);
	if (page_try_hold(&r->page[p]))
		goto out; /* another worker mapped it meanwhile */
	if (page_load(&r->page[p]) & IOPF_PAGE_PINNED) {
		/* Pinned but its hold count is saturated: nothing to map. */
		ret = IOPF_INVALID_QUOTA;
		goto out;
	}
	uint64_t lo, hi;
	bool guess;
	iopf_fault_around(s, r, p, stream, length_hint, mapping_room(s), &lo, &hi, &guess);
	/* Only the unpinned run around p: pinned neighbours belong to other areas. */
	uint64_t first = p, end = p + 1;
	while (first > lo && !(page_load(&r->page[first - 1]) & IOPF_PAGE_PINNED))
		first--;
	while (end < hi && !(page_load(&r->page[end]) & IOPF_PAGE_PINNED))
		end++;
	/* Room for the page itself from anywhere, for the rest of the window
	 * only as a prefetch may make it, and for a guess by density only if
	 * the quota has it free; else the page alone. */
	if (!iopf_evict_for(s, s->cfg.page_size)) {
		ret = IOPF_INVALID_QUOTA; /* counted once final: iopf_space_quota_refused() */
		goto out;
	}
	uint64_t bytes = (end - first) << s->page_shift;
	if (end - first > 1 && (guess ? s->cfg.quota - s->st.pinned_bytes < bytes : !iopf_evict_for_prefetch(s, bytes))) {
		first = p;
		end = p + 1;
	}
	ret = map_area(s, r, first, end, p, false, iopf_evict_was_ghost(s, r, p));
	*mapped = ret == IOPF_SERVED;
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

enum iopf_verdict iopf_space_fault_from(struct iopf_space *s, uint64_t iova, uint32_t perm, uint32_t length_hint,
                                        uint64_t stream, struct iopf_page_ref *held, bool *mapped) {
	*mapped = false;
	struct iopf_region *r = iopf_region_find(rcu_dereference(s->regions), iova);
	if (!r)
		return IOPF_INVALID_NO_REGION;
	if (perm & ~r->perm)
		return IOPF_INVALID_PERM;
	held->region = r;
	if (!s->ops->pins) {
		held->page = IOPF_PAGE_NOT_HELD; /* nothing pinned, nothing to hold */
		return IOPF_SERVED;
	}
	uint64_t p = (iova - r->iova) >> s->page_shift;
	held->page = p;
	if (page_try_hold(&r->page[p]))
		return IOPF_SERVED;
	return fault_slow(s, r, p, length_hint, stream, mapped);
}

enum iopf_verdict iopf_space_fault(struct iopf_space *s, uint64_t iova, uint32_t perm, uint32_t length_hint,
                                   struct iopf_page_ref *held) {
	bool mapped;
	return iopf_space_fault_from(s, iova, perm, length_hint, 0, held, &mapped);
}

uint64_t iopf_space_map_run(struct iopf_space *s, uint64_t iova, uint64_t n, uint64_t stream) {
	struct iopf_region *r = iopf_region_find(rcu_dereference(s->regions), iova);
	if (!r || !s->ops->pins)
		return 0;
	uint64_t first = (iova - r->iova) >> s->page_shift, end = first + n, mapped = 0;
	if (end > r->n_pages)
		end = r->n_pages; /* the rest lies in another region: its own faults */
	pthread_mutex_lock(&s->lock);
	uint64_t room = mapping_room(s);
	if (end - first > room)
		end = first + room;
	int dir;
	uint64_t ahead = iopf_fault_around_run(s, r, first, end, stream, room - (end - first), &dir);
	uint64_t lo = dir < 0 ? first - ahead : first, hi = dir < 0 ? end : end + ahead;
	/* Each unpinned stretch one call, the missed part and what lies ahead
	 * of it together when the prefetch finds room (so there are never
	 * more calls than faults), else the missed part alone. */
	for (uint64_t i = lo; i < hi;) {
		if (page_load(&r->page[i]) & IOPF_PAGE_PINNED) {
			i++;
			continue;
		}
		uint64_t j = i + 1;
		while (j < hi && !(page_load(&r->page[j]) & IOPF_PAGE_PINNED))
			j++;
		uint64_t d0 = i > first ? i : first, d1 = j < end ? j : end; /* the missed part */
		bool demand = d0 < d1, hot = false;
		/* Missed pages that came back after their eviction make the
		 * stretch hot, as for a single fault. */
		for (uint64_t k = d0; k < d1; k++)
			hot |= iopf_evict_was_ghost(s, r, k);
		if (demand && !iopf_evict_for(s, (d1 - d0) << s->page_shift))
			break; /* what is left, its faults map */
		uint64_t a = i, b = j;
		if (!iopf_evict_for_prefetch(s, (j - i) << s->page_shift)) {
			if (!demand)
				break;
			a = d0;
			b = d1;
		}
		if (map_area(s, r, a, b, UINT64_MAX, demand, hot) != IOPF_SERVED)
			break;
		mapped += b - a;
		i = j;
	}
	pthread_mutex_unlock(&s->lock);
	return mapped;
}

/* --- lifecycle ------------------------------------------------------------------- */

int iopf_space_new(uint64_t id, const struct iopf_space_config *cfg, struct iopf_space **out) {
	_cleanup_close_ int iommufd = cfg->iommufd;
	if ((unsigned)cfg->backend >= _IOPF_BACKEND_MAX)
		return -EINVAL;
	if (!is_pow2(cfg->page_size) || cfg->page_size < 4096)
		return -EINVAL;
	if (cfg->quota < cfg->page_size)
		return -EINVAL;
	if (cfg->window_min > cfg->window_max || cfg->window_max > (1ull << 30))
		return -EINVAL;
	if ((unsigned)cfg->fault_around >= _IOPF_FAULT_AROUND_MAX || (unsigned)cfg->eviction >= _IOPF_EVICTION_MAX)
		return -EINVAL;

	struct iopf_space *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->id = id;
	s->cfg = *cfg;
	s->cfg.iommufd = -1; /* the backend's now (see iopf_space_backend_fd) */
	if (s->cfg.window_min < s->cfg.page_size)
		s->cfg.window_min = s->cfg.page_size;
	if (s->cfg.window_max < s->cfg.window_min)
		s->cfg.window_max = s->cfg.window_min;
	if (s->cfg.fault_around == IOPF_FAULT_AROUND_DEFAULT)
		s->cfg.fault_around = IOPF_FAULT_AROUND_DEFAULT_IS;
	if (s->cfg.eviction == IOPF_EVICTION_DEFAULT)
		s->cfg.eviction = IOPF_EVICTION_DEFAULT_IS;
	/* The adaptive window grows to window_max; when none was set apart
	 * from window_min, to 256 KiB. */
	s->adaptive_max = s->cfg.window_max > s->cfg.window_min ? s->cfg.window_max : 256 * 1024;
	if (s->adaptive_max < s->cfg.window_min)
		s->adaptive_max = s->cfg.window_min;
	s->page_shift = (uint32_t)__builtin_ctz(cfg->page_size);
	s->ops = backends[cfg->backend];
	if (s->cfg.eviction == IOPF_EVICTION_2Q && s->ops->pins) {
		/* Ghosts for about half the quota's pages (a power of two, at
		 * least 64): a page counts as coming back only when it comes
		 * back soon. Measured on real programs' traces against a table
		 * as large as the quota and four times as large: xz's faults
		 * 0.750 of fixed windows' (0.809, 0.956), sqlite's 0.663
		 * (0.677, 0.698). */
		uint64_t pages = s->cfg.quota == IOPF_QUOTA_UNLIMITED ? 64 : s->cfg.quota >> s->page_shift, n = 64;
		while (2 * n < pages && n < (1u << 24))
			n <<= 1;
		s->ghosts = calloc(n, sizeof(*s->ghosts));
		s->ghost_mask = n - 1;
		s->probation_target = pages / 4;
		if (!s->ghosts) {
			free(s);
			return -ENOMEM;
		}
	}
	pthread_mutex_init(&s->lock, NULL);
	int r = s->ops->init(s, TAKE_FD(iommufd));
	if (r < 0) {
		pthread_mutex_destroy(&s->lock);
		free(s->ghosts);
		free(s);
		return r;
	}
	*out = s;
	return 0;
}

uint64_t iopf_space_evict_all(struct iopf_space *s) {
	return iopf_evict_unmap(s, NULL, false);
}

int iopf_space_remove_region(struct iopf_space *s, uint64_t region_id) {
	struct iopf_region_set *old = s->regions;
	size_t n = old ? old->n : 0, pos = 0;
	while (pos < n && old->r[pos]->id != region_id)
		pos++;
	if (pos == n)
		return -ENOENT;
	struct iopf_region *reg = old->r[pos];

	struct iopf_region_set *set = NULL;
	if (n > 1) {
		set = malloc(sizeof(*set) + (n - 1) * sizeof(set->r[0]));
		if (!set)
			return -ENOMEM;
		set->n = 0;
		for (size_t i = 0; i < n; i++)
			if (i != pos)
				set->r[set->n++] = old->r[i];
	}
	rcu_assign_pointer(s->regions, set);
	/* After this no worker can reach the region or still hold its pages:
	 * holds are released inside the read-side section that took them. */
	iopf_rcu_synchronize();
	iopf_evict_unmap(s, reg, true);
	s->ops->detach_region(s, reg);
	region_free(reg);
	free(old);
	return 0;
}

void iopf_space_destroy(struct iopf_space *s) {
	if (!s)
		return;
	iopf_rcu_synchronize();
	iopf_evict_unmap(s, NULL, true);
	struct iopf_region_set *set = s->regions;
	for (size_t i = 0; set && i < set->n; i++) {
		s->ops->detach_region(s, set->r[i]);
		region_free(set->r[i]);
	}
	free(set);
	s->ops->destroy(s);
	iopf_evict_fini(s);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

bool iopf_space_resident(struct iopf_space *s, uint64_t iova) {
	struct iopf_region *r = iopf_region_find(rcu_dereference(s->regions), iova);
	if (!r || !s->ops->pins)
		return r != NULL;
	uint16_t st = page_load(&r->page[(iova - r->iova) >> s->page_shift]);
	return (st & IOPF_PAGE_PINNED) && !(st & IOPF_PAGE_EVICTING);
}

void iopf_space_quota_refused(struct iopf_space *s) {
	pthread_mutex_lock(&s->lock);
	s->st.quota_refusals++;
	pthread_mutex_unlock(&s->lock);
}

void iopf_space_get_stats(struct iopf_space *s, struct iopf_space_stats *out) {
	pthread_mutex_lock(&s->lock);
	*out = s->st;
	pthread_mutex_unlock(&s->lock);
}

size_t iopf_space_region_count(const struct iopf_space *s) {
	return s->regions ? s->regions->n : 0;
}

uint64_t iopf_space_id(const struct iopf_space *s) {
	return s->id;
}

const struct iopf_space_config *iopf_space_config(const struct iopf_space *s) {
	return &s->cfg;
}
